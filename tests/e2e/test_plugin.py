"""The front door for someone testing their own programs: System.run's status and output,
network_ready, and the pytest plugin in a project of its own with no trio_mode (pytester)."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from euralios.boot import RunResult, program_source
from euralios.pytest_plugin import NO_PYTEST_TRIO, NOT_ASYNC

pytest_plugins = ["pytester"]


async def hello(proc: Any) -> int:
    await proc.print("hello,", " ".join(proc.args[1:]))
    await proc.write("no newline")
    return 3


async def crash(proc: Any) -> int:
    await proc.print("about to fail")
    raise ValueError("on purpose")


async def test_run_returns_the_status_and_what_the_program_printed(euralios_system: Any) -> None:
    system = euralios_system
    result = await system.run(hello, ["hello", "a", "b"])
    assert isinstance(result, RunResult)
    assert result == 3 and result.status == 3 and result.output == "hello, a b\nno newline"
    assert "hello, a b" in system.output()  # it still reached the console
    # A program from its image (run confined), with arguments.
    image = await system.run(program_source("examples/hello.py"), ["hello", "file"])
    assert image == 0 and image.output.startswith("Hello, file! I am pid ") and image.output.count("\n") == 2
    # A crash: status 1 and the report, in the program's own output.
    failed = await system.run(crash)
    assert failed == 1 and failed.output.startswith("about to fail\n")
    assert "ValueError: on purpose" in failed.output and "raise ValueError" in failed.output
    # Not on the console: capture=False, and .output says nothing.
    direct = await system.run(hello, ["hello", "direct"], capture=False)
    assert direct == 3 and direct.output == "" and "hello, direct" in system.output()


async def test_run_output_is_the_programs_own_not_the_consoles(euralios_system: Any) -> None:
    system = euralios_system
    started = trio.Event()

    async def noisy(proc: Any) -> int:
        started.set()
        for i in range(300):
            await proc.print(f"noise {i}")
        return 0

    noise = system.spawn(noisy, ["noisy"])
    await started.wait()
    result = await system.run(hello, ["hello", "quiet"])
    await noise.ended.wait()
    assert result.output == "hello, quiet\nno newline"
    assert "noise 299" in system.output()
    assert repr(result) == "RunResult(status=3, output='hello, quiet\\nno newline')"


async def test_network_ready_without_a_network_says_what_is_missing(euralios_system: Any) -> None:
    with pytest.raises(TimeoutError, match=r"not ready after 0.2 s; the stack said: nothing \(is it started"):
        await euralios_system.network_ready(timeout=0.2)


TINY_PROJECT = '''
import pytest

async def hello(proc):
    await proc.print("hi from", proc.args[1])
    return 0

async def test_run(euralios_system):
    result = await euralios_system.run(hello, ["hello", "pytester"])
    assert result == 0 and result.output == "hi from pytester\\n"

@pytest.mark.trio
async def test_marked_already(euralios_system):
    assert await euralios_system.run(hello, ["hello", "x"]) == 0

def test_sync_asks_for_a_system(euralios_system):
    pass

def test_plain():
    assert True
'''


def test_plugin_works_without_trio_mode(pytester: pytest.Pytester) -> None:
    """A project of its own (no trio_mode, no pytest-trio settings at all): its async tests
    using the plugin's fixtures run; a sync one that asks for a system fails with one line."""
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_mine=TINY_PROJECT)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rE")
    result.assert_outcomes(passed=3, errors=1)
    message = NOT_ASYNC.format(name="test_sync_asks_for_a_system", fixtures="euralios_system")
    assert message in result.stdout.str()
    assert "trio_mode" not in pytester.path.joinpath("tox.ini").read_text()  # makeini's file


def test_without_pytest_trio_the_plugin_says_what_to_install(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_mine=TINY_PROJECT)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:trio", "-rE")
    result.assert_outcomes(passed=1, errors=3)
    assert NO_PYTEST_TRIO.format(name="test_run", fixtures="euralios_system") in result.stdout.str()
