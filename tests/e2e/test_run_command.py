"""`euralios run`: examples run through the real command line, statuses and errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def euralios(*args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "euralios.cli", *args], cwd=ROOT, capture_output=True,
                          input=input, timeout=timeout)


def test_hello_example() -> None:
    r = euralios("run", "examples/hello.py", "reader")
    assert r.returncode == 0, r.stderr
    assert b"Hello, reader! I am pid" in r.stdout


def test_pingpong_example_prints_its_rate() -> None:
    r = euralios("run", "examples/pingpong.py", "2000")
    assert r.returncode == 0, r.stderr
    assert b"2000 round trips in" in r.stdout and b"round trips/s" in r.stdout


def test_pipeline_example_moves_the_chunk() -> None:
    r = euralios("run", "examples/pipeline.py")
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "first: after sending, 0x28040000000 is gone from my address space" in out
    assert "middle: after sending" in out and "gone" in out
    assert "-> middle(pid" in out and "-> last(pid" in out


def test_crash_exits_1_with_its_traceback_on_stderr(tmp_path: Path) -> None:
    prog = tmp_path / "crash.py"
    prog.write_text("async def main(proc):\n    await proc.print('before')\n    1 / 0\n")
    for isolated in ((), ("--isolated",)):
        r = euralios("run", *isolated, str(prog))
        assert r.returncode == 1
        assert r.stdout == b"before\n"
        lines = r.stderr.decode().splitlines()
        assert lines[0].endswith("(crash) killed: ZeroDivisionError: division by zero"), lines
        assert "Traceback (most recent call last):" in lines
        assert '  File "crash", line 3, in main' in lines or '  File "crash.py", line 3, in main' in lines, lines
        assert "    1 / 0" in lines and lines[-1] == "ZeroDivisionError: division by zero"


def test_status_and_stdin(tmp_path: Path) -> None:
    prog = tmp_path / "echo.py"
    prog.write_text("async def main(proc):\n    line = await proc.read_line(echo=False)\n"
                    "    await proc.print('got', line.strip())\n    return 42\n")
    r = euralios("run", str(prog), input=b"typed text\n")
    assert r.returncode == 42
    assert r.stdout == b"got typed text\n"


def test_bad_option_and_missing_file_exit_2_with_one_line() -> None:
    r = euralios("run", "--mem", "lots", "examples/hello.py")
    assert r.returncode == 2
    assert r.stderr.decode().count("\n") == 1 and "bad memory size" in r.stderr.decode()
    r = euralios("run", "nope.py")
    assert r.returncode == 2 and r.stderr.decode().count("\n") == 1


def test_run_has_a_ramdisk(tmp_path: Path) -> None:
    prog = tmp_path / "files.py"
    prog.write_text("async def main(proc):\n    await proc.write_file('/ramdisk/a.txt', 'kept')\n"
                    "    await proc.print((await proc.read_file('/ramdisk/a.txt')).decode(), await proc.listdir('/ramdisk'))\n")
    r = euralios("run", str(prog))
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"kept ['a.txt']\n"


def test_isolated_runs_the_program_confined(tmp_path: Path) -> None:
    """By default `euralios run` is host scripting (in-process, the kernel reachable, as the
    user's own Python); --isolated runs the file as the OS runs a program from a file."""
    prog = tmp_path / "where.py"
    prog.write_text("async def main(proc):\n    await proc.print('kernel reachable:', hasattr(proc.gate, 'kernel'))\n")
    r = euralios("run", str(prog))
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"kernel reachable: True\n"
    r = euralios("run", "--isolated", str(prog))
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"kernel reachable: False\n"
    r = euralios("run", "--isolated", "--isolation", "none", str(prog))
    assert r.returncode == 2 and r.stderr.decode().count("\n") == 1 and r.stdout == b""


def test_python_dash_m_euralios_run_passes_the_status_through(tmp_path: Path) -> None:
    prog = tmp_path / "seven.py"
    prog.write_text("async def main(proc):\n    return 7\n")
    r = subprocess.run([sys.executable, "-m", "euralios", "run", str(prog)], cwd=ROOT, capture_output=True,
                       timeout=60)
    assert r.returncode == 7, r.stderr
