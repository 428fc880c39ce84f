"""BLE sensor protocols as data plus pure functions: UUIDs, command bytes, packet parsers, units to SI.

No BLE stack is imported here: `har_app.sources.ble` drives these profiles with bleak, and the test rig's
emulated watch speaks them with bumble.
"""
