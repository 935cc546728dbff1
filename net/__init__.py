"""net: the guest's TCP/IP stack (user space), one concept a module.

The sans-IO stack, driven by frames and a clock passed in (tests drive it directly):

    stack.py        NetStack: Ethernet/IPv4 input and output, routing, ICMP, the socket calls
    config.py       IfConfig: the interface's address, gateway, DNS servers, MTU
    autoconf.py     DHCP for the interface (the client wired to the stack)
    neighbours.py   the ARP cache and the packets waiting for it
    connections.py  the TCP connections' bookkeeping (changes, timer heap, totals)
    sockets.py      UdpSocket, PingSocket, and the StackError a socket call raises
    lookups.py      DNS lookups over the stack's UDP sockets
    dhcp.py dns.py  the DHCP client and DNS messages/cache, sans-IO

The /tcp program around it (server.py's main), its threads and what it serves:

    server.py       NetServer: the wiring, opens, main(proc)
    options.py      the command line
    nic.py          the /dev/nic client (frame batches in reused chunks)
    timers.py       the timer thread and its alarms
    namespace.py    the /tcp paths and their file nodes
    sessions/       what each open handle serves
    errors.py       failure reasons -> /tcp error codes

gopher.py is the Gopher protocol shared by programs/gopher.py and programs/gopherd.py.
"""
