"""PCI bus driver: finds the devices on bus 0 and answers questions about them (spec §11.7).

Started with I/O privilege; whoever starts it mounts its stdin (handle 0) at /pci. It talks to the
hardware through configuration mechanism #1 (address to port 0xCF8, data at 0xCFC-0xCFF) and
enumerates bus 0: every slot, function 0, and functions 1-7 of multi-function devices (the seed
looked at function 0 only and so missed e.g. the IDE controller at 00:01.1). BAR sizes are probed
the standard way (decoding off, write all ones, read back the mask, restore), so the device list
says how big each window is.

Requests on handle 0 (replies only to callers that wait for one, i.e. used send_receive/rcall):

| request                                   | reply                                              |
|-------------------------------------------|----------------------------------------------------|
| Short(FIND_DEVICE=256, vendor, device)    | Short(ADDRESS=384, addr, 0) / Short(NOTFOUND=385, 2**64-1, 0) |
| Short(READ_BAR=257, addr, bar)            | Short(BAR=386, value, bar); NOTFOUND for bar > 5 or an unknown addr |
| Short(ENABLE_BUS_MASTERING=258, addr, 0)  | sets bit 2 of the command register; Short(OK, 0, 0) |
| Short(READ_CONFIG=259, addr, offset)     | Short(CONFIG=387, dword, offset): configuration space, read only; offset 0-0xFC, a multiple of 4, else Short(ERROR_INVALID_VALUE) |
| Short(QUERY=7)                            | Long(JSON, len, chunk): {"subdirs": [device, ...], ...} |
| Short(CLOSE=32)                           | nothing to end; Short(OK, 0, 0)                     |
| anything else                             | Short(ERROR_UNKNOWN_MESSAGE=133, 0, 0)             |

Unlike the seed, READ_BAR, READ_CONFIG and ENABLE_BUS_MASTERING accept only addresses of devices
found on the bus, so a client cannot read or write arbitrary configuration space through this
server (READ_CONFIG reads: a driver walks its card's capability list with it), and every
message gets an answer (the seed printed unknown messages and left the caller waiting forever).
"""

from __future__ import annotations

import json

from euralios.std import STDIN, Message, SyscallError, abi, discard
from euralios.std.fs import send_bytes
from euralios.std.protocols.pci import (
    ADDRESS,
    BAR,
    CONFIG,
    ENABLE_BUS_MASTERING,
    FIND_DEVICE,
    NOT_FOUND_VALUE,
    NOTFOUND,
    READ_BAR,
    READ_CONFIG,
)
from euralios.std.serve import serve

CONFIG_ADDRESS = 0xCF8
CONFIG_DATA = 0xCFC

COMMAND = 0x04
CMD_IO = 0x1
CMD_MEMORY = 0x2
CMD_BUS_MASTER = 0x4

CLASS_NAMES = {
    (0x01, 0x01): "IDE Controller",
    (0x02, 0x00): "Ethernet Controller",
    (0x03, 0x00): "VGA Compatible Controller",
    (0x06, 0x00): "Host Bridge",
    (0x06, 0x01): "ISA Bridge",
    (0x06, 0x80): "Other Bridge",
}


def address_of(bus: int, slot: int, function: int) -> int:
    """The configuration address of a function (register 0), as port 0xCF8 takes it."""
    return 0x8000_0000 | bus << 16 | slot << 11 | function << 8


class Pci:
    """Configuration space access through the two ports (one thread uses it, so no lock)."""

    def __init__(self, sys) -> None:
        self.sys = sys

    async def read(self, address: int, offset: int, size: int = 4) -> int:
        await self.sys.port_out(CONFIG_ADDRESS, address | (offset & 0xFC), 4)
        return await self.sys.port_in(CONFIG_DATA + (offset & 3), size)

    async def write(self, address: int, offset: int, value: int, size: int = 4) -> None:
        await self.sys.port_out(CONFIG_ADDRESS, address | (offset & 0xFC), 4)
        await self.sys.port_out(CONFIG_DATA + (offset & 3), value, size)

    async def size_bars(self, address: int) -> list[dict]:
        """The six BARs of a type 0 header: kind, address and size (sizing with decoding off)."""
        command = await self.read(address, COMMAND, 2)
        await self.write(address, COMMAND, command & ~(CMD_IO | CMD_MEMORY), 2)
        bars = []
        upper_half = -1  # index of the high dword of a 64-bit memory BAR: not a BAR of its own
        try:
            for index in range(6):
                if index == upper_half:
                    continue
                offset = 0x10 + 4 * index
                value = await self.read(address, offset)
                await self.write(address, offset, 0xFFFF_FFFF)
                mask = await self.read(address, offset)
                await self.write(address, offset, value)
                if mask == 0 or mask == 0xFFFF_FFFF:
                    continue  # no BAR here
                if value & 1:
                    size = (~(mask & 0xFFFF_FFFC) & 0xFFFF) + 1 if mask >> 16 == 0 else \
                        (~(mask & 0xFFFF_FFFC) & 0xFFFF_FFFF) + 1
                    bars.append({"index": index, "kind": "io", "address": value & 0xFFFF_FFFC, "size": size,
                                 "value": value})
                else:
                    size = (~(mask & 0xFFFF_FFF0) & 0xFFFF_FFFF) + 1
                    bars.append({"index": index, "kind": "mem", "address": value & 0xFFFF_FFF0, "size": size,
                                 "prefetchable": bool(value & 8), "value": value})
                    if value & 0x6 == 0x4:
                        upper_half = index + 1  # sized by its low half only (enough below 4 GiB)
        finally:
            await self.write(address, COMMAND, command, 2)
        return bars

    async def describe(self, bus: int, slot: int, function: int) -> dict | None:
        """Everything worth knowing about one function, or None if nothing answers there."""
        address = address_of(bus, slot, function)
        ids = await self.read(address, 0)
        if ids == 0xFFFF_FFFF or ids & 0xFFFF == 0xFFFF:
            return None
        vendor, device = ids & 0xFFFF, ids >> 16
        reg2 = await self.read(address, 0x08)
        reg3 = await self.read(address, 0x0C)
        header = (reg3 >> 16) & 0xFF
        klass, subclass, prog_if, revision = reg2 >> 24, (reg2 >> 16) & 0xFF, (reg2 >> 8) & 0xFF, reg2 & 0xFF
        info = {
            "name": f"{vendor:04X}_{device:04X}",
            "location": f"{bus:02X}:{slot:02X}.{function}",
            "description": CLASS_NAMES.get((klass, subclass), "Unknown"),
            "address": address,
            "vendor": vendor,
            "device": device,
            "class": klass,
            "subclass": subclass,
            "prog_if": prog_if,
            "revision": revision,
            "header_type": header,
            "subsystem": 0,
            "irq": None,
            "pin": 0,
            "bars": [],
        }
        if header & 0x7F == 0:
            info["subsystem"] = (await self.read(address, 0x2C)) >> 16
            reg15 = await self.read(address, 0x3C)
            info["pin"] = (reg15 >> 8) & 0xFF
            line = reg15 & 0xFF
            info["irq"] = line if info["pin"] and line != 0xFF else None
            info["bars"] = await self.size_bars(address)
        return info

    async def enumerate(self, bus: int = 0) -> list[dict]:
        devices = []
        for slot in range(32):
            first = await self.describe(bus, slot, 0)
            if first is None:
                continue
            devices.append(first)
            if first["header_type"] & 0x80:
                for function in range(1, 8):
                    info = await self.describe(bus, slot, function)
                    if info is not None:
                        devices.append(info)
        return devices



async def handle(pci: Pci, devices: list[dict], msg: Message) -> Message | None:
    """The reply to one request (None: nothing to say)."""
    sys = pci.sys
    by_address = {d["address"]: d for d in devices}
    if msg.is_long:
        await discard(sys, msg)
        return Message(abi.ERROR_UNKNOWN_MESSAGE, 0, 0)
    tag, d2, d3 = msg.tag, msg.d2, msg.d3
    if tag == FIND_DEVICE:
        for d in devices:
            if d["vendor"] == d2 & 0xFFFF and d["device"] == d3 & 0xFFFF:
                return Message(ADDRESS, d["address"], 0)
        return Message(NOTFOUND, NOT_FOUND_VALUE, 0)
    if tag == READ_BAR:
        if d2 not in by_address or not 0 <= d3 <= 5:
            return Message(NOTFOUND, NOT_FOUND_VALUE, 0)
        return Message(BAR, await pci.read(d2, 0x10 + 4 * d3), d3)
    if tag == READ_CONFIG:
        if d2 not in by_address:
            return Message(NOTFOUND, NOT_FOUND_VALUE, 0)
        if not isinstance(d3, int) or not 0 <= d3 <= 0xFC or d3 % 4:
            return Message(abi.ERROR_INVALID_VALUE, 0, 0)
        return Message(CONFIG, await pci.read(d2, d3), d3)
    if tag == ENABLE_BUS_MASTERING:
        if d2 not in by_address:
            return Message(NOTFOUND, NOT_FOUND_VALUE, 0)
        command = await pci.read(d2, COMMAND, 2)
        await pci.write(d2, COMMAND, command | CMD_BUS_MASTER, 2)
        return Message(abi.OK, 0, 0)
    if tag == abi.QUERY:
        listing = {
            "short": "PCI",
            "description": "PCI bus devices",
            "messages": {"find_device": FIND_DEVICE, "read_bar": READ_BAR,
                         "enable_bus_mastering": ENABLE_BUS_MASTERING, "read_config": READ_CONFIG,
                         "query": abi.QUERY},
            "subdirs": devices,
            "files": [],
        }
        data = json.dumps(listing).encode()
        return Message(abi.JSON, len(data), await send_bytes(sys, data))
    if tag == abi.CLOSE_TAG:
        # A client closing its handle politely: nothing to end. Answered OK if it waits: left
        # unanswered, it would wait for ever and our next receive would fail (RECV_BLOCKING).
        return Message(abi.OK, 0, 0)
    return Message(abi.ERROR_UNKNOWN_MESSAGE, 0, 0)


async def report(proc, devices: list[dict]) -> None:
    """The seed's boot lines (``[pci] Device BBBB:SS:FF [VVVV:DDDD] class``), one per device, on
    our stdout (the system console)."""
    lines = []
    for d in devices:
        a = d["address"]
        where = f"{(a >> 16) & 0xFF:04X}:{(a >> 11) & 0x1F:02X}:{(a >> 8) & 7:02X}"
        lines.append(f"[pci] Device {where} [{d['vendor']:04X}:{d['device']:04X}] {d['description']}")
    try:
        await proc.print("\n".join(lines))
    except SyscallError:
        pass  # no console: the listing is still available through QUERY


async def main(proc) -> int:
    pci = Pci(proc.sys)
    devices = await pci.enumerate(0)
    await report(proc, devices)

    async def request(msg: Message) -> Message | None:
        return await handle(pci, devices, msg)

    await serve(proc.sys, STDIN, request)  # until unmounted and nobody holds a handle
    return 0
