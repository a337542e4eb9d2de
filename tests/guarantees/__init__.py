"""The reliability guarantees of flowinst-etl, proven end to end against the emulator."""
