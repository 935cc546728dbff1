"""The message protocols between EuraliOS processes, each defined once.

A protocol that a server answers and its clients speak used to be spelled on both sides (the
/pci tags in drivers/pci.py, drivers/rtl8139.py and programs/init/services.py; the /dev/nic tags and
frame batches in drivers/rtl8139.py and net/; the /tcp/mux tags in net/ and euralios.std.net),
so a change on one side could silently part them. Each module here is one protocol: its tags,
flag bits and payload codecs, imported by both ends. Like the rest of euralios.std they import
nothing of ours but euralios.std.

    pci   /pci, drivers/pci.py: finding a device, its BARs, bus mastering
    nic   /dev/nic, drivers/rtl8139.py: raw Ethernet frames, one at a time or in batches
    mux   /tcp/mux, net/sessions/mux.py: many sockets on one session, select/poll style
    udp   /tcp/udp/PORT, net/sessions/udp.py: a bound UDP socket's datagrams with their peers
    shares  the host folders: the SHARES word init and login read, the 9P device ids, /host
"""
