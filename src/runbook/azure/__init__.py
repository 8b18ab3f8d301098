"""Azure: the ARM and data-plane client, and the embedded emulator that stands in for Azure on loopback."""
