"""The errors a BLE profile raises: a skipped packet, or a device that refuses what we ask."""

from training.errors import ExitCode, HarError


class MalformedPacket(ValueError):
    """A notification that cannot be decoded: the source counts it in `malformed_packets` and skips it."""


class DeviceRefused(HarError):
    """The device answered a command with an error, or its answer makes no sense (exit code 3)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.DOMAIN)
