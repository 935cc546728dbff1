"""The one condition for tests that make a private network namespace with a tap: without
/dev/net/tun, root or iproute2 the mechanism is truly missing (CI runs as root and has all three)."""

from __future__ import annotations

import os
import shutil

import pytest

NEED_ROOT = pytest.mark.skipif(
    not (os.path.exists("/dev/net/tun") and os.geteuid() == 0 and shutil.which("ip")),
    reason="needs /dev/net/tun, root and iproute2 (ip netns) to make a private network namespace",
)
