"""Tracing of syscalls and IPC as Chrome/Perfetto trace-event JSON (`--trace FILE`).

One track per thread (pid = process, tid = thread). Each syscall is a complete event ("X") with
its duration; sends and receives carry the message tag and the rendezvous id, so ui.perfetto.dev
shows who talked to whom and how long each thread waited.

9P: each virtio-9p device (a host folder, ``--share``) gets a track of its own, named after its
mount tag, on which every request the device served is a slice ("Twalk fid=0 newfid=1
wnames=['a']", for as long as the host took) and its reply an instant at the end ("Rwalk
qids=1"), both decoded by proto.ninep.describe with tag, type and fields in args: a learner sees
the protocol a file read becomes, beside the syscalls that asked for it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from proto.ninep.describe import describe_frame

DEVICE_PIDS = 1_000_000  # device tracks are numbered from here: no process id is this high


class Tracer:
    def __init__(self, limit: int = 1_000_000) -> None:
        self.events: list[dict[str, Any]] = []
        self.limit = limit
        self.origin = time.perf_counter()
        self.names: dict[tuple[int, int], str] = {}
        self.tracks: dict[str, int] = {}  # device track name -> its pid

    def _us(self, t: float) -> float:
        return (t - self.origin) * 1e6

    def ninep(self, track: str, request: bytes, reply: bytes | None, t0: float, t1: float) -> None:
        """One 9P exchange a device served: the T-message as a slice from t0 to t1, the R-message
        as an instant at t1, on the device's own track (see the module docstring)."""
        if len(self.events) + 2 > self.limit:
            return
        pid = self.tracks.get(track)
        if pid is None:
            pid = self.tracks[track] = DEVICE_PIDS + len(self.tracks)
            self.names[(pid, 0)] = track
        name, args = describe_frame(request)
        ev: dict[str, Any] = {"name": name, "ph": "X", "pid": pid, "tid": 0, "cat": "9p",
                              "ts": self._us(t0), "dur": max(0.0, (t1 - t0) * 1e6), "args": args}
        self.events.append(ev)
        if reply is not None:
            rname, rargs = describe_frame(reply)
            args["reply"] = rname
            self.events.append({"name": rname, "ph": "i", "s": "t", "pid": pid, "tid": 0, "cat": "9p",
                                "ts": self._us(t1), "args": rargs})

    def syscall(self, pid: int, tid: int, name: str, t0: float, t1: float, args: dict[str, Any]) -> None:
        if len(self.events) >= self.limit:
            return
        self.events.append({
            "name": name, "ph": "X", "pid": pid, "tid": tid, "cat": "syscall",
            "ts": self._us(t0), "dur": max(0.0, (t1 - t0) * 1e6), "args": args,
        })

    def name_thread(self, pid: int, tid: int, pname: str) -> None:
        self.names[(pid, tid)] = pname

    def to_json(self) -> str:
        meta: list[dict[str, Any]] = []
        for (pid, tid), pname in self.names.items():
            meta.append({"name": "process_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": pname}})
            meta.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
                         "args": {"name": f"{pname}/{tid}"}})
        return json.dumps({"traceEvents": meta + self.events, "displayTimeUnit": "ms"})

    def write(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json())
