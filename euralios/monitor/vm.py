"""The VM: the boot loop that outlives one machine, and the run/stop state the monitor drives.

QEMU's system_reset restarts the same machine; here a reset (the monitor's, or the guest's own
through the keyboard controller, machine/ps2.py) tears the booted system down and boots a fresh
Machine and kernel from scratch in the same euralios process, keeping only the NIC's wire (a
Backend outlives a reset, as the cable does). A power-off (the guest's ACPI soft-off,
machine/acpi.py) or `quit` ends the loop with status 0; init exiting ends it with status 1.

stop/cont: the machine stops (the PIT stops counting, interrupts pend at the PIC) and the kernel
parks every thread at its next syscall (merriwig/kernel.py's stop); cont undoes both, the
interrupts that waited being delivered.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import trio

from euralios.system_boot import FullSystem
from machine.board import Machine


class VmEnded(Exception):
    """The VM ended (power-off, quit, init exited) while something waited on its screen."""


class Vm:
    """make_machine(backend) builds a machine around the NIC's wire (or none); boot(machine) is
    an async context manager yielding the booted FullSystem (euralios.system_boot.boot_full)."""

    def __init__(self, make_machine: Callable[[Any], Machine],
                 boot: Callable[[Machine], AbstractAsyncContextManager[FullSystem]], backend: Any = None) -> None:
        self.make_machine = make_machine
        self.boot = boot
        self.backend = backend
        self.system: FullSystem | None = None
        self.machine: Machine | None = None
        self.boots = 0
        self.reason: str | None = None  # why the VM ended: "quit", "poweroff", "init exited ..."
        self.status: int | None = None
        self.ended = trio.Event()
        self.on_boot: list[Callable[[FullSystem], object]] = []
        self._changed = trio.Event()  # set (and replaced) on every boot and at the end
        self._quit = trio.Event()

    # ------------------------------------------------------------------ state
    @property
    def running(self) -> bool:
        return self.machine is not None and self.machine.running

    def stop(self) -> None:
        """The monitor's stop: no thread runs past its next syscall, no tick, no interrupt."""
        if self.machine is None or self.system is None or not self.machine.running:
            return
        self.machine.stop()
        self.system.kernel.stop()

    def cont(self) -> None:
        if self.machine is None or self.system is None or self.machine.running:
            return
        self.system.kernel.cont()
        self.machine.cont()

    def system_reset(self) -> None:
        """Reset the machine: the same path as the guest's keyboard-controller reset."""
        if self.machine is not None:
            self.machine.halt("reset")

    def quit(self) -> None:
        self._quit.set()

    def _notify(self) -> None:
        changed, self._changed = self._changed, trio.Event()
        changed.set()

    # ------------------------------------------------------------------ running
    async def run(self) -> int:
        """Boot, and boot again on every reset, until power-off, quit or init's end; returns
        the exit status for euralios (0, or 1 when init exited)."""
        backend = self.backend
        try:
            while True:
                machine = self.make_machine(backend)
                async with self.boot(machine) as system:
                    self.machine, self.system = machine, system
                    self.boots += 1
                    for fn in list(self.on_boot):
                        fn(system)
                    self._notify()
                    reason = await self._until_end(machine, system)
                    if reason == "reset":
                        backend = machine.detach_backend()
                if reason != "reset":
                    self.reason = reason
                    self.status = 1 if reason.startswith("init") else 0
                    return self.status
        finally:
            if self.status is None:
                self.status, self.reason = 1, self.reason or "stopped"
            self.ended.set()
            self._notify()

    async def _until_end(self, machine: Machine, system: FullSystem) -> str:
        result: list[str] = []
        async with trio.open_nursery() as nursery:
            def done(reason: str) -> None:
                if not result:
                    result.append(reason)
                nursery.cancel_scope.cancel()

            async def halted() -> None:
                await machine.halted.wait()
                done(machine.halt_reason or "poweroff")

            async def quitting() -> None:
                await self._quit.wait()
                done("quit")

            async def init_ended() -> None:
                assert system.init is not None
                await system.init.ended.wait()
                done(f"init exited with status {system.init.status}")

            for fn in (halted, quitting, init_ended):
                nursery.start_soon(fn)
        return result[0]

    # ------------------------------------------------------------------ waiting, across reboots
    async def booted(self, boots: int = 1) -> FullSystem:
        """Wait until the VM has booted `boots` times; VmEnded if it ends first."""
        while self.boots < boots or self.system is None:
            if self.ended.is_set():
                raise VmEnded(self.reason)
            await self._changed.wait()
        return self.system

    async def wait_for_screen(self, pattern: str | re.Pattern[str], timeout: float = 10.0, *,
                              printed: bool = True) -> re.Match[str]:
        """Wait until the current machine's screen matches, following reboots (a wait begun on
        one machine goes on on the next); TooSlowError after `timeout`, VmEnded if it ends."""
        with trio.fail_after(timeout):
            while True:
                system = await self.booted()
                found = await self._screen_or_change(system, self._changed, pattern, printed)
                if found is not None:
                    return found
                if self.ended.is_set():
                    raise VmEnded(self.reason)

    @staticmethod
    async def _screen_or_change(system: FullSystem, changed: trio.Event, pattern: str | re.Pattern[str],
                                printed: bool) -> re.Match[str] | None:
        """The match on this system's screen, or None when the VM rebooted or ended first."""
        found: list[re.Match[str]] = []
        async with trio.open_nursery() as nursery:
            async def watch() -> None:
                found.append(await system.wait_for_screen(pattern, math.inf, printed=printed))
                nursery.cancel_scope.cancel()

            async def moved() -> None:
                await changed.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            nursery.start_soon(moved)
        return found[0] if found else None
