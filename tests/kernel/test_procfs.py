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
        seen["ps"] = json.loads(await proc.read_file("/proc/ps.json"))
        seen["vmmap"] = json.loads(await proc.read_file(f"/proc/{proc.pid}/vmmap.json"))
        seen["mem"] = json.loads(await proc.read_file("/proc/meminfo.json"))
        seen["klog"] = (await proc.read_file("/proc/klog")).decode()
        try:
            await proc.read_file("/proc/999/vmmap.json")
        except SyscallError as e:
            seen["missing"] = e.code
        try:
            await proc.open("/proc/ps.json", "w")
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
    assert out == {"user_kill": A.NOT_PERMITTED, "status": 1}


async def test_proc_files_are_text_with_json_beside_them() -> None:
    """cat /proc/meminfo reads like Linux's; programs read NAME.json; /proc/PID is a directory
    and reading a directory says so (not a protocol error)."""
    seen: dict[str, object] = {}

    async def main(proc):
        for name in ("meminfo", "stat", "ps", f"{proc.pid}/vmmap"):
            seen[name] = (await proc.read_file(f"/proc/{name}")).decode()
        seen["json"] = json.loads(await proc.read_file("/proc/meminfo.json"))
        seen["piddir"] = await proc.stat_dir(f"/proc/{proc.pid}")
        for path in ("/proc", f"/proc/{proc.pid}"):
            try:
                await proc.read_file(path)
            except SyscallError as e:
                seen[path] = e.code
        return 0

    async with boot() as system:
        assert await system.run(main) == 0
        total_kb = system.kernel.frames.nframes * 4
    mem = str(seen["meminfo"]).splitlines()
    assert mem[0] == f"{'MemTotal:':<16}{total_kb:>8} kB"
    assert [line.split(":")[0] for line in mem[:3]] == ["MemTotal", "MemFree", "MemUsed"]
    assert all(line.endswith(" kB") for line in mem)
    assert seen["json"]["frames_total"] * 4 == total_kb  # type: ignore[index]
    assert "processes" in str(seen["stat"]) and "{" not in str(seen["stat"])
    assert str(seen["ps"]).startswith("  PID  PPID USER") and " main\n" in str(seen["ps"])
    assert any(line.endswith(" code") and " r-xu " in line for line in str(seen[next(k for k in seen if k.endswith("vmmap"))]).splitlines())
    piddir = seen["piddir"]
    assert isinstance(piddir, dict) and piddir["type"] == "dir"
    assert {f["name"] for f in piddir["files"]} == {"ctl", "vmmap", "vmmap.json"}
    assert seen["/proc"] == A.IS_DIR and seen[next(k for k in seen if k.startswith("/proc/"))] == A.IS_DIR
