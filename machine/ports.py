"""The x86 I/O port space: 65536 byte-wide ports reached with ``in``/``out`` of 1, 2 or 4 bytes.

Devices claim the ports they decode; the bus dispatches each access to the owner. Ports nobody
claims behave like an undriven ISA bus on a PC: reads float high (all ones) and writes vanish. That
matters because drivers probe for hardware by reading a port and checking for 0xFF, so an absent
device must look absent rather than raise.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

PORT_COUNT = 0x10000
_MASKS = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF}


class PortDevice(Protocol):
    """What a device on the port bus implements (structural: no base class needed)."""

    def port_read(self, port: int, size: int) -> int: ...

    def port_write(self, port: int, size: int, value: int) -> None: ...


def _check(port: int, size: int) -> int:
    """Validate an access and return the value mask for its size.

    Bad sizes or ports are bugs in the caller (the kernel's port-I/O syscall validates user
    requests before they get here), so they raise rather than being silently truncated."""
    mask = _MASKS.get(size)
    if mask is None:
        raise ValueError(f"port access size must be 1, 2 or 4 bytes, got {size!r}")
    if not 0 <= port < PORT_COUNT:
        raise ValueError(f"port {port!r} outside 0..0xFFFF")
    return mask


class PortBus:
    """Dispatches port reads and writes to the devices that registered the ports.

    A multi-byte access is sent whole to the device owning its first port, as the chipset does for
    a device that decodes the wider access; devices that care split it themselves."""

    def __init__(self) -> None:
        self._devices: dict[int, PortDevice] = {}

    def register(self, ports: Iterable[int], device: PortDevice) -> None:
        """Claim ``ports`` for ``device``.

        Two devices decoding the same port is a board wiring error, so it raises ValueError and
        nothing of this call is registered."""
        wanted = list(ports)
        for port in wanted:
            if not 0 <= port < PORT_COUNT:
                raise ValueError(f"port {port!r} outside 0..0xFFFF")
            if port in self._devices:
                raise ValueError(f"port {port:#x} already registered to {self._devices[port]!r}")
        if len(set(wanted)) != len(wanted):
            raise ValueError("the same port appears twice in one registration")
        for port in wanted:
            self._devices[port] = device

    def device_at(self, port: int) -> PortDevice | None:
        """The device owning ``port``, or None (for diagnostics and tests)."""
        return self._devices.get(port)

    def read(self, port: int, size: int) -> int:
        """``in`` of ``size`` bytes; all ones when no device owns the port."""
        mask = _check(port, size)
        device = self._devices.get(port)
        if device is None:
            return mask
        return device.port_read(port, size) & mask

    def write(self, port: int, size: int, value: int) -> None:
        """``out`` of ``size`` bytes; ignored when no device owns the port."""
        mask = _check(port, size)
        device = self._devices.get(port)
        if device is not None:
            device.port_write(port, size, value & mask)
