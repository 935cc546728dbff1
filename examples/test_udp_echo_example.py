"""Test your own protocol: a UDP echo server inside EuraliOS, tested from the host (no root).

`euralios_usernet` (the pytest plugin installed with the package) boots the OS on the built-in
user network with the forwarding rule we ask for -- host 127.0.0.1:<a free port> to the guest's
UDP port 7 -- and waits until the guest has its address. We start examples/udp_echo.py inside
the OS, wait for its "serving" line, and talk to it with an ordinary host socket.

    .venv/bin/python -m pytest examples/test_udp_echo_example.py
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import trio

SERVER = (Path(__file__).parent / "udp_echo.py").read_bytes()


@pytest.mark.parametrize("euralios_usernet", [{"hostfwd": ["udp:127.0.0.1:0-:7"]}], indirect=True)
async def test_udp_echo_server_answers_the_host(euralios_usernet) -> None:
    net = euralios_usernet
    net.system.spawn(SERVER, ["udp_echo", "7"], name="udp_echo")      # runs confined, as from /bin
    await net.system.wait_for_output(r"\[udp_echo\] serving UDP port 7")
    port = net.host_port(7, "udp")                                     # the free port hostfwd got

    with trio.socket.socket(type=socket.SOCK_DGRAM) as host:
        await host.sendto(b"hello, guest", ("127.0.0.1", port))
        with trio.fail_after(10):
            answer, sender = await host.recvfrom(2048)

    assert answer == b"echo: hello, guest"
    assert sender == ("127.0.0.1", port)
    await net.system.wait_for_output(r"\[udp_echo\] 12 bytes from 10\.0\.2\.2:\d+")  # its log line
