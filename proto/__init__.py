"""Pure sans-IO protocol code: wire codecs and the TCP engine. Parses, serialises and keeps state;
never does I/O and has no clock of its own (callers pass `now`), so the kernel-side router, the
user-space stack and tests all drive the same code. Imports nothing of ours (DESIGN.md section 1)."""
