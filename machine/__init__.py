"""The emulated PC: hardware only. Knows nothing of any operating system (imports nothing of ours)."""
