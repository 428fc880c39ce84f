"""A fake `org.bluez` on a private D-Bus system bus, bridged to bumble watches on a virtual link (docs/ble.md).

The real bleak (BlueZ backend) talks to it over D-Bus; behind it, a bumble central does the real BLE work:
StartDiscovery scans and exports one org.bluez.Device1 per advertiser (later advertisements emit RSSI changes,
which drive bleak's scanner callbacks); Connect connects, exchanges MTU 247, discovers the GATT database and
exports GattService1/GattCharacteristic1 objects named by their real ATT handles; StartNotify subscribes and turns
each notification or indication into PropertiesChanged(Value); ReadValue/WriteValue go through to the watch.

Failure injection: `fail_connects` (Connect raises org.bluez.Error.Failed that many times), `drop(address)`
(the link is lost: Connected=False mid-stream), `hidden` (addresses never exported: a device that never appears).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path

from bumble.att import ATT_Error
from bumble.controller import Controller
from bumble.core import AdvertisingData, BaseBumbleError
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.gatt import Characteristic
from bumble.gatt_client import CharacteristicProxy
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink
from dbus_fast import BusType, DBusError, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.service import PropertyAccess, ServiceInterface, dbus_property, method

from rig.emulated_watch import MTU, full_uuid

ADAPTER_PATH = "/org/bluez/hci0"
ADAPTER_ADDRESS = "00:1A:7D:DA:71:13"
CENTRAL_ADDRESS = "F0:F0:F0:F0:F0:F0"  # the bumble central behind the adapter (static random)
CONNECT_TIMEOUT_S = 2.0
FAILED = "org.bluez.Error.Failed"
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:tmpdir={tmpdir}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
"""
FLAGS = [(Characteristic.Properties.BROADCAST, "broadcast"), (Characteristic.Properties.READ, "read"),
         (Characteristic.Properties.WRITE_WITHOUT_RESPONSE, "write-without-response"),
         (Characteristic.Properties.WRITE, "write"), (Characteristic.Properties.NOTIFY, "notify"),
         (Characteristic.Properties.INDICATE, "indicate"),
         (Characteristic.Properties.AUTHENTICATED_SIGNED_WRITES, "authenticated-signed-writes")]
DEVICE_FIELDS = {"RSSI": "_rssi", "Connected": "_connected", "ServicesResolved": "_services_resolved",
                 "Paired": "_paired"}


@contextmanager
def private_system_bus(config_dir: Path | None = None) -> Iterator[str]:
    """Run a private dbus-daemon; yield its address; always kill it. (The fixture puts the address into
    DBUS_SYSTEM_BUS_ADDRESS.) Its "Failed to set fd limit" message is harmless."""
    daemon = shutil.which("dbus-daemon")
    if daemon is None:
        raise FileNotFoundError("dbus-daemon")
    with tempfile.TemporaryDirectory(dir=config_dir) as tmp:
        config = Path(tmp) / "bus.conf"
        config.write_text(BUS_CONFIG.format(tmpdir=tmp))
        proc = subprocess.Popen([daemon, f"--config-file={config}", "--nofork", "--print-address=1"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            address = proc.stdout.readline().strip()
            if not address:
                raise RuntimeError("dbus-daemon printed no address")
            yield address
        finally:
            proc.kill()
            proc.wait()
            proc.stdout.close()


def dbus_error(exc: Exception) -> DBusError:
    """A bumble failure as BlueZ reports it (ATT errors in the text bleak parses)."""
    if isinstance(exc, ATT_Error):
        return DBusError(FAILED, f"Operation failed with ATT error: 0x{exc.error_code:02x}")
    return DBusError(FAILED, str(exc) or type(exc).__name__)


class Adapter1(ServiceInterface):
    def __init__(self, bridge: BluezBridge) -> None:
        super().__init__("org.bluez.Adapter1")
        self._bridge = bridge
        self._discovering = False

    @dbus_property(access=PropertyAccess.READ)
    def Address(self) -> "s":
        return ADAPTER_ADDRESS

    @dbus_property(access=PropertyAccess.READ)
    def Alias(self) -> "s":
        return "fake-hci0"

    @dbus_property(access=PropertyAccess.READ)
    def Powered(self) -> "b":
        return True

    @dbus_property(access=PropertyAccess.READ)
    def Discovering(self) -> "b":
        return self._discovering

    @dbus_property(access=PropertyAccess.READ)
    def Roles(self) -> "as":
        return ["central", "peripheral"]

    @method()
    def SetDiscoveryFilter(self, properties: "a{sv}"):
        pass

    @method()
    async def StartDiscovery(self):
        await self._bridge.start_discovery()
        self._discovering = True
        self.emit_properties_changed({"Discovering": True})

    @method()
    async def StopDiscovery(self):
        await self._bridge.stop_discovery()
        self._discovering = False
        self.emit_properties_changed({"Discovering": False})

    @method()
    async def RemoveDevice(self, device: "o"):
        await self._bridge.remove_device(device)


class Device1(ServiceInterface):
    def __init__(self, bridge: BluezBridge, path: str, advertisement: Advertisement) -> None:
        super().__init__("org.bluez.Device1")
        self._bridge, self.path = bridge, path
        self.bumble_address = advertisement.address
        self.mac = advertisement.address.to_string(with_type_qualifier=False)
        self._alias = advertisement.data.get(AdvertisingData.COMPLETE_LOCAL_NAME) or self.mac.replace(":", "-")
        uuid_lists = advertisement.data.get_all(AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS)
        self._uuids = [full_uuid(u) for uuids in uuid_lists for u in uuids]
        self._rssi = advertisement.rssi
        self._connected = self._services_resolved = self._paired = self._trusted = False
        self.connection: Connection | None = None
        self.gatt_objects: list[tuple[str, ServiceInterface]] = []

    def update(self, **changes) -> None:
        """Set properties (by their D-Bus names) and emit PropertiesChanged."""
        for key, value in changes.items():
            setattr(self, DEVICE_FIELDS[key], value)
        self.emit_properties_changed(changes)

    @dbus_property(access=PropertyAccess.READ)
    def Address(self) -> "s":
        return self.mac

    @dbus_property(access=PropertyAccess.READ)
    def AddressType(self) -> "s":
        return "public" if self.bumble_address.is_public else "random"

    @dbus_property(access=PropertyAccess.READ)
    def Name(self) -> "s":
        return self._alias

    @dbus_property(access=PropertyAccess.READ)
    def Alias(self) -> "s":
        return self._alias

    @dbus_property(access=PropertyAccess.READ)
    def Adapter(self) -> "o":
        return ADAPTER_PATH

    @dbus_property(access=PropertyAccess.READ)
    def UUIDs(self) -> "as":
        return self._uuids

    @dbus_property(access=PropertyAccess.READ)
    def RSSI(self) -> "n":
        return self._rssi

    @dbus_property(access=PropertyAccess.READ)
    def Connected(self) -> "b":
        return self._connected

    @dbus_property(access=PropertyAccess.READ)
    def ServicesResolved(self) -> "b":
        return self._services_resolved

    @dbus_property(access=PropertyAccess.READ)
    def Paired(self) -> "b":
        return self._paired

    @dbus_property()
    def Trusted(self) -> "b":
        return self._trusted

    @Trusted.setter
    def Trusted(self, value: "b"):
        self._trusted = value

    @method()
    async def Connect(self):
        await self._bridge.connect(self)

    @method()
    async def Disconnect(self):
        await self._bridge.disconnect(self)

    @method()
    async def Pair(self):
        await self._bridge.connect(self)
        self.update(Paired=True)


class GattService1(ServiceInterface):
    def __init__(self, uuid: str, device_path: str) -> None:
        super().__init__("org.bluez.GattService1")
        self._uuid, self._device = uuid, device_path

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> "s":
        return self._uuid

    @dbus_property(access=PropertyAccess.READ)
    def Device(self) -> "o":
        return self._device

    @dbus_property(access=PropertyAccess.READ)
    def Primary(self) -> "b":
        return True


class GattCharacteristic1(ServiceInterface):
    def __init__(self, peer: Peer, proxy: CharacteristicProxy, service_path: str) -> None:
        super().__init__("org.bluez.GattCharacteristic1")
        self._peer, self._proxy, self._service = peer, proxy, service_path
        self._value, self._notifying = b"", False

    def _on_value(self, value: bytes) -> None:
        self._value = bytes(value)
        self.emit_properties_changed({"Value": self._value})

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> "s":
        return full_uuid(self._proxy.uuid)

    @dbus_property(access=PropertyAccess.READ)
    def Service(self) -> "o":
        return self._service

    @dbus_property(access=PropertyAccess.READ)
    def Flags(self) -> "as":
        return [name for flag, name in FLAGS if self._proxy.properties & flag]

    @dbus_property(access=PropertyAccess.READ)
    def Value(self) -> "ay":
        return self._value

    @dbus_property(access=PropertyAccess.READ)
    def Notifying(self) -> "b":
        return self._notifying

    @dbus_property(access=PropertyAccess.READ)
    def MTU(self) -> "q":
        return self._peer.connection.att_mtu

    @method()
    async def ReadValue(self, options: "a{sv}") -> "ay":
        try:
            self._value = bytes(await self._peer.read_value(self._proxy))
        except (ATT_Error, BaseBumbleError) as exc:
            raise dbus_error(exc) from None
        return self._value

    @method()
    async def WriteValue(self, value: "ay", options: "a{sv}"):
        kind = options.get("type", Variant("s", "request")).value
        try:
            await self._peer.write_value(self._proxy, bytes(value), with_response=kind != "command")
        except (ATT_Error, BaseBumbleError) as exc:
            raise dbus_error(exc) from None

    @method()
    async def StartNotify(self):
        await self._peer.subscribe(self._proxy, self._on_value)
        self._notifying = True
        self.emit_properties_changed({"Notifying": True})

    @method()
    async def StopNotify(self):
        await self._peer.unsubscribe(self._proxy, self._on_value)
        self._notifying = False
        self.emit_properties_changed({"Notifying": False})


def device_path(address: str) -> str:
    return f"{ADAPTER_PATH}/dev_{address.upper().replace(':', '_')}"


class BluezBridge:
    """org.bluez on `bus_address`, with a bumble central on `link` doing the radio work."""

    def __init__(self, link: LocalLink, bus_address: str) -> None:
        self.link, self.bus_address = link, bus_address
        self.fail_connects = 0  # Connect raises org.bluez.Error.Failed this many more times
        self.hidden: set[str] = set()  # addresses whose advertisements are ignored
        self.devices: dict[str, Device1] = {}  # by address
        self.connect_calls = 0
        self._scanners = 0
        self._cleanup = AsyncExitStack()

    async def start(self) -> None:
        controller = Controller("fake-bluez central", link=self.link)
        self.central = Device(name="fake-bluez", address=Address(CENTRAL_ADDRESS),
                              host=Host(controller, AsyncPipeSink(controller)))
        self.central.on("advertisement", self._on_advertisement)
        await self.central.power_on()
        self._cleanup.push_async_callback(self.central.power_off)
        self.bus = await MessageBus(bus_address=self.bus_address, bus_type=BusType.SYSTEM).connect()
        self._cleanup.callback(self.bus.disconnect)
        self.bus.export(ADAPTER_PATH, Adapter1(self))
        await self.bus.request_name("org.bluez")

    async def close(self) -> None:
        """Disconnect the watches, leave the bus, power off (whatever part of start() was reached)."""
        for device in self.devices.values():
            if device.connection is not None:
                await device.connection.disconnect()
        await self._cleanup.aclose()

    # --- discovery ---------------------------------------------------------------------------------------------

    async def start_discovery(self) -> None:
        self._scanners += 1
        if self._scanners == 1:
            await self.central.start_scanning(filter_duplicates=False)

    async def stop_discovery(self) -> None:
        self._scanners = max(0, self._scanners - 1)
        if self._scanners == 0 and self.central.is_scanning:
            await self.central.stop_scanning()

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        address = advertisement.address.to_string(with_type_qualifier=False)
        if address in self.hidden or not self._scanners:
            return
        if address not in self.devices:
            self.devices[address] = Device1(self, device_path(address), advertisement)
            self.bus.export(device_path(address), self.devices[address])  # emits InterfacesAdded
        else:
            self.devices[address].update(RSSI=advertisement.rssi)

    async def remove_device(self, path: str) -> None:
        device = next((d for d in self.devices.values() if d.path == path), None)
        if device is None:
            raise DBusError("org.bluez.Error.DoesNotExist", f"{path} does not exist")
        await self.disconnect(device)
        del self.devices[device.mac]
        self.bus.unexport(path)

    # --- connections -------------------------------------------------------------------------------------------

    async def connect(self, device: Device1) -> None:
        self.connect_calls += 1
        if self.fail_connects > 0:
            self.fail_connects -= 1
            raise DBusError(FAILED, "Software caused connection abort")
        if device.connection is not None:
            return
        try:
            connection = await self.central.connect(device.bumble_address, timeout=CONNECT_TIMEOUT_S)
        except (BaseBumbleError, TimeoutError) as exc:
            raise DBusError(FAILED, f"le-connection-timeout ({exc or type(exc).__name__})") from None
        device.connection = connection
        connection.on("disconnection", lambda reason: self._on_link_lost(device))
        device.update(Connected=True)
        try:
            peer = Peer(connection)
            await peer.request_mtu(MTU)
            await peer.discover_services()
            for service in peer.services:
                await service.discover_characteristics()
        except (ATT_Error, BaseBumbleError) as exc:
            raise dbus_error(exc) from None
        self._export_gatt(device, peer)
        device.update(ServicesResolved=True)

    def _export_gatt(self, device: Device1, peer: Peer) -> None:
        """service<handle>/char<declaration handle>, as BlueZ names them (bleak reads the handles from the path)."""
        for service in peer.services:
            service_path = f"{device.path}/service{service.handle:04x}"
            device.gatt_objects.append((service_path, GattService1(full_uuid(service.uuid), device.path)))
            for char in service.characteristics:
                char_path = f"{service_path}/char{char.handle - 1:04x}"
                device.gatt_objects.append((char_path, GattCharacteristic1(peer, char, service_path)))
        for path, interface in device.gatt_objects:
            self.bus.export(path, interface)

    def _on_link_lost(self, device: Device1) -> None:
        if device.connection is None:
            return
        device.connection = None
        device.update(Connected=False, ServicesResolved=False)
        for path, _ in reversed(device.gatt_objects):
            self.bus.unexport(path)  # emits InterfacesRemoved
        device.gatt_objects.clear()

    async def disconnect(self, device: Device1) -> None:
        if device.connection is not None:
            await device.connection.disconnect()
            self._on_link_lost(device)

    async def drop(self, address: str) -> None:
        """The radio link is lost mid-stream: Connected=False, GATT objects gone."""
        await self.disconnect(self.devices[address])
