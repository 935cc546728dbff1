"""The /pci protocol (served by drivers/pci.py; spoken by the NIC drivers and init).

Every request is a Short message answered only to a caller that waits for it:

    Short(FIND_DEVICE, vendor, device)      -> Short(ADDRESS, addr, 0) / Short(NOTFOUND, NOT_FOUND_VALUE, 0)
    Short(READ_BAR, addr, bar)              -> Short(BAR, value, bar)  / NOTFOUND
    Short(ENABLE_BUS_MASTERING, addr, 0)    -> Short(OK, 0, 0)         / NOTFOUND
    Short(READ_CONFIG, addr, offset)        -> Short(CONFIG, dword, offset) / NOTFOUND; the 32 bits
                                               of configuration space at ``offset`` (0-0xFC, a
                                               multiple of 4; else ERROR_INVALID_VALUE): how a
                                               driver walks a capability list (virtio's)

(QUERY and CLOSE are the file protocol's; see drivers/pci.py for what they answer.)
"""

from __future__ import annotations

import json
from typing import Any

from euralios.std import abi
from euralios.std.fs import take_bytes

FIND_DEVICE = 256
READ_BAR = 257
ENABLE_BUS_MASTERING = 258
READ_CONFIG = 259
ADDRESS = 384
NOTFOUND = 385
BAR = 386
CONFIG = 387
NOT_FOUND_VALUE = 0xFFFF_FFFF_FFFF_FFFF  # the first data word of a NOTFOUND reply


async def device_irq(sys: Any, pci: int, address: int, default: int) -> int:
    """The IRQ line /pci's listing (its QUERY) gives the device at ``address``, else ``default``:
    firmware routes the lines, the driver only learns which (every PCI driver asks the same)."""
    listing = await sys.rcall(pci, abi.QUERY)
    if listing.tag == abi.JSON:
        for device in json.loads(await take_bytes(sys, listing)).get("subdirs", []):
            if device.get("address") == address and isinstance(device.get("irq"), int):
                return int(device["irq"])
    return default
