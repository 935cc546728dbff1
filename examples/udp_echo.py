"""A UDP echo server inside EuraliOS: `euralios run --net user,hostfwd=udp:127.0.0.1:7777-:7 examples/udp_echo.py`.

    udp_echo [PORT] [--count N]

Binds PORT (default 7, the echo service's) through the OS's TCP/IP stack, says so on stdout,
then sends every datagram back to whoever sent it, with "echo: " in front. With --count it
stops after N datagrams (exit status 0), so a test can wait for it to finish. A datagram of
just "quit" stops it too. examples/test_udp_echo_example.py tests it from the host.
"""


async def main(proc):
    args = proc.args[1:]
    port, count = 7, None
    if "--count" in args:
        i = args.index("--count")
        count = int(args[i + 1])
        del args[i:i + 2]
    if args:
        port = int(args[0])
    sock = await proc.udp_bind(port)
    await proc.print(f"[udp_echo] serving UDP port {port}")
    served = 0
    while count is None or served < count:
        payload, peer = await sock.recvfrom()
        if payload == b"quit":
            break
        await sock.sendto(b"echo: " + payload, peer)
        served += 1
        await proc.print(f"[udp_echo] {len(payload)} bytes from {peer[0]}:{peer[1]}")
    await sock.close()
    return 0
