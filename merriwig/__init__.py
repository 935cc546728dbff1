"""Merriwig, the EuraliOS kernel: programs the emulated hardware only as a CPU would."""
