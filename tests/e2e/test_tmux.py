"""The terminal UI in a real terminal: `euralios` inside a detached tmux session (80x27).

tmux is the terminal emulator here: the test types with send-keys and reads the screen with
capture-pane, so the whole path (prompt_toolkit input parsing, key mapping to PS/2 presses,
rendering of VGA memory with colours and the hardware cursor, SIGWINCH resizes, Ctrl-] quitting
and restoring the terminal) is exercised as a user would. Each test uses its own tmux server
socket, so nothing else running tmux is touched.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from euralios.pytest_plugin import wait_until_blocking

ROOT = Path(__file__).resolve().parents[2]
PROMPT = r"^login:$"  # capture-pane drops trailing blanks: "login: " reads "login:"

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")


class Tmux:
    def __init__(self, socket: str) -> None:
        self.socket = socket
        self.session = "euralios"

    def run(self, *args: str) -> str:
        r = subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args], capture_output=True,
                           text=True, timeout=10)
        if r.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.session, *keys)

    def screen(self, escapes: bool = False) -> str:
        return self.run("capture-pane", "-p", *(["-e"] if escapes else []), "-t", self.session)

    def cursor(self) -> tuple[int, int]:
        y, x = self.run("display-message", "-p", "-t", self.session, "#{cursor_y} #{cursor_x}").split()
        return int(y), int(x)

    def wait(self, pattern: str, timeout: float = 10.0) -> str:
        """Poll the pane until `pattern` (multiline regex) matches; bounded by `timeout`. (tmux
        is a host program: nothing tells us when its pane changes.)"""
        rx = re.compile(pattern, re.MULTILINE)

        def matched() -> str | None:
            text = self.screen()
            return text if rx.search(text) else None

        return wait_until_blocking(matched, timeout=timeout, interval=0.05, what=f"{pattern!r} in the tmux pane",
                                   detail=lambda: f"screen:\n{self.screen()}")


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    t = Tmux(f"euralios-test-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    command = f"{sys.executable} -m euralios.cli; echo EXITED:$?; sleep 60"
    t.run("new-session", "-d", "-s", t.session, "-x", "80", "-y", "27", "-c", str(ROOT), command)
    try:
        yield t
    finally:
        subprocess.run(["tmux", "-L", t.socket, "kill-server"], capture_output=True, timeout=10)


def test_terminal_ui_boots_types_switches_and_quits(tmux: Tmux) -> None:
    screen = tmux.wait(PROMPT)
    assert "Welcome to EuraliOS!" in screen
    status = screen.split("\n")[25]
    assert "console F2" in status and "net user" in status and status.rstrip().endswith("Ctrl-] quits")
    prompt_row = screen.split("\n").index("login:")
    assert tmux.cursor() == (prompt_row, 7)  # the hardware cursor is the terminal's cursor

    tmux.keys("root", "Enter")
    tmux.wait(r"^#$")
    tmux.keys("echo Hello, World!", "BSpace", "?", "Enter")
    screen = tmux.wait(r"^Hello, World\? *\n#$")
    assert "# echo Hello, World?" in screen

    tmux.keys("F3")
    screen = tmux.wait(r"console F3")
    tmux.wait(PROMPT)
    assert "Hello" not in tmux.screen()

    tmux.keys("F1")
    tmux.wait(r"\[init\] console F3")  # the latest init line (the first have scrolled: network start-up)
    coloured = tmux.screen(escapes=True)
    init_line = next(line for line in coloured.split("\n") if "console F3" in line and "[init]" in line)
    assert "\x1b[" in init_line.split("[init]")[0]  # drawn in colour (CGA dark green)

    tmux.keys("F2")
    tmux.wait(r"^Hello, World\? *\n#$")

    tmux.keys("C-]")
    screen = tmux.wait(r"EXITED:0")
    assert "Ctrl-] quits" not in screen  # the full-screen UI is gone: terminal restored


def test_resizing_redraws_the_screen(tmux: Tmux) -> None:
    # The status bar spans the terminal, so its hint ends at the right edge: after a resize it
    # moves there only if the UI saw SIGWINCH and redrew.
    bar = r"^ EuraliOS .*Ctrl-\] quits$"
    tmux.wait(PROMPT)
    tmux.run("resize-window", "-t", tmux.session, "-x", "100", "-y", "32")
    tmux.wait(r"^ EuraliOS .{77}Ctrl-\] quits$")  # 10 + 77 + 12 = 99 columns (then one blank)
    tmux.keys("abc")
    screen = tmux.wait(r"^login: abc")
    assert "Welcome to EuraliOS!" in screen and re.search(bar, screen, re.MULTILINE)
    tmux.run("resize-window", "-t", tmux.session, "-x", "80", "-y", "27")
    tmux.wait(r"^ EuraliOS .{57}Ctrl-\] quits$")
    tmux.keys("d", "Enter")
    tmux.wait(r"^Unknown login\. Try 'root' or 'user'\.\.\. *\nlogin:$")
    tmux.keys("C-]")
    tmux.wait(r"EXITED:0")


def test_ctrl_bracket_c_toggles_the_monitor(tmux: Tmux) -> None:
    tmux.wait(PROMPT)
    tmux.keys("C-]", "c")
    tmux.wait(r"^\(qemu\) $|^\(qemu\)$")
    tmux.keys("info status", "Enter")
    screen = tmux.wait(r"^VM status: running$")
    assert "monitor (Ctrl-] c: back to the screen)" in screen
    tmux.keys("stop", "Enter")
    tmux.wait(r"^VM status: running\n\(qemu\) stop\n")
    tmux.keys("C-]", "c")
    screen = tmux.wait(r"PAUSED")
    assert "Welcome to EuraliOS!" in screen  # back on the VGA screen
    tmux.keys("C-]", "c")
    tmux.keys("cont", "Enter")
    tmux.keys("quit", "Enter")
    tmux.wait(r"EXITED:0")
