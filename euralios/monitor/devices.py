"""`info pci`, `info network`, `info irq`: the machine's devices in QEMU's formats (sans-IO).

* info pci is QEMU's hmp_info_pci_device for each function of bus 0: the location, the class
  description QEMU's table gives (else `Class %04x`), vendor:device, the subsystem ids, `IRQ n,
  pin X` when the function has an interrupt pin, each BAR as programmed (I/O or 32-bit memory,
  with its last address) and `id ""` (no device here has a -device id).
* info network is QEMU's for a NIC and its peer: ``NAME: index=0,type=nic,model=rtl8139,macaddr=..``
  (model virtio-net-pci for that card, with its offered and negotiated features under it)
  then `` \\ PEER: index=0,type=KIND,...`` for the backend (--net's words; user shows QEMU's
  net=10.0.2.0,restrict=... info string). No card prints nothing, as QEMU with -nic none.
* info irq is QEMU's for the i8259 pair: per chip, `IRQ statistics for isa-i8259:` and
  `%2d: count` for each of its eight lines that was raised (the slave's lines numbered 0-7, as
  QEMU does; our IRQ 8-15).
"""

from __future__ import annotations

from typing import Any

from machine.pci import (
    BAR0,
    CLASS,
    INTERRUPT_LINE,
    INTERRUPT_PIN,
    SUBCLASS,
    SUBSYSTEM_ID,
    SUBSYSTEM_VENDOR,
    PciFunction,
)

# QEMU's pci_class_descriptions, for the classes this machine has (and a few neighbours).
CLASS_NAMES = {
    0x0100: "SCSI controller", 0x0101: "IDE controller", 0x0106: "SATA controller",
    0x0200: "Ethernet controller", 0x0300: "VGA controller", 0x0380: "Display controller",
    0x0600: "Host bridge", 0x0601: "ISA bridge", 0x0604: "PCI bridge", 0x0680: "Bridge",
    0x0c03: "USB controller",
}  # fmt: skip


def pci_lines(functions: dict[tuple[int, int, int], PciFunction]) -> list[str]:
    """`info pci` for every function, in bus/slot/function order."""
    out: list[str] = []
    for (bus, slot, function), fn in sorted(functions.items()):
        cls = fn.read(SUBCLASS, 1) | fn.read(CLASS, 1) << 8
        out.append(f"  Bus {bus:2d}, device {slot:3d}, function {function}:")
        out.append(f"    {CLASS_NAMES.get(cls, f'Class {cls:04x}')}: PCI device {fn.vendor:04x}:{fn.device:04x}")
        out.append(f"      PCI subsystem {fn.read(SUBSYSTEM_VENDOR, 2):04x}:{fn.read(SUBSYSTEM_ID, 2):04x}")
        pin = fn.read(INTERRUPT_PIN, 1)
        if pin:
            out.append(f"      IRQ {fn.read(INTERRUPT_LINE, 1)}, pin {chr(ord('A') + pin - 1)}")
        for index, bar in sorted(fn.bars.items()):
            raw = fn.read(BAR0 + 4 * index, 4)
            if bar.kind == "io":
                addr = raw & 0xFFFF_FFFC
                out.append(f"      BAR{index}: I/O at 0x{addr:04x} [0x{addr + bar.size - 1:04x}].")
            else:
                addr = fn.bar_address(index)
                pre = " prefetchable" if bar.prefetchable else ""
                bits = 64 if bar.wide else 32
                out.append(f"      BAR{index}: {bits} bit{pre} memory at 0x{addr:08x} [0x{addr + bar.size - 1:08x}].")
        out.append('      id ""')
    return out


def _backend_info(backend: Any) -> tuple[str, str]:
    """(QEMU netdev type, info string) for a machine.netdev backend, through any wrappers."""
    inner = backend
    while hasattr(inner, "inner"):
        inner = inner.inner
    spec = str(getattr(inner, "spec", "none") or "none")
    kind, _, arg = spec.replace(":", ",", 1).partition(",")
    if kind == "user":
        restrict = "on" if getattr(inner, "restrict", False) else "off"
        return "user", f"net=10.0.2.0,restrict={restrict}"
    if kind == "tap":
        return "tap", f"ifname={arg}"
    if kind == "raw":
        return "raw", f"ifname={arg}"
    if kind == "switch":
        return "switch", f"name={arg}"
    return kind or "none", spec


def network_lines(nic: Any, backend: Any) -> list[str]:
    """`info network`: the card (RTL8139 or virtio-net-pci) and, indented under it, its backend.
    A virtio card also shows what it offered and what its driver negotiated (QEMU shows neither;
    a learner wants both), and why it needs a reset when it does."""
    if nic is None:
        return []
    mac = ":".join(f"{b:02x}" for b in nic.mac)
    model = getattr(nic, "name", "rtl8139")
    out = [f"{model}.0: index=0,type=nic,model={model},macaddr={mac}"]
    info = getattr(nic, "info", None)
    if callable(info):
        details = info()
        out.append(f" features offered: {' '.join(details['offered'])}")
        out.append(f" features negotiated: {' '.join(details['negotiated']) or '(none: no driver yet)'}"
                   + (" (legacy interface)" if details["legacy"] else ""))
        if details["error"]:
            out.append(f" status {details['status']:#04x}: {details['error']}")
    if backend is not None:
        kind, info = _backend_info(backend)
        wrappers = []
        w = backend
        while hasattr(w, "inner"):
            wrappers.append(type(w).__name__.removesuffix("Backend").lower())
            w = w.inner
        extra = f" (through {', '.join(wrappers)})" if wrappers else ""
        out.append(f" \\ {kind}.0: index=0,type={kind},{info}{extra}")
    return out


def irq_lines(counts: list[int]) -> list[str]:
    """`info irq`: raise counts of the master's and the slave's lines."""
    out: list[str] = []
    for chip in (counts[:8], counts[8:16]):
        out.append("IRQ statistics for isa-i8259:")
        out.extend(f"{i:2d}: {n}" for i, n in enumerate(chip) if n > 0)
    return out
