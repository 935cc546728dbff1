"""/proc: process table, memory map, kernel log, and kill authorised by the sender's user."""

from __future__ import annotations

import json

from euralios.boot import boot
from euralios.std import SyscallError
from euralios.std import abi as A


async def test_proc_lists_processes_meminfo_klog_and_vmmap() -> None:
    seen: dict[str, object] = {}

    async def main(proc):
        seen["dir"] = await proc.listdir("/proc")
        seen["ps"] = json.loads(await proc.read_file("/proc/ps"))
        seen["vmmap"] = json.loads(await proc.read_file(f"/proc/{proc.pid}/vmmap"))
        seen["mem"] = json.loads(await proc.read_file("/proc/meminfo"))
        seen["klog"] = (await proc.read_file("/proc/klog")).decode()
        try:
            await proc.read_file("/proc/999/vmmap")
        except SyscallError as e:
            seen["missing"] = e.code
        try:
            await proc.open("/proc/ps", "w")
        except SyscallError as e:
            seen["write_ps"] = e.code
        return 0

    async with boot() as system:
        assert await system.run(main) == 0
        free = system.kernel.frames.free_count
    names = {p["name"] for p in seen["ps"]}
    assert {"kernel", "serial", "main"} <= names
    me = next(p for p in seen["ps"] if p["name"] == "main")
    assert me["user"] == "root" and me["threads"] == 1 and me["frames"] > 0
    assert {"ps", "klog", "meminfo", "stat", str(me["pid"])} <= set(seen["dir"])
    regions = {r["region"]: r["flags"] for r in seen["vmmap"]}
    assert regions["code"] == "r-xu" and regions["kernel-info"] == "r--u" and regions["stack 0"] == "rw-u"
    assert seen["mem"]["frames_free"] >= free - 64
    assert "Merriwig starting" in seen["klog"]
    assert seen["missing"] == A.NOTFOUND and seen["write_ps"] == A.DENIED


async def test_kill_through_proc_needs_root_or_the_owner() -> None:
    out: dict[str, object] = {}

    async def sleeper(proc):
        await proc.sleep(30)  # a victim that lives until killed, not a wait
        return 0

    async def user_prog(proc):
        victim_pid = int(proc.args[1])
        try:
            async with await proc.open(f"/proc/{victim_pid}/ctl", "r+") as f:
                await f.write("kill")
        except SyscallError as e:
            out["user_kill"] = e.code
        return 0

    async def main(proc):
        c = await proc.exec(sleeper)
        await proc.run(user_prog, ["u", str(c.pid)], user="user")
        async with await proc.open(f"/proc/{c.pid}/ctl", "r+") as f:
            await f.write("kill")
        out["status"] = await c.wait()
        return 0

    async with boot() as system:
        assert await system.run(main) == 0
        assert "(sleeper) killed: by pid" in system.klog()
    assert out == {"user_kill": A.PARAM, "status": 1}
