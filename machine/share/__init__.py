"""Host folders shared with the guest: the 9P2000.L server behind the virtio-9p device.

:class:`ShareServer` (server.py) answers 9P requests over one host directory, confined to it
(hostfs.py: every object reached through a directory fd, one checked name at a time, symlinks
never followed; names.py: which names are refused and with which errno). The device model that
carries its frames over a virtqueue, and the --share option, build on it.
"""

from machine.share.server import Fail, ShareServer

__all__ = ["ShareServer", "Fail"]
