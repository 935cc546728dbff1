"""The /tcp sessions: what one open handle of the namespace (net/namespace.py) serves.

Each is a vfs.server Session answered by a thread of its own, one request at a time:

    tcp.py    ConnSession (/tcp/HOST:PORT), ListenSession (/tcp/listen/PORT)
    udp.py    UdpSession (/tcp/udp/HOST:PORT connected, /tcp/udp/PORT bound)
    ping.py   PingSession (/tcp/ping/HOST)
    mux.py    MuxSession (/tcp/mux): many sockets on one session
    mount.py  MountSession: the shared mount handle, where opens arrive

A session's node (namespace.NetNode) releases its socket when the session ends, however it
ends. Sessions wait through the server's Condition (euralios.std.sync) and call `kick` after
changing the stack.
"""
