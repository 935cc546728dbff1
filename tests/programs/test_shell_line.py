"""Typed sessions: a real shell line (issue 15 item 6). Pipelines, $VAR, history, Ctrl+W and
Ctrl+U, whoami/sleep/uptime, root's `#` prompt, stat refreshing until q, edit's key hints and
auto-indent, help within 80 columns listing every program.

As in test_userland: keys go in through the PS/2 keyboard, results are read from VGA memory.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import pytest

from euralios.pytest_plugin import trimmed_screen, wait_until
from euralios.pytest_plugin import wait_screen as wait
from euralios.system_boot import FullSystem, boot_full, initrd


async def login(system: FullSystem, name: str) -> None:
    await wait(system, r"login:$", 10)
    await system.type(f"{name}\n")
    await wait(system, ("#" if name == "root" else r"\$") + r" ?$", 10)


async def run(system: FullSystem, line: str, expect: str | None = None, timeout: float = 10, p: str = "#") -> str:
    """Clear the screen, type a command line, wait for the prompt (`p`) after it; check `expect`
    (a multiline regex) against the screen and return the screen."""
    await system.type("clear\n")
    await wait(system, rf"\A{p}$", timeout)
    await system.type(line.replace("{", "{{") + "\n")  # `${NAME}` is typed, not a key name
    text = await wait(system, rf"\A{p} " + re.escape(line) + rf"\n(?:.*\n)*{p}\Z", timeout)
    if expect is not None:
        assert re.search(expect, text, re.MULTILINE), f"{expect!r} not on screen:\n{text}"
    return text


_asked = [0]


async def last_status(system: FullSystem) -> str:
    """`echo $?` typed right after a command (no `clear` before it: that would be the last one),
    marked so that an earlier answer on the screen is not taken for this one."""
    _asked[0] += 1
    mark = f"s{_asked[0]}"
    await system.type(f"echo {mark} $?\n")
    screen = await wait(system, rf"^{mark} \d+\n#\Z", 10)
    return screen.splitlines()[-2].split()[1]


def output(screen: str) -> list[str]:
    """The lines a command printed (between its command line and the next prompt)."""
    return screen.split("\n")[1:-1]


@pytest.fixture
async def root() -> AsyncIterator[FullSystem]:
    async with boot_full() as system:
        await login(system, "root")
        yield system


async def install(system: FullSystem, files: dict[str, str]) -> None:
    async def put(proc) -> int:  # noqa: ANN001
        for path, text in files.items():
            await proc.write_file(path, text)
        return 0

    assert await system.run(put) == 0


YES = "async def main(proc):\n    while True:\n        await proc.write('y\\n' * 64)\n"
HEAD3 = ("async def main(proc):\n    for _ in range(3):\n        await proc.write(await proc.read_line(echo=False))\n"
         "    return 0\n")
SHOW_ENV = "async def main(proc):\n    await proc.print(proc.env.get('GREETING'), proc.env.get('ONCE'))\n"


async def test_pipelines_of_programs_and_builtins(root: FullSystem) -> None:
    s = root
    await install(s, {"/ramdisk/long.txt": "".join(f"line {i}\n" for i in range(1, 101)),
                      "/ramdisk/yes": YES, "/ramdisk/head3": HEAD3})
    assert output(await run(s, "cat /ramdisk/long.txt | grep 7 | wc -l")) == ["     19"]
    assert output(await run(s, "grep -c 9 /ramdisk/long.txt")) == ["19"]
    assert output(await run(s, "echo hello world | wc")) == ["      1       2      12"]
    screen = await run(s, "ps | grep shell")
    assert output(screen) and all("shell" in ln for ln in output(screen)), screen
    # /bin holds every program init installed (more than a screen shows at once: count them).
    programs = [n for n in json.loads(initrd()) if n.startswith("bin/")]
    assert output(await run(s, "ls /bin | wc -l")) == [f"{len(programs):>7}"]
    # grep says nothing matched with its status, as the last stage of a pipeline.
    await run(s, "echo abc | grep zzz", r"^\[grep: exit status 1\]$")
    # A writer that never stops ends once its reader has: `yes | head`.
    assert output(await run(s, "/ramdisk/yes | /ramdisk/head3")) == ["y", "y", "y"]
    assert not [p for p in s.kernel.processes.values() if p.name == "yes"]
    # The last stage's output can go to a file; the pager reads a pipe, then the keys.
    await run(s, "cat /ramdisk/long.txt | grep 5 > /ramdisk/fives.txt")
    await run(s, "cat /ramdisk/fives.txt | wc -l", r"^ +19$")
    await s.type("clear\ncat /ramdisk/long.txt | more\n")
    screen = await wait(s, r"\(stdin\) 24%", 10)
    assert screen.splitlines()[0] == "line 1"
    await s.type(" ")
    await wait(s, r"\Aline 25\n", 5)
    await s.type("q")
    await wait(s, r"^#$", 5)
    await run(s, "ls | frobnicate | wc -l", r"^frobnicate: command not found$")
    await run(s, "echo a |", r"^shell: syntax error near \|$")


async def test_ctrl_c_stops_every_stage_of_a_pipeline(root: FullSystem) -> None:
    s = root
    await install(s, {"/ramdisk/yes": YES})
    await s.type("clear\nsleep 60 | /ramdisk/yes | grep n\n")
    await wait(s, r"\A# sleep 60 \| /ramdisk/yes \| grep n$", 5)
    names = ("sleep", "yes", "grep")
    await wait_until(lambda: {p.name for p in s.kernel.processes.values()} >= set(names), timeout=10,
                     what="every stage running")
    await s.type("{Ctrl+C}")
    await wait(s, r"\^C\n#$", 5)
    assert not [p for p in s.kernel.processes.values() if p.name in names]
    assert await last_status(s) == "130"


async def test_variables_from_the_environment(root: FullSystem) -> None:
    s = root
    await install(s, {"/ramdisk/show": SHOW_ENV})
    await run(s, "echo $HOME $USER ${PATH}", r"^/ramdisk root /bin$")
    await run(s, "cd /ramdisk")
    await run(s, "echo $PWD", r"^/ramdisk$")
    await run(s, "export GREETING=hello")
    await run(s, "echo ${GREETING}, '$GREETING' \"$GREETING\"", r"^hello, \$GREETING hello$")
    await run(s, "./show", r"^hello None$")
    await run(s, "ONCE=just-now ./show", r"^hello just-now$")
    await run(s, "./show", r"^hello None$")
    await run(s, "GREETING=changed")
    await run(s, "./show", r"^changed None$")
    await run(s, "export", r"^GREETING=changed$")
    await run(s, "frobnicate")
    assert await last_status(s) == "127"
    await run(s, "echo x | grep y")
    assert await last_status(s) == "1"
    assert await last_status(s) == "0"  # (echo's)
    await run(s, "unset GREETING")
    await run(s, "echo [$GREETING]", r"^\[\]$")


async def test_history_ctrl_w_and_ctrl_u(root: FullSystem) -> None:
    s = root
    await run(s, "echo first")
    screen = await run(s, "history")
    assert output(screen)[-4:] == ["    1  clear", "    2  echo first", "    3  clear", "    4  history"]
    await s.type("clear\n")
    await wait(s, r"\A#$", 5)
    await s.type("echo one two{Ctrl+W}three\n")
    await wait(s, r"^one three\n#$", 5)
    await s.type("clear\necho keep  junk words  {Ctrl+W}{Ctrl+W}")
    await wait(s, r"\A# echo keep$", 5)  # (the row's trailing blanks are trimmed)
    await s.type("{Enter}")
    await wait(s, r"^keep\n#$", 5)
    await s.type("clear\n")
    await wait(s, r"\A#$", 5)
    await s.type("nonsense here{Left}{Left}{Left}{Left}{Ctrl+U}echo {End} now\n")
    await wait(s, r"^here now\n#$", 5)


async def test_whoami_sleep_and_uptime(root: FullSystem) -> None:
    s = root
    await run(s, "whoami", r"^root$")
    await run(s, "sleep 0.2")
    await run(s, "sleep soon", r"^sleep: invalid time interval 'soon'$")
    await s.type("clear\nsleep 60\n")
    await wait(s, r"\A# sleep 60$", 5)
    await s.type("{Ctrl+C}")
    await wait(s, r"\A# sleep 60\n\^C\n#$", 5)
    await run(s, "uptime", r"^ \d\d:\d\d:\d\d up \d+ min,  1 user,  load average: \d+\.\d\d, \d+\.\d\d, \d+\.\d\d$")
    await run(s, "cat /proc/uptime", r"^\d+\.\d\d \d+\.\d\d$")
    await run(s, "cat /proc/loadavg", r"^\d+\.\d\d \d+\.\d\d \d+\.\d\d \d+/\d+ \d+$")


async def test_root_prompt_is_hash_and_a_user_prompt_is_dollar() -> None:
    async with boot_full() as s:
        await login(s, "user")
        assert trimmed_screen(s).splitlines()[-1] == "$"
        await run(s, "whoami", r"^user$", p=r"\$")
        await s.type("exit\n")
        await login(s, "root")
        assert trimmed_screen(s).splitlines()[-1] == "#"


async def test_stat_refreshes_until_q(root: FullSystem) -> None:
    s = root
    await s.type("clear\nstat 0.2\n")
    screen = await wait(s, r"^ +PID USER +%CPU FRAMES  NAME$(?:.*\n)*.*stat: every 0\.2 s +q quit", 10)
    first = re.search(r"^up ([\d.]+) s", screen, re.MULTILINE)
    assert first is not None
    # It draws again: the uptime moves on.
    await wait(s, r"^up (?!" + re.escape(first.group(1)) + r" )[\d.]+ s", 5)
    await s.type("q")
    await wait(s, r"\A#$", 5)
    assert output(await run(s, "stat -n 2 0.1 | grep -c ^up")) == ["2"]
    await run(s, "stat x", r"^Usage: stat \[-n COUNT\] \[SECONDS\]$")


async def test_edit_shows_key_hints_and_indents_python(root: FullSystem) -> None:
    s = root
    await s.type("clear\nedit /ramdisk/f.py\n")
    screen = await wait(s, r"New file: /ramdisk/f\.py", 5)
    assert screen.splitlines()[-1].startswith("^S Save  ^Q Quit  ^F Find")
    await s.type("def f(x):{Enter}if x:{Enter}return 1{Enter}{Backspace}return 2{Enter}")
    await s.type("{Backspace}print(f(0)){Ctrl+S}")
    await wait(s, r"bytes written to /ramdisk/f\.py", 5)
    await s.type("{Ctrl+Q}")
    await wait(s, r"\A#$", 5)
    screen = await run(s, "cat /ramdisk/f.py")
    assert output(screen) == ["def f(x):", "    if x:", "        return 1", "    return 2", "print(f(0))"]
    # A file that is not Python keeps the indentation only.
    await s.type("clear\nedit /ramdisk/notes.txt\n")
    await wait(s, r"New file", 5)
    await s.type("  list:{Enter}item{Ctrl+S}{Ctrl+Q}")
    await wait(s, r"\A#$", 5)
    assert output(await run(s, "cat /ramdisk/notes.txt")) == ["  list:", "  item"]


async def test_help_fits_80_columns_and_lists_every_program(root: FullSystem) -> None:
    s = root
    await install(s, {"/bin/newtool": "async def main(proc):\n    return 0\n"})
    screen = await run(s, "help")
    lines = output(screen)
    assert lines[0] == "EuraliOS shell help"  # the whole page fits on the screen
    assert max(len(ln) for ln in lines) <= 79
    await run(s, "help > /ramdisk/help.txt")

    async def check(proc) -> int:  # noqa: ANN001
        text = (await proc.read_file("/ramdisk/help.txt")).decode()
        assert max(len(ln) for ln in text.splitlines()) <= 79
        listed = set(text.split("* Programs in /bin", 1)[1].split("\n", 1)[1].split())
        missing = set(await proc.listdir("/bin")) - listed
        return 1 if missing or "newtool" not in listed else 0

    assert await s.run(check) == 0
