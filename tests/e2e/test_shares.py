"""Host folders end to end: `--share` / `-virtfs` on the command line (good forms, bad forms ->
one line and exit 2), and a booted system where root reads and writes the host folder at
/host/TAG, `user` sees it only when shared with user=on, and a read-only share refuses writes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from euralios.cli import build_parser, check_share_list
from euralios.system_boot import boot_full
from machine.share.options import ShareOption, parse_share, parse_virtfs

ROOT = Path(__file__).resolve().parents[2]


def euralios(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "euralios.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "project"
    d.mkdir()
    (d / "hello.txt").write_text("hello from the host\n")
    return d


def test_good_forms_parse(folder: Path) -> None:
    p = build_parser()
    opts = p.parse_args(["--share", str(folder), "--share", f"{folder},tag=ro,readonly=on,user=on",
                         "-virtfs", f"local,path={folder},mount_tag=q,security_model=none,readonly=on"])
    check_share_list(p, opts)
    assert opts.shares == [ShareOption(str(folder), "project"),
                           ShareOption(str(folder), "ro", readonly=True, user=True),
                           ShareOption(str(folder), "q", readonly=True)]
    plain = parse_share(f"{folder},tag=x")
    assert plain.tag == "x" and not plain.readonly and not plain.user
    mapped = parse_virtfs(f"local,path={folder},mount_tag=m,security_model=mapped-xattr,id=fs0")
    assert mapped == ShareOption(str(folder), "m")


def test_bad_forms_exit_2_with_one_line(folder: Path, tmp_path: Path) -> None:
    spaced = tmp_path / "two words"
    spaced.mkdir()
    for args in (["--share", str(tmp_path / "missing")], ["--share", f"{folder},colour=red"],
                 ["--share", str(folder), "--share", str(folder)], ["--share", f"{folder},tag=a/b"],
                 ["--share", f"{folder},readonly=perhaps"], ["--share", str(spaced)],
                 ["--share", f"{folder},tag={'x' * 32}"], ["--share", str(folder / "hello.txt")],
                 ["-virtfs", f"local,path={folder},mount_tag=t,security_model=passthrough"],
                 ["-virtfs", f"local,path={folder},security_model=none"],
                 ["-virtfs", f"proxy,path={folder},mount_tag=t,security_model=none"]):
        r = euralios("--headless", *args)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stdout == ""
        assert r.stderr.startswith("euralios: ") and r.stderr.count("\n") == 1, (args, r.stderr)


def test_help_lists_the_forms() -> None:
    r = euralios("--help")
    assert r.returncode == 0
    assert "--share DIR[,tag=NAME][,readonly=on][,user=on]" in r.stdout
    assert "-virtfs local,path=DIR,mount_tag=NAME,security_model=none" in r.stdout


def test_root_cats_and_creates_host_files_headless(folder: Path) -> None:
    r = euralios("--headless", "--net", "none", "--share", f"{folder},tag=src",
                 "--expect", "login: ", "--type", r"root\n", "--expect", r"^# ",
                 "--type", r"cat /host/src/hello.txt\n", "--expect", r"^hello from the host",
                 "--type", r"echo made in the guest > /host/src/new.txt\n", "--expect", r"(?s)new\.txt.*^# ",
                 "--type", r"ls /host/src\n", "--expect", r"new\.txt", timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (folder / "new.txt").read_text() == "made in the guest\n"


async def login(system, who: str) -> None:  # type: ignore[no-untyped-def]
    await system.wait_for_screen("login: ", 15)
    await system.type(f"{who}\n")
    await system.wait_for_screen(r"(?m)^[#$] ", 15)


async def run(system, command: str, expect: str) -> None:  # type: ignore[no-untyped-def]
    await system.type(f"{command}\n")
    await system.wait_for_screen(expect, 15)


async def test_user_sees_only_user_shares(folder: Path, tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir()
    (private / "secret.txt").write_text("root only\n")
    shares = [ShareOption(str(folder), "pub", user=True), ShareOption(str(private), "priv")]
    async with boot_full(shares=shares) as system:
        await login(system, "user")
        await run(system, "ls /host", r"(?m)^pub/")
        await run(system, "cat /host/pub/hello.txt", r"(?m)^hello from the host")
        await run(system, "cat /host/priv/secret.txt", r"cat: /host/priv/secret.txt: not found")
        screen = system.screen_text()
        assert not re.search(r"(?m)^priv/", screen) and "root only" not in screen
        await system.type("{F3}")
        await login(system, "root")  # root's VFS has both
        await run(system, "cat /host/priv/secret.txt", r"(?m)^root only")


async def test_readonly_share_refuses_writes(folder: Path) -> None:
    async with boot_full(shares=[ShareOption(str(folder), "ro", readonly=True)]) as system:
        await login(system, "root")
        await run(system, "cat /host/ro/hello.txt", r"(?m)^hello from the host")
        await run(system, "echo no > /host/ro/x.txt", r"/host/ro/x.txt: permission denied")
    assert not (folder / "x.txt").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["hello.txt"]


def test_euralios_run_mounts_shares_for_the_program(folder: Path, tmp_path: Path) -> None:
    program = tmp_path / "show.py"
    program.write_text("async def main(proc):\n"
                       "    data = await proc.read_file('/host/src/hello.txt')\n"
                       "    await proc.write_file('/host/src/out.txt', data.upper())\n"
                       "    await proc.print(data.decode().strip())\n"
                       "    return 0\n")
    r = euralios("run", "--share", f"{folder},tag=src", str(program))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello from the host\n"  # only the program's output: driver lines go to the klog
    assert (folder / "out.txt").read_text() == "HELLO FROM THE HOST\n"


def test_trace_has_the_9p_of_a_cat(folder: Path, tmp_path: Path) -> None:
    """`euralios --share ... --trace FILE`: a cat of a host file leaves its 9P, decoded, in FILE."""
    import json

    trace = tmp_path / "trace.json"
    r = euralios("--headless", "--net", "none", "--share", f"{folder},tag=src", "--trace", str(trace),
                 "--expect", "login: ", "--type", r"root\n", "--expect", r"^# ",
                 "--type", r"cat /host/src/hello.txt\n", "--expect", r"^hello from the host", timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    events = [e for e in json.loads(trace.read_text())["traceEvents"] if e.get("cat") == "9p"]
    names = [e["name"] for e in events]
    assert any(n.startswith("Tversion msize=") for n in names) and any(n.startswith("Rversion ") for n in names)
    assert any(n.startswith("Tattach fid=0 ") for n in names)
    assert "Twalk fid=0 newfid=1 wnames=['hello.txt']" in names
    assert any(n.startswith("Tlopen fid=1 ") for n in names)
    assert any(n.startswith("Tread fid=1 offset=0 ") for n in names) and "Rread count=20" in names
