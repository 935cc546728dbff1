"""Tracing of syscalls and IPC as Chrome/Perfetto trace-event JSON (`--trace FILE`).

One track per thread (pid = process, tid = thread). Each syscall is a complete event ("X") with
its duration; sends and receives carry the message tag and the rendezvous id, so ui.perfetto.dev
shows who talked to whom and how long each thread waited.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


class Tracer:
    def __init__(self, limit: int = 1_000_000) -> None:
        self.events: list[dict[str, Any]] = []
        self.limit = limit
        self.origin = time.perf_counter()
        self.names: dict[tuple[int, int], str] = {}

    def syscall(self, pid: int, tid: int, name: str, t0: float, t1: float, args: dict[str, Any]) -> None:
        if len(self.events) >= self.limit:
            return
        self.events.append({
            "name": name, "ph": "X", "pid": pid, "tid": tid, "cat": "syscall",
            "ts": (t0 - self.origin) * 1e6, "dur": max(0.0, (t1 - t0) * 1e6), "args": args,
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
