"""The /pci protocol (served by drivers/pci.py; spoken by drivers/rtl8139.py and init).

Every request is a Short message answered only to a caller that waits for it:

    Short(FIND_DEVICE, vendor, device)      -> Short(ADDRESS, addr, 0) / Short(NOTFOUND, NOT_FOUND_VALUE, 0)
    Short(READ_BAR, addr, bar)              -> Short(BAR, value, bar)  / NOTFOUND
    Short(ENABLE_BUS_MASTERING, addr, 0)    -> Short(OK, 0, 0)         / NOTFOUND

(QUERY and CLOSE are the file protocol's; see drivers/pci.py for what they answer.)
"""

from __future__ import annotations

FIND_DEVICE = 256
READ_BAR = 257
ENABLE_BUS_MASTERING = 258
ADDRESS = 384
NOTFOUND = 385
BAR = 386
NOT_FOUND_VALUE = 0xFFFF_FFFF_FFFF_FFFF  # the first data word of a NOTFOUND reply
