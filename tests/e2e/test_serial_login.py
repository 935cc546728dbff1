"""`euralios --serial`: a login on the serial line (QEMU's -nographic), a tty like a console."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from euralios.system_boot import boot_full

ROOT = Path(__file__).resolve().parents[2]


async def test_init_runs_a_login_on_the_serial_line_and_it_is_a_tty() -> None:
    async with boot_full(serial_login=True) as system:
        await system.wait_for_output(r"login: $", 15)
        system.feed_input(b"root\recho over serial\r")  # a terminal's Enter is CR; typed ahead
        await system.wait_for_output(r"login: root\n", 10)  # the line echoes what login reads
        await system.wait_for_output(r"(?m)^over serial$", 15)
        # Ctrl+C reaches the job in front through the serial tty.
        system.feed_input(b"sleep 60\r")
        await system.wait_for_output(r"sleep 60\r?\n", 10)
        await system.settle(0.2, 2)
        system.feed_input(b"\x03")
        await system.wait_for_output(r"\^C\n# $", 10)
        # The VGA consoles are unaffected: F2 still has its own login.
        await system.wait_for_screen(r"login: *$", 10)


def test_serial_command_logs_in_on_stdin_and_stdout() -> None:
    """No full-screen UI: the host's stdin is typed on the line, stdout shows it (a pipe here,
    so no raw mode); `shutdown` powers off and euralios exits 0."""
    r = subprocess.run([sys.executable, "-m", "euralios", "--serial", "--net", "none"],
                       input=b"root\recho hello from $USER\rshutdown\r", cwd=ROOT, capture_output=True,
                       timeout=90, env={**os.environ, "TERM": "dumb"})
    out = r.stdout.decode("utf-8", "replace")
    assert r.returncode == 0, out + r.stderr.decode()
    assert "login: " in out and "hello from root" in out and "System halted." in out
    assert "\x1b[?1049h" not in out  # no full-screen UI
