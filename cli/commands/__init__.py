"""The memstore commands, grouped by what they work on; each module lists its COMMANDS."""
