"""Interrupt lines: a simplified pair of cascaded 8259 PICs (16 lines, IRQ 0-15).

Devices call :meth:`IrqController.raise_irq`; the kernel installs one handler with
:meth:`IrqController.set_handler` and is called synchronously with the line number (there is no
CPU to vector through, so "delivering an interrupt" means calling the kernel, which typically
wakes the threads waiting for that line).

Model, and why it is simpler than a real 8259:

* A line is *pending* from the moment a device raises it until the kernel acknowledges it (EOI).
  The kernel can therefore poll :meth:`pending` when a thread starts waiting, which closes the
  race where the device raised the line before anyone was waiting.
* Every raise on an unmasked line calls the handler, even if the line is already pending: devices
  here raise once per event (e.g. once per keyboard byte at the head of the FIFO), so no events
  are lost to in-service suppression.
* A masked line still becomes pending but the handler is not called; unmasking a pending line
  delivers it then, as the PIC does when IMR bits clear with IRR set.
* :meth:`hold` is the CPU's interrupt flag cleared (``cli``) for every line at once: what the
  monitor's ``stop`` does. Raises still count and pend; :meth:`release` (``sti``) delivers each
  line that became pending meanwhile, once, in line order.
"""

from __future__ import annotations

from collections.abc import Callable

IRQ_LINES = 16


def _check(line: int) -> int:
    if not isinstance(line, int) or not 0 <= line < IRQ_LINES:
        raise ValueError(f"IRQ line must be 0..{IRQ_LINES - 1}, got {line!r}")
    return line


class IrqController:
    """Sixteen interrupt lines with pending, mask and per-line raise counters."""

    def __init__(self) -> None:
        self._pending = [False] * IRQ_LINES
        self._masked = [False] * IRQ_LINES
        #: How many times each line was raised (statistics, e.g. /proc/interrupts-style output).
        self.counts: list[int] = [0] * IRQ_LINES
        self._handler: Callable[[int], object] | None = None
        self.held = False  # the CPU is not taking interrupts (the VM is stopped)

    def set_handler(self, fn: Callable[[int], object] | None) -> None:
        """Install the kernel's interrupt entry point (``fn(line)``), or None to detach."""
        self._handler = fn

    def raise_irq(self, line: int) -> None:
        """Assert ``line``: mark it pending and deliver it unless masked."""
        _check(line)
        self.counts[line] += 1
        self._pending[line] = True
        if not self._masked[line] and not self.held and self._handler is not None:
            self._handler(line)

    def hold(self) -> None:
        """Stop delivering every line (the VM is stopped); raises still count and pend."""
        self.held = True

    def release(self) -> None:
        """Deliver again; each unmasked line that is pending now is delivered once."""
        self.held = False
        if self._handler is None:
            return
        for line in range(IRQ_LINES):
            if self._pending[line] and not self._masked[line]:
                self._handler(line)

    def pending(self, line: int) -> bool:
        """True between a raise and the matching :meth:`acknowledge`."""
        return self._pending[_check(line)]

    def acknowledge(self, line: int) -> None:
        """End of interrupt: the kernel has dealt with the line, clear pending."""
        self._pending[_check(line)] = False

    def mask(self, line: int) -> None:
        """Stop delivering ``line`` to the handler (raises still mark it pending)."""
        self._masked[_check(line)] = True

    def unmask(self, line: int) -> None:
        """Resume delivery; a line that became pending while masked is delivered now."""
        _check(line)
        was_masked = self._masked[line]
        self._masked[line] = False
        if was_masked and self._pending[line] and not self.held and self._handler is not None:
            self._handler(line)

    def is_masked(self, line: int) -> bool:
        """Whether ``line`` is masked."""
        return self._masked[_check(line)]
