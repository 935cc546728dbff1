"""Typed sessions: discovering the tree (issue 15 item 4) and the error messages people see
(item 5). `/` is the mount table's, Tab completes and lists it, `mount` shows and makes mounts,
/proc reads as text; refusals name what went wrong (never `error 0` or `invalid parameter`).

As in test_userland: keys go in through the PS/2 keyboard, results are read from VGA memory.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from sessions import login, run

from euralios.pytest_plugin import wait_screen as wait
from euralios.system_boot import FullSystem, boot_full

PROMPT = r"\$ ?$"




def output(screen: str, line: str) -> list[str]:
    """The lines a command printed (between its command line and the next prompt)."""
    return screen.split("\n")[1:-1] if re.match(r"[#$] " + re.escape(line) + "\n", screen) else []


@pytest.fixture
async def root() -> AsyncIterator[FullSystem]:
    async with boot_full() as system:
        await login(system, "root")
        yield system


@pytest.fixture
async def user() -> AsyncIterator[FullSystem]:
    async with boot_full() as system:
        await login(system, "user")
        yield system


async def test_root_lists_slash_cds_there_and_completes_top_level_names(root: FullSystem) -> None:
    s = root
    listed = output(await run(s, "ls /"), "ls /")
    assert listed == ["bin/", "dev/", "pci/", "proc/", "ramdisk/"]
    assert output(await run(s, "ls -l /dev"), "ls -l /dev") == ["d        0  login/"]
    await run(s, "cd /")
    await run(s, "pwd", r"^/$")
    assert output(await run(s, "ls"), "ls") == listed
    await run(s, "cd proc")
    await run(s, "pwd", r"^/proc$")
    await run(s, "cd /ramdisk")
    await run(s, "cat /", r"^cat: /: is a directory$")
    # Tab: one candidate completes; several list on the second Tab, and the line is redrawn.
    await s.type("clear\ncat /ra{Tab}")
    await wait(s, r"\A# cat /ramdisk/$", 5)
    await s.type("{Ctrl+C}clear\ncat /p{Tab}")
    await wait(s, r"\A# cat /p$", 5)
    await s.type("{Tab}")
    await wait(s, r"\A# cat /p\npci/ +proc/\n# cat /p$", 5)
    await s.type("roc/mem{Tab}")
    await wait(s, r"# cat /proc/meminfo$", 5)
    await s.type("{Enter}")
    await wait(s, r"^MemTotal: +\d+ kB\nMemFree: +\d+ kB\nMemUsed: +\d+ kB\n(?:.*\n)*#$", 5)


async def test_mount_prints_a_table_and_binds_a_directory(root: FullSystem) -> None:
    s = root
    screen = await run(s, "mount", r"^MOUNT POINT +TYPE +CONTENTS$")
    assert re.search(r"^/bin +dir +0 dirs, \d+ files +9mount arp ", screen, re.MULTILINE)
    assert re.search(r"^/ramdisk +dir +\d+ dirs, \d+ files +bin/ root/", screen, re.MULTILINE)
    assert re.search(r"^/dev/login +- +a service", screen, re.MULTILINE)
    assert "[" not in screen and '"' not in screen  # not JSON
    await run(s, "mkdir /ramdisk/root/notes")
    await run(s, "echo kept > /ramdisk/root/notes/a.txt")
    await run(s, "mount /ramdisk/root/notes /notes")
    assert output(await run(s, "ls /notes"), "ls /notes") == ["a.txt"]
    await run(s, "echo via the bind > /notes/b.txt")
    await run(s, "cat /ramdisk/root/notes/b.txt", r"^via the bind$")
    await run(s, "mount", r"^/notes +dir +0 dirs, 2 files +a\.txt b\.txt$")
    assert "notes/" in output(await run(s, "ls /"), "ls /")
    await run(s, "mount /ramdisk/root/notes/a.txt /x", r"^mount: /ramdisk/root/notes/a\.txt on /x: not a directory$")
    await run(s, "mount /nope /x", r"^mount: /nope on /x: not found$")
    await run(s, "mount a", r"^Usage: mount ")
    await run(s, "umount /notes")
    await run(s, "ls /notes", r"^ls: /notes: not found$")
    await run(s, "help", r"^  mount <dir> <path> ")


async def test_proc_is_text_and_the_tools_still_read_it(root: FullSystem) -> None:
    s = root
    screen = await run(s, "cat /proc/meminfo")
    lines = output(screen, "cat /proc/meminfo")
    assert [ln.split(":")[0] for ln in lines[:3]] == ["MemTotal", "MemFree", "MemUsed"]
    assert all(re.fullmatch(r"\w+: +\d+ kB", ln) for ln in lines), lines
    await run(s, "cat /proc/meminfo.json", r'^\{"frames_total": \d+')
    await run(s, "cat /proc/stat", r"^processes +\d+$")
    await run(s, "cat /proc/ps", r"^  PID  PPID USER +THR FRAMES +CPU\(s\) STATE +NAME$")
    await run(s, "cat /proc/1/vmmap", r"^[0-9a-f]{16}-[0-9a-f]{16} r-xu [0-9a-f]{10} +\d+ code$")
    await run(s, "ls /proc/1", r"^ctl\nvmmap\nvmmap\.json$")
    await run(s, "free", r"^total +\d+ +\d+$")
    await run(s, "ps", r"PID USER")
    await run(s, "stat -n 1 0.1", r"^up [\d.]+ s  processes \d+")
    await run(s, "vmmap 1", r"kernel-info")


async def test_user_is_told_what_went_wrong(user: FullSystem) -> None:
    s = user
    await run(s, "kill 1", r"^kill: 1: operation not permitted$")
    await run(s, "mkdir d")
    await run(s, "echo x > d/f")
    await run(s, "rm d", r"^rm: cannot remove d: directory not empty$")
    await run(s, "cat d", r"^cat: d: is a directory$")
    await run(s, "cat /proc", r"^cat: /proc: is a directory$")
    await run(s, "umount /bin", r"^umount: /bin: permission denied$")
    await run(s, "umount /nothing", r"^umount: /nothing: not found$")
    screen = await run(s, "passwd root",
                       r"^passwd: root: permission denied \(you may change only your own password\)$")
    assert "Current password" not in screen
    await run(s, "rm d/f")
    await run(s, "rm d")
    await run(s, "ls", r"\A\$ ls\n\$\Z")
    for screen in (await run(s, "cat d"), await run(s, "kill 999999")):
        assert "error 0" not in screen and "invalid parameter" not in screen


async def test_root_may_umount_and_change_its_own_password(root: FullSystem) -> None:
    s = root
    await run(s, "mount /ramdisk/root /r")
    await run(s, "umount /r")
    await run(s, "ls /r", r"^ls: /r: not found$")
    await run(s, "kill 999999", r"^kill: 999999: not found$")
    await s.type("clear\npasswd root\n")
    await wait(s, r"\A# passwd root\nCurrent password \(empty if none\):$", 5)
    await s.type("{Ctrl+C}")
    await wait(s, r"\^C\n#$", 5)
