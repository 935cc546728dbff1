"""/proc: the kernel's own file server, so tools can see (and root can steer) the system.

Every file is text a person reads with `cat`, as Linux's; programs read the JSON form beside it
(NAME.json), so a change of layout for people never breaks a program (generated when opened):
  /proc/ps        the process table: pid, parent, user, threads, frames, cpu, state, name
  /proc/ps.json   the same as a JSON list (plus handles, io, host_pid)
  /proc/klog      the kernel log (dmesg)
  /proc/meminfo   memory as Linux shows it: `MemTotal:   65536 kB` lines (.json: frame counts)
  /proc/stat      kernel statistics, `name value` lines: uptime, processes, threads... (.json)
  /proc/uptime    Linux's two numbers: seconds since boot, and seconds no program ran
  /proc/loadavg   Linux's: load over 1, 5 and 15 minutes, running/all threads, the last pid
  /proc/rtc       the real-time clock as Linux's /proc/driver/rtc: rtc_time, rtc_date (UTC)
  /proc/PID/      a directory per process:
  /proc/PID/vmmap its present pages, coalesced into runs (start-end flags phys region) (.json)
  /proc/PID/ctl   write `kill` to kill the process, `interrupt` to interrupt it (Ctrl+C; its owner or root)

It runs as threads of the kernel process and speaks the ordinary file protocol through the
ordinary syscall gate, so a client cannot tell it from a user-space server. Being kernel code it
may ask who sent a request (Thread.last_sender) — that is how `kill` is authorised, like Unix.
"""

from __future__ import annotations

import json
import math
import time
from typing import TYPE_CHECKING, Any

from machine.mmu import PTE_NX, PTE_RW, PTE_US
from merriwig import abi
from merriwig.errors import KillCause

if TYPE_CHECKING:
    from merriwig.kernel import Kernel
    from merriwig.process import Process, Thread
    from merriwig.rendezvous import Rendezvous
    from merriwig.syscalls import Gate

FILES = ("ps", "ps.json", "klog", "meminfo", "meminfo.json", "stat", "stat.json", "uptime", "loadavg", "rtc")
LOAD_PERIODS = (60.0, 300.0, 900.0)  # the three load averages' time constants, as Linux's
PID_FILES = ("ctl", "vmmap", "vmmap.json")
LONG_MEM3 = abi.MSG_LONG | (abi.KIND_MEMORY << abi.D3_SHIFT)
LONG_HANDLE2 = abi.MSG_LONG | (abi.KIND_HANDLE << abi.D2_SHIFT)


def flags_text(flags: int) -> str:
    return ("r" + ("w" if flags & PTE_RW else "-") + ("-" if flags & PTE_NX else "x")
            + ("u" if flags & PTE_US else "k"))


class ProcFS:
    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.proc: Process | None = None
        self.gate: Gate | None = None
        self._load = [0.0, 0.0, 0.0]
        self._load_at = kernel.started
        self._cpu_seen: dict[int, float] = {}

    # ------------------------------------------------------------------ content
    def ps(self) -> list[dict[str, Any]]:
        out = []
        for p in sorted(self.kernel.processes.values(), key=lambda p: p.pid):
            states = sorted({t.state for t in p.threads.values()})
            out.append({
                "pid": p.pid, "parent": p.parent, "user": p.user, "name": p.name,
                "threads": len(p.threads), "frames": p.space.frames_owned,
                "cpu": round(p.cpu_time, 6), "state": ",".join(states) or "exiting",
                "handles": p.handles.count(), "io": p.io,
                # the host process its Python runs in when confined (0: the kernel's own)
                "host_pid": p.confined.worker.pid if p.confined is not None else 0,
            })
        return out

    def vmmap(self, p: Process) -> list[dict[str, Any]]:
        """Present pages coalesced into runs of contiguous virtual pages with equal flags."""
        runs: list[dict[str, Any]] = []
        for vaddr, paddr, flags in p.space.mappings():
            f = flags_text(flags)
            if runs and runs[-1]["end"] == vaddr and runs[-1]["flags"] == f:
                runs[-1]["end"] += 4096
                runs[-1]["pages"] += 1
                continue
            runs.append({"start": vaddr, "end": vaddr + 4096, "pages": 1, "flags": f, "paddr": paddr,
                         "region": region_name(vaddr)})
        return runs

    def meminfo(self) -> dict[str, int]:
        f = self.kernel.frames
        return {"frames_total": f.nframes, "frames_free": f.free_count, "frames_used": f.used_count,
                "frames_reserved": f.reserved, "frame_size": 4096}

    def load(self) -> list[float]:
        """The 1, 5 and 15 minute load averages: CPU time used per second of wall time (busy
        CPUs), decayed exponentially as Linux's. Brought up to date when read: the CPU used
        since the last reading is spread evenly over the time between, which is what a sampler
        ticking in between would have seen on average."""
        now = time.monotonic()
        seen = {p.pid: p.cpu_time for p in self.kernel.processes.values()}
        used = sum(max(0.0, cpu - self._cpu_seen.get(pid, 0.0)) for pid, cpu in seen.items())
        dt = now - self._load_at
        if dt > 0:
            busy = used / dt
            for i, period in enumerate(LOAD_PERIODS):
                decay = math.exp(-dt / period)
                self._load[i] = self._load[i] * decay + busy * (1 - decay)
        self._cpu_seen, self._load_at = seen, now
        return list(self._load)

    def uptime_text(self) -> str:
        k = self.kernel
        up = time.monotonic() - k.started
        busy = sum(p.cpu_time for p in k.processes.values())
        return f"{up:.2f} {max(0.0, up - busy):.2f}\n"

    def loadavg_text(self) -> str:
        k = self.kernel
        l1, l5, l15 = self.load()
        running = sum(1 for t in k.threads.values() if t.state in ("running", "syscall"))
        return f"{l1:.2f} {l5:.2f} {l15:.2f} {running}/{len(k.threads)} {max(k.processes, default=0)}\n"

    def content(self, path: str) -> tuple[bytes | None, bool] | None:
        """(bytes, writable) for a file below /proc, (None, False) for a directory, or None if
        there is no such path."""
        k = self.kernel
        parts = [x for x in path.split("/") if x]
        json_form = {"ps.json": self.ps, "meminfo.json": self.meminfo, "stat.json": k.stats}
        if len(parts) == 1 and parts[0] in json_form:
            return json.dumps(json_form[parts[0]]()).encode(), False
        if parts == ["ps"]:
            return ps_text(self.ps()).encode(), False
        if parts == ["uptime"]:
            return self.uptime_text().encode(), False
        if parts == ["loadavg"]:
            return self.loadavg_text().encode(), False
        if parts == ["rtc"]:  # the host's clock, as an emulator's CMOS clock is (QEMU -rtc base=utc)
            return time.strftime("rtc_time\t: %H:%M:%S\nrtc_date\t: %Y-%m-%d\n", time.gmtime()).encode(), False
        if parts == ["klog"]:
            return k.klog.text().encode(), False
        if parts == ["meminfo"]:
            return meminfo_text(self.meminfo()).encode(), False
        if parts == ["stat"]:
            return "".join(f"{key:<12} {value:.3f}\n" if isinstance(value, float) else f"{key:<12} {value}\n"
                           for key, value in k.stats().items()).encode(), False
        if parts and parts[0].isdigit() and len(parts) <= 2:
            p = k.processes.get(int(parts[0]))
            if p is None:
                return None
            if len(parts) == 1:
                return None, False
            if parts[1] == "vmmap.json":
                return json.dumps(self.vmmap(p)).encode(), False
            if parts[1] == "vmmap":
                return vmmap_text(self.vmmap(p)).encode(), False
            if parts[1] == "ctl":
                return b"", True
        return None

    def listing(self, pid: int | None = None) -> bytes:
        """The QUERY answer for /proc, or for /proc/PID."""
        if pid is not None:
            return json.dumps({"name": str(pid), "type": "dir", "subdirs": [],
                               "files": [{"name": n, "size": 0} for n in PID_FILES]}).encode()
        return json.dumps({
            "name": "proc", "type": "dir",
            "subdirs": [{"name": str(pid)} for pid in sorted(self.kernel.processes)],
            "files": [{"name": n, "size": 0} for n in FILES],
        }).encode()

    # ------------------------------------------------------------------ serving
    def start(self) -> Rendezvous:
        """Create the kernel process and its /proc server; returns the rendezvous to mount."""
        k = self.kernel
        r = k.new_rendezvous(refs=1)  # the caller mounts it (their reference)
        r.incref()  # ours: handle 0 of the kernel process
        self.proc = k.spawn(self._serve, name="kernel", stdin=r, user="root", kernel=True)
        self.gate = self.proc.gate
        return r

    async def _reply(self, h: int, tag: int, d2: int = 0, d3: int = 0) -> None:
        assert self.gate is not None
        await self.gate.syscall(abi.SEND | (h << 32), tag, d2, d3)

    async def _reply_bytes(self, h: int, tag: int, data: bytes) -> None:
        g = self.gate
        assert g is not None
        rax, vaddr, _, _ = await g.syscall(abi.MALLOC, max(1, -(-len(data) // 4096)), 0)
        if rax:
            await self._reply(h, abi.ERROR, abi.MEMORY)
            return
        if data:
            g.store(vaddr, data)
        await g.syscall(abi.SEND | LONG_MEM3 | (h << 32), tag, len(data), vaddr)

    async def _take_text(self, rax: int, rsi: int, rdx: int) -> str | None:
        """The text of a Long(tag, Value(n), Memory(chunk)) request; the chunk is freed."""
        g = self.gate
        assert g is not None
        if (rax & abi.CTRL_MASK) != LONG_MEM3:
            return None
        try:
            raw = g.load(rdx, min(max(rsi, 0), 4096)) if isinstance(rsi, int) else b""
        finally:
            await g.syscall(abi.FREE, rdx)
        return raw.decode("utf-8", "replace")

    async def _serve(self, *_: Any) -> int:
        g = self.gate
        assert g is not None
        while True:
            rax, tag, d2, d3 = await g.syscall(abi.RECEIVE, 0)
            if rax & 0xFF:
                if rax & 0xFF == abi.RECV_BLOCKING:
                    await self._reply(0, abi.ERROR, 0)
                continue
            expects = bool(rax & abi.REPLY_EXPECTED)
            if tag & abi.OPEN_TAG and tag < abi.CLOSE_TAG:
                path = await self._take_text(rax, d2, d3)
                await self._open(0, path, tag & 15)
            elif tag == abi.QUERY and expects:
                await self._reply_bytes(0, abi.JSON, self.listing())
            elif tag == abi.READ and expects:
                await self._reply(0, abi.ERROR, abi.IS_DIR)  # `cat /proc`
            else:
                if (rax & abi.CTRL_MASK) == LONG_MEM3:
                    await g.syscall(abi.FREE, d3)
                if expects:
                    await self._reply(0, abi.ERROR_UNKNOWN_MESSAGE)

    async def _open(self, h: int, path: str | None, flags: int) -> None:
        if path is None:
            await self._reply(h, abi.ERROR, abi.PARAM)
            return
        found = self.content(path)
        if found is None:
            await self._reply(h, abi.ERROR, abi.NOTFOUND)
            return
        data, writable = found
        if flags & abi.O_WRITE and not writable:
            await self._reply(h, abi.ERROR_DENIED)
            return
        if data is None and flags & ~abi.O_WRITE:
            await self._reply(h, abi.ERROR, abi.IS_DIR)  # truncate, append or create a directory
            return
        g = self.gate
        assert g is not None
        _, mine, theirs, _ = await g.syscall(abi.NEW_RENDEZVOUS)
        target = path.strip("/").split("/")[0]
        self.kernel.start_thread(self.proc, self._session, (mine, data, target))  # type: ignore[arg-type]
        await g.syscall(abi.SEND | LONG_HANDLE2 | (h << 32), abi.COMM_HANDLE, theirs, 0)

    async def _session(self, h: int, data: bytes | None, target: str) -> None:
        """One open file (data) or /proc/PID directory (data None; target is the PID)."""
        g = self.gate
        assert g is not None
        try:
            while True:
                rax, tag, d2, d3 = await g.syscall(abi.RECEIVE, h)
                err = rax & 0xFF
                if err == abi.CLOSED:
                    return
                if err:
                    if err == abi.RECV_BLOCKING:
                        await self._reply(h, abi.ERROR, 0)
                    continue
                expects = bool(rax & abi.REPLY_EXPECTED)
                if tag == abi.CLOSE_TAG and not rax & abi.MSG_LONG:
                    return
                if tag == abi.READ and data is None:
                    if expects:
                        await self._reply(h, abi.ERROR, abi.IS_DIR)
                elif tag == abi.READ and data is not None and not rax & abi.MSG_LONG and isinstance(d2, int) \
                        and isinstance(d3, int):
                    start = max(0, d2)
                    piece = data[start:start + max(0, min(d3, 1 << 20))]
                    if piece:
                        await self._reply_bytes(h, abi.DATA, piece)
                    else:
                        await self._reply(h, abi.ERROR, abi.NO_DATA)
                elif tag == abi.DATA and (rax & abi.CTRL_MASK) == LONG_MEM3:
                    text = await self._take_text(rax, d2, d3) or ""
                    status = self._control(target, text.strip())
                    if expects:
                        if status:
                            await self._reply(h, abi.ERROR, status)
                        else:
                            await self._reply(h, abi.OK, len(text))
                elif tag == abi.QUERY and expects:
                    info = (self.listing(int(target)) if data is None
                            else json.dumps({"type": "file", "size": len(data)}).encode())
                    await self._reply_bytes(h, abi.JSON, info)
                else:
                    if (rax & abi.CTRL_MASK) == LONG_MEM3:
                        await g.syscall(abi.FREE, d3)
                    if expects:
                        await self._reply(h, abi.ERROR_UNKNOWN_MESSAGE)
        finally:
            await g.syscall(abi.CLOSE, h)

    def _control(self, target: str, command: str) -> int:
        """A write to /proc/PID/ctl. Returns an error code, 0 on success."""
        k = self.kernel
        assert self.proc is not None
        me = next((t for t in self.proc.threads.values() if t.task is _current_task()), None)
        sender: Thread | None = me.last_sender if me is not None else None
        victim = k.processes.get(int(target)) if target.isdigit() else None
        if victim is None:
            return abi.NOTFOUND
        if command not in ("kill", "interrupt"):
            return abi.PARAM
        if sender is None or victim is self.proc:
            return abi.NOT_PERMITTED  # the kernel itself cannot be killed
        if sender.process.user != "root" and sender.process.user != victim.user:
            return abi.NOT_PERMITTED
        who = f"by pid {sender.process.pid} ({sender.process.name})"
        if command == "interrupt":
            k.kill(victim, f"interrupted {who}", KillCause.INTERRUPT)
        else:
            k.kill(victim, who)
        return 0


def meminfo_text(m: dict[str, int]) -> str:
    """Linux's /proc/meminfo layout: `Name:` padded, the value right-aligned, in kB."""
    kb = m["frame_size"] // 1024
    rows = (("MemTotal", m["frames_total"] * kb), ("MemFree", m["frames_free"] * kb),
            ("MemUsed", m["frames_used"] * kb), ("MemReserved", m["frames_reserved"] * kb))
    text = "".join(f"{name + ':':<16}{value:>8} kB\n" for name, value in rows)
    return text + f"{'FrameSize:':<16}{kb:>8} kB\n"


def ps_text(table: list[dict[str, Any]]) -> str:
    lines = [f"{'PID':>5} {'PPID':>5} {'USER':<6} {'THR':>3} {'FRAMES':>6} {'CPU(s)':>8} {'STATE':<12} NAME"]
    for p in table:
        lines.append(f"{p['pid']:>5} {p['parent'] or 0:>5} {p['user']:<6} {p['threads']:>3} {p['frames']:>6} "
                     f"{p['cpu']:>8.3f} {p['state']:<12} {p['name']}")
    return "\n".join(lines) + "\n"


def vmmap_text(runs: list[dict[str, Any]]) -> str:
    """As Linux's /proc/PID/maps: start-end, flags, physical start, region."""
    return "".join(f"{r['start']:016x}-{r['end']:016x} {r['flags']} {r['paddr']:010x} {r['pages']:>5} {r['region']}\n"
                   for r in runs)


def _current_task() -> Any:
    import trio

    return trio.lowlevel.current_task()


def region_name(vaddr: int) -> str:
    from merriwig import layout

    if vaddr == layout.KERNEL_INFO:
        return "kernel-info"
    if layout.USER_CODE_MIN <= vaddr < layout.USER_CODE_MAX:
        return "code"
    if layout.HEAP_BASE <= vaddr < layout.HEAP_BASE + layout.HEAP_SIZE:
        return "heap"
    slot = layout.chunk_slot(vaddr)
    if slot:
        return f"chunk {slot}"
    if layout.USER_BASE <= vaddr < layout.USER_BASE + layout.STACK_SLOTS * layout.STACK_SLOT_PAGES * 4096:
        return f"stack {(vaddr - layout.USER_BASE) // (layout.STACK_SLOT_PAGES * 4096)}"
    return "?"

