"""exec's parameter string (merriwig/exec.py): what each clause parses to, what is malformed, and
that a malformed request leaves the caller's VFS and references exactly as they were."""

from __future__ import annotations

import pytest
import trio

from euralios.boot import boot
from euralios.std import SyscallError
from euralios.std import abi as A
from merriwig import abi
from merriwig.errors import SyscallFail
from merriwig.exec import ExecParams, Mount, Umount, VfsBase, parse_exec_params


def test_every_clause_parses_in_order() -> None:
    p = parse_exec_params(b"C-/tmp:m7|/data:X3|Ash\x03-c\x03ls\0EPWD=/\x03TERM=vt\0nlister\0Uuser\0")
    assert p == ExecParams(
        vfs=(VfsBase.COPY, Umount("/tmp"), Mount(7, "/data")),
        args=["sh", "-c", "ls"],
        env={"PWD": "/", "TERM": "vt"},
        notify=(3,),
        user="user",
        name="lister",
    )
    assert p.mounts == [Mount(7, "/data")]
    assert parse_exec_params(b"") == ExecParams()
    assert parse_exec_params(b"NSC").vfs == (VfsBase.NEW, VfsBase.SHARED, VfsBase.COPY)


@pytest.mark.parametrize(("params", "code"), [
    (b"Z", abi.PARAM),  # unknown clause
    (b"-/x", abi.PARAM),  # unterminated path
    (b"m|/x:", abi.PARAM),  # no handle number
    (b"m12", abi.PARAM),  # digits run to the end
    (b"Aunterminated", abi.PARAM),
    (b"X", abi.PARAM),
    (b"U\xff\0", abi.UTF8),
    (b"n\xc3\0", abi.UTF8),
])
def test_malformed_parameters_are_param_or_utf8_errors(params: bytes, code: int) -> None:
    with pytest.raises(SyscallFail) as e:
        parse_exec_params(params)
    assert e.value.code == code


async def test_a_refused_exec_leaves_the_callers_vfs_and_references_alone() -> None:
    """Each refusal comes after a clause that copied the caller's VFS (so every mount in it got a
    new reference): nothing of that copy may outlive the refusal."""
    seen: dict[str, object] = {}

    async def child(proc):
        return 0

    async def main(proc):
        a1, _ = await proc.sys.new_rendezvous()
        await proc.sys.mount("/a", a1)
        k = proc.gate.kernel
        before = k.rendezvous_live, [r.refs for r in k.processes[proc.pid].vfs.targets()]
        for params in (b"C-/a:Z", b"C-/nope:", b"Cm99|/x:", b"CX99|", b"C-/a:Uother\0", b"CC-/a:SZ"):
            stdin = await proc.sys.copy_rendezvous(0)
            stdout = await proc.sys.copy_rendezvous(1)
            try:
                await proc.sys.exec(child, stdin, stdout, params)
            except SyscallError as e:
                seen[params.decode()] = e.code
            await proc.sys.close(stdin)
            await proc.sys.close(stdout)
        seen["after"] = k.rendezvous_live, [r.refs for r in k.processes[proc.pid].vfs.targets()]
        seen["before"] = before
        seen["mounts"] = await proc.mounts()
        return 0

    async with boot() as system:
        with trio.fail_after(10):
            assert await system.run(main, user="user") == 0
    assert seen.pop("after") == seen.pop("before")
    assert seen.pop("mounts") == ["/proc", "/ramdisk", "/a"]
    assert seen == {"C-/a:Z": A.PARAM, "C-/nope:": A.PARAM, "Cm99|/x:": A.INVALID_HANDLE,
                    "CX99|": A.INVALID_HANDLE, "C-/a:Uother\0": A.PARAM, "CC-/a:SZ": A.PARAM}
