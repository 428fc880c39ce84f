"""Stream sources: BLE (bleak), replay of a recording, and the recorder that writes what was received."""
