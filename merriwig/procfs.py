"""/proc: the kernel's own file server, so tools can see (and root can steer) the system.

Files (each read as text or JSON, generated when opened):
  /proc/ps        JSON list of processes: pid, parent, user, name, threads, frames, cpu, state
  /proc/klog      the kernel log (dmesg)
  /proc/meminfo   JSON frame counts
  /proc/stat      JSON kernel statistics (uptime, processes, threads, rendezvous, preemptions...)
  /proc/PID/vmmap JSON list of the process' present pages (vaddr, paddr, flags), coalesced
  /proc/PID/ctl   write `kill` to kill the process, `interrupt` to interrupt it (Ctrl+C; its owner or root)

It runs as threads of the kernel process and speaks the ordinary file protocol through the
ordinary syscall gate, so a client cannot tell it from a user-space server. Being kernel code it
may ask who sent a request (Thread.last_sender) — that is how `kill` is authorised, like Unix.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from machine.mmu import PTE_NX, PTE_RW, PTE_US
from merriwig import abi
from merriwig.errors import KillCause

if TYPE_CHECKING:
    from merriwig.kernel import Kernel
    from merriwig.process import Process, Thread
    from merriwig.rendezvous import Rendezvous
    from merriwig.syscalls import Gate

FILES = ("ps", "klog", "meminfo", "stat")
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

    def content(self, path: str) -> tuple[bytes, bool] | None:
        """(bytes, writable) for a path below /proc, or None if there is no such file."""
        k = self.kernel
        parts = [x for x in path.split("/") if x]
        if parts == ["ps"]:
            return json.dumps(self.ps()).encode(), False
        if parts == ["klog"]:
            return k.klog.text().encode(), False
        if parts == ["meminfo"]:
            f = k.frames
            return json.dumps({"frames_total": f.nframes, "frames_free": f.free_count, "frames_used": f.used_count,
                               "frames_reserved": f.reserved, "frame_size": 4096}).encode(), False
        if parts == ["stat"]:
            return json.dumps(k.stats()).encode(), False
        if len(parts) == 2 and parts[0].isdigit():
            p = k.processes.get(int(parts[0]))
            if p is None:
                return None
            if parts[1] == "vmmap":
                return json.dumps(self.vmmap(p)).encode(), False
            if parts[1] == "ctl":
                return b"", True
        return None

    def listing(self) -> bytes:
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
        g = self.gate
        assert g is not None
        _, mine, theirs, _ = await g.syscall(abi.NEW_RENDEZVOUS)
        target = path.strip("/").split("/")[0]
        self.kernel.start_thread(self.proc, self._session, (mine, data, target))  # type: ignore[arg-type]
        await g.syscall(abi.SEND | LONG_HANDLE2 | (h << 32), abi.COMM_HANDLE, theirs, 0)

    async def _session(self, h: int, data: bytes, target: str) -> None:
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
                if tag == abi.READ and not rax & abi.MSG_LONG and isinstance(d2, int) and isinstance(d3, int):
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
                    await self._reply_bytes(h, abi.JSON, json.dumps({"type": "file", "size": len(data)}).encode())
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
            return abi.PARAM
        if sender.process.user != "root" and sender.process.user != victim.user:
            return abi.PARAM
        who = f"by pid {sender.process.pid} ({sender.process.name})"
        if command == "interrupt":
            k.kill(victim, f"interrupted {who}", KillCause.INTERRUPT)
        else:
            k.kill(victim, who)
        return 0


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

