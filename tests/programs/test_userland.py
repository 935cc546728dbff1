"""Typed sessions on the booted system: login rules, the shell's commands, the editor, passwd.

Everything goes through the PS/2 keyboard and is read back from VGA text memory, as a person at
the console would see it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from sessions import login, run

from euralios.pytest_plugin import trimmed_screen as screen
from euralios.pytest_plugin import wait_screen as wait
from euralios.system_boot import FullSystem, boot_full

PROMPT = r"\$ ?$"




@pytest.fixture
async def root() -> AsyncIterator[FullSystem]:
    async with boot_full() as system:
        await login(system, "root")
        yield system


async def test_unknown_user_is_refused() -> None:
    async with boot_full() as system:
        await wait(system, r"login:$", 10)
        await system.type("bob\n")
        await wait(system, r"Unknown login\. Try 'root' or 'user'\.\.\.\nlogin:$", 10)


async def test_root_shell_files_and_directories(root: FullSystem) -> None:
    s = root
    assert "/ramdisk" in await run(s, "pwd", r"^/ramdisk$")
    screen = await run(s, "ls", r"bin/")
    assert "root/" in screen and "user/" in screen
    await run(s, "mkdir notes")
    await run(s, "echo hello world > notes/a.txt")
    await run(s, "echo second line >> notes/a.txt")
    screen = await run(s, "cat notes/a.txt", r"second line")
    assert "hello world\nsecond line" in screen
    screen = await run(s, "ls -l notes", r"a\.txt")
    assert "24  a.txt" in screen  # 12 + 12 bytes
    await run(s, "cp notes/a.txt notes/b.txt")
    await run(s, "mv notes/b.txt c.txt")
    screen = await run(s, "cat c.txt", "second line")
    await run(s, "rm c.txt")
    screen = await run(s, "cat c.txt", r"cat: c\.txt: not found")
    await run(s, "cd notes")
    assert "/ramdisk/notes" in await run(s, "pwd", "^/ramdisk/notes$")
    await run(s, "cd ..")
    screen = await run(s, "cat /nope", r"cat: /nope: not found")
    screen = await run(s, "frobnicate", r"frobnicate: command not found")
    screen = await run(s, "mount", r"^MOUNT POINT +TYPE +CONTENTS$")
    for m in ("/proc", "/ramdisk", "/bin", "/pci"):
        assert re.search(rf"^{m} +dir ", screen, re.MULTILINE), m
    assert "/etc" not in screen  # the password store is login's alone


async def test_programs_from_bin_with_args_ps_kill_and_ctrl_c(root: FullSystem) -> None:
    s = root
    screen = await run(s, "hello reader", r"Hello, reader! I am pid \d+, running as root\.")
    screen = await run(s, "ps", r"PID USER")
    assert "ramdisk" in screen and "shell" in screen and "login" in screen
    # A program that would run forever: Ctrl+C stops it and the shell carries on.
    await run(s, "echo async def main(proc): > /ramdisk/spin")
    await run(s, "echo '    await proc.sleep(60)' >> /ramdisk/spin")
    await s.type("clear\n/ramdisk/spin\n")
    await wait(s, r"\A# /ramdisk/spin\Z", 5)
    await s.type("{Ctrl+C}")
    await wait(s, r"\A# /ramdisk/spin\n\^C\n#$", 5)
    screen = await run(s, "dmesg", r"\(spin\) killed: interrupted by pid")
    screen = await run(s, "free", r"total")
    assert "used" in screen and "free" in screen


async def test_history_and_tab_completion(root: FullSystem) -> None:
    s = root
    await run(s, "echo first")
    await s.type("clear\n")
    await wait(s, r"\A#$", 5)
    await s.type("{Up}{Up}")  # back past `clear` to `echo first`
    await wait(s, r"# echo first$", 5)
    await s.type("{Enter}")
    await wait(s, r"^first\n#$", 5)
    await s.type("clear\nech{Tab}done\n")
    await wait(s, r"^done\n#$", 5)
    await s.type("cat /bin/hel{Tab}")
    await wait(s, r"# cat /bin/hello$", 5)
    await s.type("{Ctrl+C}")
    await wait(s, r"\^C\n#$", 5)


async def test_exit_returns_to_login(root: FullSystem) -> None:
    await root.type("exit\n")
    await wait(root, r"login:$", 10)


async def test_user_login_sees_only_its_own_world() -> None:
    async with boot_full() as s:
        await login(s, "user")
        screen = await run(s, "mount", r"^MOUNT POINT")
        assert re.search(r"^/bin +dir", screen, re.MULTILINE) and re.search(r"^/ramdisk +dir", screen, re.MULTILINE)
        for hidden in ("/pci", "/dev/nic", "/etc"):
            assert f"{hidden} " not in screen
        await run(s, "cat /pci", r"cat: /pci: not found")
        await run(s, "ls /ramdisk/root", r"ls: /ramdisk/root: not found")
        await run(s, "echo mine > /ramdisk/file.txt")
        await run(s, "cat /ramdisk/file.txt", r"^mine$")
        await run(s, "rm /bin/shell", r"rm: cannot remove /bin/shell: permission denied")
        await run(s, "mkdir /bin/x", r"mkdir: cannot create /bin/x: permission denied")
        await run(s, "kill 1", r"^kill: 1: operation not permitted$")
        await s.type("exit\n")
        await wait(s, r"login:$")
        # What user wrote lives in /ramdisk/user for root.
        await login(s, "root")
        await run(s, "cat /ramdisk/user/file.txt", r"^mine$")


async def test_passwd_then_login_needs_the_password() -> None:
    async with boot_full() as s:
        await login(s, "user")
        await s.type("passwd\n")
        await wait(s, r"Current password \(empty if none\):$", 5)
        await s.type("\nsecret\nsecret\n")
        await wait(s, r"passwd: password updated\n\$$", 10)
        await s.type("exit\n")
        await wait(s, r"login:$", 10)
        await s.type("user\n")
        await wait(s, r"Password:$", 10)
        await s.type("wrong\n")
        await wait(s, r"Login incorrect\nlogin:$", 10)
        await s.type("user\nsecret\n")
        await wait(s, PROMPT, 10)
        assert "secret" not in screen(s)  # never echoed


async def test_editor_session_saves_exact_content(root: FullSystem) -> None:
    s = root
    await s.type("clear\nedit /ramdisk/poem.txt\n")
    await wait(s, r"New file: /ramdisk/poem\.txt", 5)
    await s.type("roses{Enter}violets{Up}{End} are red")
    await wait(s, r"\[modified\]", 5)
    await wait(s, r"Ln 1, Col 14", 5)
    await s.type("{Ctrl+S}")
    await wait(s, r"22 bytes written to /ramdisk/poem\.txt", 5)
    await s.type("{Ctrl+F}viol{Enter}{Esc}")
    await s.type("{Ctrl+Q}")
    await wait(s, r"\A#$", 5)
    screen = await run(s, "cat /ramdisk/poem.txt", r"violets")
    assert "roses are red\nviolets" in screen
    # Quitting with unsaved changes asks first.
    await s.type("clear\nedit /ramdisk/poem.txt\n")
    await wait(s, r"Ln 1, Col 1", 5)
    await s.type("X{Ctrl+Q}")
    await wait(s, r"unsaved changes", 5)
    await s.type("{Ctrl+Q}")
    await wait(s, r"\A#$", 5)
    screen = await run(s, "cat /ramdisk/poem.txt", r"violets")
    assert "Xroses" not in screen


async def test_newcomer_writes_a_program_in_edit_and_runs_it() -> None:
    async with boot_full() as s:
        await login(s, "user")
        await s.type("clear\nedit greet\n")
        await wait(s, r"New file", 5)
        await s.type("async def main(proc):{Enter}")
        # Enter indents the body (a line ending in `:`) and keeps that indentation.
        await s.type("await proc.print('Hi from', proc.user, proc.args[1:]){Enter}")
        await s.type("return 0{Ctrl+S}{Ctrl+Q}")
        await wait(s, r"\A\$$", 5)
        screen = await run(s, "./greet there", r"Hi from user \['there'\]")
        assert "exit status" not in screen


async def test_help_tools_and_a_program_saved_in_bin(root: FullSystem) -> None:
    s = root
    await run(s, "help", r"^\* Built-in commands:")
    await run(s, "vmmap 1", r"kernel-info")
    await run(s, "stat -n 1 0.1", r"^up [\d.]+ s  processes \d+")
    await run(s, "echo async def main(proc): > /bin/mine")
    await run(s, "echo '    await proc.print(\"mine runs\")' >> /bin/mine")
    await run(s, "mine", r"^mine runs$")


async def test_a_program_that_dies_says_why_where_it_ran(root: FullSystem) -> None:
    """A crash shows its traceback (the program's own lines) on its console; a program killed from
    another console says Killed; one that hid the cursor and is interrupted leaves it shown."""
    s = root

    async def install(proc) -> int:  # noqa: ANN001
        await proc.write_file("/ramdisk/bad.py", "def helper(x):\n    return 1 / x\n\n"
                              "async def main(proc):\n    await proc.print('before')\n    helper(0)\n")
        await proc.write_file("/ramdisk/hide.py", "async def main(proc):\n    await proc.write('\\x1b[?25l\\x1b[7mhidden')\n"
                              "    await proc.sleep(60)\n")
        await proc.write_file("/ramdisk/missing.py", "async def main(proc):\n    await proc.read_file('/ramdisk/nope.txt')\n")
        return 0

    assert await s.run(install) == 0
    screen = await run(s, "/ramdisk/bad.py")
    assert screen.splitlines()[1:] == [
        "before", "Traceback (most recent call last):", '  File "bad.py", line 6, in main', "    helper(0)",
        '  File "bad.py", line 2, in helper', "    return 1 / x", "ZeroDivisionError: division by zero", "#"]
    await run(s, "/ramdisk/missing.py", r"SyscallError: .*Not found \(/ramdisk/nope\.txt\)")
    await s.type("clear\n/ramdisk/hide.py\n")
    await wait(s, r"hidden$", 5)
    assert not s.cursor_visible()
    await s.type("{Ctrl+C}")
    await wait(s, r"hidden\^C\n#$|hidden\n\^C\n#$", 5)
    assert s.cursor_visible()
    await s.type("clear\n/ramdisk/hide.py\n")
    await wait(s, r"hidden$", 5)
    pid = next(p.pid for p in s.kernel.processes.values() if p.name == "hide.py")
    await s.type("{F3}")
    await login(s, "root")
    await s.type(f"kill {pid}\n")
    await s.type("{F2}")
    await wait(s, r"Killed\n#$", 5)


async def test_more_pages_a_long_file_and_finds_text(root: FullSystem) -> None:
    s = root

    async def install(proc) -> int:  # noqa: ANN001
        await proc.write_file("/ramdisk/long.txt", "".join(f"line {i}\n" for i in range(1, 101)))
        return 0

    assert await s.run(install) == 0
    await s.type("clear\nmore /ramdisk/long.txt\n")
    screen = await wait(s, r"long\.txt 24%", 10)
    assert screen.splitlines()[0] == "line 1" and screen.splitlines()[23] == "line 24"
    await s.type(" ")
    screen = await wait(s, r"long\.txt 48%", 5)
    assert screen.splitlines()[0] == "line 25"
    await s.type("/line 77\n")
    screen = await wait(s, r"\Aline 77\n", 5)
    await s.type("G")
    await wait(s, r"line 100\n.*\(END\)", 5)
    await s.type("q")
    await wait(s, r"# ?$", 5)
    assert s.cursor_visible()
    await run(s, "more /ramdisk/nope.txt", r"more: /ramdisk/nope\.txt: .*Not found")
