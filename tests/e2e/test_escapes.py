"""The escape corpus (tests/support/escapes.py), each program run as `user` in a booted system.

A `user` logs in on F2 and runs the program from its home, as a learner would. While it runs,
root logs in on F3 and reads its own data; after it ends, root runs a program and reads its data
again. Then: nothing the program did reached the host (no marker file, the host's secret not
shown, the victim process alive, the host listener never called), root's data and the kernel's
own modules are unchanged, and the program failed on its own console or was killed.

ESC_ISOLATION=none boots unconfined, to watch each test catch its escape: all but the three
kernel-limit cases (frames, processes, object words) then fail. Leave out the watchdog, C-call
and host-memory cases when you do (-k "not c-call and not watchdog and not host-memory"):
unconfined they freeze or exhaust the host process, which is the point.
"""

from __future__ import annotations

import builtins
import hmac
import os
import re
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from escapes import CASES, Case, program

import euralios.std.proc as stdproc
import vfs.server as vserver
from euralios.pytest_plugin import trimmed_screen, wait_screen
from euralios.system_boot import FullSystem, boot_full

PROMPT = r"\$ ?$"
ROOT_PROMPT = r"# ?$"
WATCHDOG = 1.0  # seconds: the watchdog and C-call cases are killed after this long


def kernel_state() -> tuple[Any, ...]:
    """What the monkeypatching and shared-builtins techniques would change in the kernel's
    interpreter (where login, the servers and the drivers run)."""
    server = {k: v for k, v in vars(vserver).items() if not k.startswith("__")}  # not __warningregistry__
    return (hmac.compare_digest, stdproc.Proc.read_file, builtins.len, builtins.sorted, server)


@pytest.fixture
def host() -> Iterator[dict[str, Any]]:
    """The host-side targets: a marker to create, a secret to read, a victim, a listener."""
    token = uuid.uuid4().hex
    secret_file = Path(f"/tmp/euralios-secret-{token}")
    secret_file.write_text(f"host-secret-{token}")
    victim = subprocess.Popen(["sleep", "300"])
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    targets = {"marker": f"/tmp/euralios-escape-{token}", "secret_file": str(secret_file), "victim": victim.pid,
               "port": listener.getsockname()[1], "token": token, "victim_proc": victim, "listener": listener}
    try:
        yield targets
    finally:
        victim.kill()
        victim.wait()
        listener.close()
        secret_file.unlink(missing_ok=True)
        Path(targets["marker"]).unlink(missing_ok=True)


async def login(system: FullSystem, name: str) -> None:
    await wait_screen(system, r"login:$", 15)
    await system.type(f"{name}\n")
    await wait_screen(system, ROOT_PROMPT if name == "root" else PROMPT, 15)


async def root_reads(system: FullSystem, root_secret: str) -> None:
    await system.type("clear\ncat /ramdisk/root/secret.txt\n")
    await wait_screen(system, re.escape(root_secret) + r"\n# ?$", 20)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.kind}:{c.id}" for c in CASES])
async def test_escape_is_contained(case: Case, host: dict[str, Any]) -> None:
    before = kernel_state()
    root_secret = f"root-secret-{host['token']}"
    source = program(case, marker=host["marker"], secret_file=host["secret_file"], victim=host["victim"],
                     port=host["port"])
    async with boot_full(watchdog=WATCHDOG, isolation=os.environ.get("ESC_ISOLATION", "host")) as system:
        await login(system, "user")  # F2

        async def install(proc: Any) -> int:
            await proc.write_file("/ramdisk/user/esc.py", source)
            await proc.write_file("/ramdisk/root/secret.txt", root_secret)
            return 0

        assert await system.run(install) == 0
        await system.type("clear\n./esc.py\n")
        await wait_screen(system, r"\A\$ \./esc\.py", 10)
        # While it runs: another console answers, and root's data is root's.
        await system.type("{F3}")
        await login(system, "root")
        await root_reads(system, root_secret)
        # It ends, by itself or killed.
        await system.type("{F2}")
        await wait_screen(system, r"\A\$ \./esc\.py\n(?:.*\n)*\$ ?$", 30)
        user_screen = trimmed_screen(system)
        # After it: root's programs and data are as they were.
        await system.type("{F3}")
        await wait_screen(system, ROOT_PROMPT, 10)
        await system.type("clear\nhello reader\n")
        await wait_screen(system, r"Hello, reader! I am pid \d+, running as root\.", 10)
        await root_reads(system, root_secret)
        klog = system.klog()
    results = [line for line in klog.splitlines() if "RESULT " in line]
    everything = klog + user_screen.replace("\n", "")
    assert "ESCAPED" not in everything, results
    assert f"host-secret-{host['token']}" not in everything
    assert root_secret not in everything
    assert not os.path.exists(host["marker"]), "the program wrote a file on the host"
    assert host["victim_proc"].poll() is None, "the program killed a host process"
    with pytest.raises(BlockingIOError):
        host["listener"].accept()  # nobody connected to the host
    assert kernel_state() == before, "the program changed the kernel's own modules"
    if case.expect_killed:
        assert re.search(r"\(esc\.py\) killed: ", klog), klog[-2000:]
    else:
        assert results, f"the program said nothing:\n{user_screen}\n{klog[-2000:]}"
    if case.id == "exhaust-fork-bomb":
        assert "exec refused: 4 " in results[0]  # MEMALLOC: the per-user process limit
