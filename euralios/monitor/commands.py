"""The monitor's commands: one line in, the text QEMU's HMP would print out.

`Monitor(vm).execute(line)` parses a command line and runs it against the VM (euralios.monitor.vm);
the formatting is in the sans-IO modules beside this one. Every failure is one line of text
(QEMU's wording where it has one) and the monitor carries on.

Address spaces: QEMU's x, info tlb and info mem use the current CPU's page tables (chosen with
`cpu N`). EuraliOS has one CPU and an address space per process, so they take a process: x/FMT
PID:ADDR (or info tlb PID, info mem PID), and `cpu PID` sets the process used when none is
given (at first init's).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

from euralios.monitor import devices, memdump, pagetables, sendkey
from machine.memory import BusError
from machine.mmu import PTE_ADDR_MASK, PTE_P, GeneralProtection, PageFault

BANNER = "EuraliOS monitor - type 'help' for more information"
PROMPT = "(qemu) "  # QEMU's own, so that scripts written for QEMU's monitor find it

HELP = [
    ("cont|c", "", "resume emulation (threads leave their syscalls; held interrupts are delivered)"),
    ("cpu", "PID", "set the process whose address space x, info tlb and info mem use by default"),
    ("help|?", "[cmd]", "show the help"),
    ("info", "[subcommand]", "show various information about the system state"),
    ("quit|q", "", "quit euralios (exit status 0)"),
    ("screendump", "filename", "save the VGA text screen to a file, as text (QEMU writes a PPM image)"),
    ("sendkey", "keys [hold_ms]", "send keys to the VM (e.g. 'sendkey ctrl-alt-delete'); hold_ms is ignored"),
    ("stop|s", "", "stop emulation (threads park at their next syscall, the PIT stops, interrupts wait)"),
    ("system_reset", "", "reset the system: boot again from scratch"),
    ("x", "/fmt [PID:]addr", "virtual memory dump starting at 'addr' in process PID's address space"),
    ("xp", "/fmt addr", "physical memory dump starting at 'addr'"),
]
INFO_HELP = [
    ("irq", "", "show the interrupts statistics"),
    ("mem", "[PID]", "show the active virtual memory mappings of process PID"),
    ("network", "", "show the network state"),
    ("pci", "", "show PCI info"),
    ("processes", "", "show the processes: pid, user, state, name (EuraliOS's)"),
    ("status", "", "show the current VM status (running|paused)"),
    ("tlb", "[PID]", "show virtual to physical memory mappings of process PID"),
]


def _help_lines(table: list[tuple[str, str, str]], prefix: str = "") -> list[str]:
    return [f"{prefix}{name}{' ' + args if args else ''} -- {text}" for name, args, text in table]


class MonitorError(Exception):
    """A command that cannot be done; the text is the line for the user."""


class Monitor:
    """One monitor session's state (the selected process, the last dump format) over a Vm."""

    def __init__(self, vm: Any) -> None:
        self.vm = vm
        self.cpu: int | None = None  # the selected process (None: init)
        self.last_format = memdump.DumpFormat()
        self.commands: dict[str, Callable[[list[str]], list[str]]] = {
            "cont": self._cont, "c": self._cont, "stop": self._stop, "s": self._stop,
            "help": self._help, "?": self._help, "info": self._info, "quit": self._quit, "q": self._quit,
            "screendump": self._screendump, "sendkey": self._sendkey, "system_reset": self._reset,
            "cpu": self._cpu, "x": self._x, "xp": self._xp,
        }
        self.infos: dict[str, Callable[[list[str]], list[str]]] = {
            "status": self._info_status, "processes": self._info_processes, "tlb": self._info_tlb,
            "mem": self._info_mem, "pci": self._info_pci, "network": self._info_network, "irq": self._info_irq,
        }

    # ------------------------------------------------------------------ entry
    def execute(self, line: str) -> str:
        """Run one command line; the output, each line ending in a newline ('' for none)."""
        line = line.strip()
        if not line:
            return ""
        name, _, rest = line.partition(" ")
        fmt = ""
        if "/" in name:  # x/4xg: the format is glued to the command
            name, _, fmt = name.partition("/")
        fn = self.commands.get(name)
        if fn is None:
            return f"unknown command: '{name}'\n"
        try:
            words = shlex.split(rest)
        except ValueError as e:
            return f"{name}: {e}\n"
        if name in ("x", "xp"):
            words = [fmt, *words]
        elif fmt:
            return f"unknown command: '{name}/{fmt}'\n"
        try:
            out = fn(words)
        except MonitorError as e:
            out = [str(e)]
        except (ValueError, OSError) as e:  # a bad argument never ends the monitor
            out = [f"{name}: {e}"]
        return "".join(f"{text}\n" for text in out)

    # ------------------------------------------------------------------ helpers
    def _system(self) -> Any:
        if self.vm.system is None:
            raise MonitorError("the machine is not running")
        return self.vm.system

    def _process(self, word: str | None) -> Any:
        system = self._system()
        pid = self.cpu if self.cpu is not None else (system.init.pid if system.init is not None else 1)
        if word is not None:
            try:
                pid = int(word, 0)
            except ValueError:
                raise MonitorError(f"invalid process id: '{word}'") from None
        proc = system.kernel.processes.get(pid)
        if proc is None or proc.space.destroyed:
            raise MonitorError(f"no process {pid}")
        return proc

    def _read_phys(self, addr: int, n: int) -> bytes:
        return bytes(self._system().machine.memory.read(addr, n))

    @staticmethod
    def _address(word: str) -> int:
        """ADDR: a number (0x.., decimal) or a sum/difference of them (0x1000+8)."""
        total, sign, term = 0, 1, ""
        for ch in word.replace(" ", "") + "+":
            if ch in "+-" and term:
                total += sign * int(term, 0)
                sign, term = (1 if ch == "+" else -1), ""
            elif ch in "+-" and not term and ch == "-":
                sign = -sign
            else:
                term += ch
        return total

    # ------------------------------------------------------------------ commands
    def _help(self, args: list[str]) -> list[str]:
        if args and args[0] == "info":
            return _help_lines(INFO_HELP, "info ")
        if args:
            rows = [row for row in HELP if args[0] in row[0].split("|")]
            if not rows:
                return [f"unknown command: '{args[0]}'"]
            return _help_lines(rows)
        return _help_lines(HELP)

    def _info(self, args: list[str]) -> list[str]:
        if not args:
            return _help_lines(INFO_HELP, "info ")
        fn = self.infos.get(args[0])
        if fn is None:
            return [f"unknown command: 'info {args[0]}'"]
        return fn(args[1:])

    def _cont(self, args: list[str]) -> list[str]:
        self.vm.cont()
        return []

    def _stop(self, args: list[str]) -> list[str]:
        self.vm.stop()
        return []

    def _quit(self, args: list[str]) -> list[str]:
        self.vm.quit()
        return []

    def _reset(self, args: list[str]) -> list[str]:
        self.vm.system_reset()
        return []

    def _cpu(self, args: list[str]) -> list[str]:
        if len(args) != 1:
            raise MonitorError("cpu: usage: cpu PID")
        self.cpu = self._process(args[0]).pid
        return []

    def _screendump(self, args: list[str]) -> list[str]:
        if len(args) != 1:
            raise MonitorError("screendump: usage: screendump FILENAME")
        text = self._system().screen.render() + "\n"
        try:
            with open(args[0], "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as e:
            raise MonitorError(f"Could not open '{args[0]}': {e.strerror or e}") from None
        return []

    def _sendkey(self, args: list[str]) -> list[str]:
        if not args or len(args) > 2:
            raise MonitorError("sendkey: usage: sendkey KEYS [hold_ms]")
        if len(args) == 2 and not args[1].isdigit():
            raise MonitorError(f"invalid parameter: {args[1]}")
        try:
            keys = sendkey.parse_keys(args[0])
        except sendkey.SendkeyError as e:
            raise MonitorError(str(e)) from None
        self._system().machine.keyboard.send_bytes(sendkey.scan_bytes(keys))
        return []

    def _dump_args(self, args: list[str], what: str) -> tuple[memdump.DumpFormat, str]:
        fmt, words = args[0], args[1:]
        if len(words) != 1:
            raise MonitorError(f"{what}: usage: {what}/FMT {'[PID:]' if what == 'x' else ''}ADDR")
        try:
            f = memdump.parse_format(fmt, self.last_format) if fmt else \
                memdump.DumpFormat(1, self.last_format.format, self.last_format.size)
        except memdump.FormatError as e:
            raise MonitorError(str(e)) from None
        return f, words[0]

    def _x(self, args: list[str]) -> list[str]:
        f, where = self._dump_args(args, "x")
        pid_word, sep, addr_word = where.rpartition(":")
        proc = self._process(pid_word if sep else None)
        try:
            addr = self._address(addr_word)
        except ValueError:
            raise MonitorError(f"invalid address: '{addr_word}'") from None
        memory = self._system().machine.memory
        mmu = self._system().machine.mmu
        root = proc.space.root

        def read(vaddr: int, n: int) -> bytes | None:
            out = bytearray()
            try:  # page by page through the tables, as the CPU would (no A/D bits set)
                while len(out) < n:
                    at = vaddr + len(out)
                    walk = mmu.walk(root, at)
                    level, _, pte = walk[-1]
                    shift = {1: 12, 2: 21, 3: 30}.get(level)
                    if not pte & PTE_P or shift is None:
                        return None
                    base = pte & PTE_ADDR_MASK & ~((1 << shift) - 1)
                    phys = base | (at & ((1 << shift) - 1))
                    take = min(n - len(out), (1 << shift) - (at & ((1 << shift) - 1)))
                    out += memory.read(phys, take)
            except (PageFault, GeneralProtection, BusError):
                return None
            return bytes(out)

        return memdump.dump_lines(read, addr, f)

    def _xp(self, args: list[str]) -> list[str]:
        f, where = self._dump_args(args, "xp")
        try:
            addr = self._address(where)
        except ValueError:
            raise MonitorError(f"invalid address: '{where}'") from None
        memory = self._system().machine.memory

        def read(paddr: int, n: int) -> bytes | None:
            try:
                return bytes(memory.read(paddr, n))
            except BusError:
                return None

        return memdump.dump_lines(read, addr, f)

    # ------------------------------------------------------------------ info
    def _info_status(self, args: list[str]) -> list[str]:
        return [f"VM status: {'running' if self.vm.running else 'paused'}"]

    def _info_processes(self, args: list[str]) -> list[str]:
        kernel = self._system().kernel
        rows = [f"{'PID':>5} {'USER':<8} {'STATE':<24} NAME"]
        for pid in sorted(kernel.processes):
            p = kernel.processes[pid]
            states = ",".join(sorted({str(t.state) for t in p.threads.values()})) or "exiting"
            rows.append(f"{pid:>5} {p.user:<8} {states:<24} {p.name}")
        return rows

    def _info_tlb(self, args: list[str]) -> list[str]:
        proc = self._process(args[0] if args else None)
        return pagetables.tlb_lines(self._read_phys, proc.space.root)

    def _info_mem(self, args: list[str]) -> list[str]:
        proc = self._process(args[0] if args else None)
        return pagetables.mem_lines(self._read_phys, proc.space.root)

    def _info_pci(self, args: list[str]) -> list[str]:
        return devices.pci_lines(self._system().machine.pci.functions)

    def _info_network(self, args: list[str]) -> list[str]:
        machine = self._system().machine
        return devices.network_lines(machine.nic, machine.backend)

    def _info_irq(self, args: list[str]) -> list[str]:
        return devices.irq_lines(self._system().machine.irq.counts)
