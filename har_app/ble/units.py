"""Unit conversions to the SI units every source delivers (acc m/s^2, gyro rad/s)."""

import math

STANDARD_GRAVITY = 9.80665  # m/s^2 per g
MG_TO_MS2 = STANDARD_GRAVITY * 1e-3  # 1 mG = 9.80665e-3 m/s^2
DPS_TO_RADS = math.pi / 180.0  # 1 deg/s = pi/180 rad/s
