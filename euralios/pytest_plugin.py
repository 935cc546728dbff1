"""pytest fixtures for testing your own EuraliOS programs (installed with the package).

    async def test_hello(euralios_system):
        status = await euralios_system.run(my_main, ["hello"])
        assert status == 0
        assert "Hello" in euralios_system.output()

Tests must run under pytest-trio (set `trio_mode = true` in your pytest configuration).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from euralios.boot import System, boot


@pytest.fixture
async def euralios_system() -> AsyncIterator[System]:
    """A booted small system (kernel and serial console), shut down after the test."""
    async with boot() as system:
        yield system
