"""The kernel log (dmesg): a bounded ring of timestamped lines, plus live listeners.

Listeners are how the host sees kernel output as it happens (stderr for `euralios run`, the F1
system console in the UI); the ring is what `dmesg` reads back.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class KernelLog:
    def __init__(self, capacity: int = 2000) -> None:
        self.lines: deque[tuple[float, str]] = deque(maxlen=capacity)
        self.listeners: list[Callable[[str], None]] = []
        self.origin = time.monotonic()
        self.seq = 0

    def log(self, line: str) -> None:
        self.seq += 1
        self.lines.append((time.monotonic() - self.origin, line))
        for fn in list(self.listeners):
            fn(line)

    def text(self) -> str:
        return "".join(f"[{t:10.6f}] {line}\n" for t, line in self.lines)
