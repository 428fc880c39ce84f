"""What a BLE streaming profile is, and what it needs from a connected GATT client.

A profile is data (name, UUIDs) plus two coroutines that talk to the device through a `GattLink` (start: negotiate
and start streaming, returning a decoder; stop) and a decoder that turns each notification into SI `ImuFrame`s.
"""

from __future__ import annotations

from typing import Protocol

from har_app.sources.base import ImuFrame, SourceStats


class GattLink(Protocol):
    """A connected GATT client, as a profile sees it (`BleSource` backs it with bleak)."""

    async def write(self, uuid: str, data: bytes) -> None:
        """Write with response to the characteristic `uuid`."""

    async def read(self, uuid: str) -> bytes:
        """Read the characteristic `uuid`."""

    async def control_response(self) -> bytes:
        """The next notification/indication on the profile's `control_uuid` (raises TimeoutError)."""


class StreamDecoder(Protocol):
    """Turns the notifications of one connection into frames, in order (har_app/ble/resync.py); counts what it
    accepts, holds, drops and misses in the stats it was given."""

    rate_hz: float
    has_gyro: bool
    pending: int  # packets held (for a missing predecessor, or to confirm a new clock)

    def decode(self, uuid: str, data: bytes, host_s: float = 0.0) -> list[ImuFrame]:
        """Frames in SI units released by one notification of `uuid` arriving at host time `host_s` (none, one, or
        several held ones); raises MalformedPacket."""

    def tick(self, host_s: float) -> list[ImuFrame]:
        """Frames released because they have waited long enough for a predecessor that did not come."""

    def flush(self) -> list[ImuFrame]:
        """The stream ended: frames still held."""


class Profile(Protocol):
    name: str  # as given to --profile
    title: str  # for messages
    service_uuid: str
    data_uuids: tuple[str, ...]  # notifications carrying samples
    control_uuid: str | None  # notifications/indications answering commands, if any

    async def start(self, link: GattLink, rate_hz: float, stats: SourceStats) -> StreamDecoder:
        """Negotiate and start streaming at the rate nearest `rate_hz` the device offers."""

    async def stop(self, link: GattLink, decoder: StreamDecoder) -> None:
        """Stop streaming (best effort; the device may already be gone)."""
