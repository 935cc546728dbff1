"""The emulated PC: RAM, MMU, port bus, interrupt lines and the devices, wired together.

Like QEMU's machine model, this knows nothing of any operating system: the kernel programs it
through ports, interrupts and physical memory, as a CPU would.

Two ways out, both from the guest's own port writes as on a PC: the keyboard controller's reset
(``out 0x64, 0xFE``) and the ACPI soft power-off (``outw 0x604, 0x2000``, machine/acpi.py). Each
records why in ``halt_reason`` ("reset" or "poweroff") and sets ``halted``; whoever runs the
machine (euralios.monitor.vm.Vm) then boots a fresh one or ends. ``stop()``/``cont()`` are the
monitor's: the PIT stops counting and interrupts wait at the PIC (the kernel parks its threads).

The network card (``card``, the CLI's ``--nic``, QEMU's ``-nic model=``): ``rtl8139`` (the
default, the seed's card) or ``virtio-net-pci`` (alias ``virtio``), either in slot 3 on IRQ 11
with BAR0 at I/O port 0xC000; the virtio card also has its modern registers in a 64-bit memory
BAR at 0xFE000000. Device memory past RAM is decoded through ``memory.mmio``, which the PCI host
keeps in step with the BARs.

Host folders (``shares``, the CLI's ``--share`` and ``-virtfs``): each is a virtio-9p-pci
function of its own (machine/virtio/ninep.py) answered by a ShareServer over the folder, in slots
4, 5, ... with BAR0 at I/O port 0xC100 + 0x40 * n, BAR4 at 0xFE010000 + 0x4000 * n (above the
NIC's 16 KiB at 0xFE000000) and its own IRQ line from :data:`SHARE_IRQS`, at most
:data:`MAX_SHARES` of them. A line of its own, not a shared INTx: the kernel hands a pending
interrupt to one waiter, so two drivers on one line could lose each other's.
"""

from __future__ import annotations

import trio

from machine.acpi import PORTS as ACPI_PORTS
from machine.acpi import AcpiPm
from machine.irq import IrqController
from machine.memory import PhysicalMemory
from machine.mmu import MMU
from machine.netdev import Backend
from machine.pci import IO_WINDOW, PciHost, i440fx_functions
from machine.pit import PIT
from machine.ports import PortBus
from machine.ps2 import PS2Controller
from machine.rtl8139 import Rtl8139
from machine.serial import Serial
from machine.share import ShareServer
from machine.share.options import ShareOption, check_shares
from machine.vga import VgaText
from machine.virtio.net import VirtioNet
from machine.virtio.ninep import VirtioNinep
from proto.ninep import VIRTFS_MSIZE
from proto.virtio import Feature

RTL8139 = "rtl8139"
VIRTIO_NET = "virtio-net-pci"
#: ``--nic`` words: the model names QEMU uses, and the short alias.
NIC_MODELS = {RTL8139: RTL8139, VIRTIO_NET: VIRTIO_NET, "virtio": VIRTIO_NET}
SHARE_SLOT = 4
SHARE_IO_BASE, SHARE_IO_STEP = 0xC100, 0x40
SHARE_MEM_BASE, SHARE_MEM_STEP = 0xFE01_0000, 0x4000
SHARE_IRQS = (10, 5, 7, 6, 3, 12, 14, 15)  # lines no other device of this PC raises
MAX_SHARES = len(SHARE_IRQS)


#: QEMU's virtio-net-pci properties that withdraw a feature from the card's offer
#: (``--nic virtio-net-pci,csum=off,host_tso4=off``): so a learner can see what each one buys.
NIC_PROPERTIES: dict[str, Feature] = {
    "csum": Feature.NET_CSUM, "guest_csum": Feature.NET_GUEST_CSUM,
    "host_tso4": Feature.NET_HOST_TSO4, "guest_tso4": Feature.NET_GUEST_TSO4,
    "mrg_rxbuf": Feature.NET_MRG_RXBUF, "event_idx": Feature.EVENT_IDX,
    "indirect_desc": Feature.INDIRECT_DESC,
}  # fmt: skip


def parse_nic_spec(text: str) -> tuple[str, int]:
    """'virtio-net-pci,csum=off,...' -> (model name, feature bits withdrawn from the offer);
    ValueError (one line) for an unknown model, property or value."""
    word, *props = [part.strip() for part in text.strip().lower().split(",")]
    model = NIC_MODELS.get(word)
    if model is None:
        raise ValueError(f"--nic: unknown network card {word!r} (choose from rtl8139, virtio-net-pci, virtio)")
    withdrawn = 0
    for prop in props:
        key, eq, value = prop.partition("=")
        if model != VIRTIO_NET:
            raise ValueError(f"--nic: {model} has no property {key!r}")
        if key not in NIC_PROPERTIES or not eq or value not in ("on", "off"):
            raise ValueError(f"--nic: bad property {prop!r} (use {'|'.join(NIC_PROPERTIES)}=on|off)")
        if value == "off":
            withdrawn |= NIC_PROPERTIES[key]
        else:
            withdrawn &= ~NIC_PROPERTIES[key]
    return model, withdrawn


def parse_nic(text: str) -> str:
    """'rtl8139', 'virtio-net-pci' or 'virtio', for virtio with properties (``,csum=off``) ->
    the same in canonical form (the model's full name, the withdrawn features as ``name=off``);
    ValueError (one line) otherwise."""
    model, withdrawn = parse_nic_spec(text)
    return ",".join([model] + [f"{key}=off" for key, bit in NIC_PROPERTIES.items() if withdrawn & bit])


def parse_size(text: str | int) -> int:
    """'64M', '128m', '1G', '65536' -> bytes."""
    if isinstance(text, int):
        return text
    t = text.strip().upper().rstrip("B").rstrip("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(t[-1:], 1)
    num = t[:-1] if t[-1:] in "KMG" else t
    try:
        return int(num) * mult
    except ValueError:
        raise ValueError(f"bad memory size {text!r} (try 64M)") from None


class Machine:
    """A QEMU ``-machine pc``-like PC. ``nic`` plugs a network card (slot 3, IRQ 11) into the PCI
    bus with that backend as its wire: ``card`` says which (an RTL8139 by default, see
    :data:`NIC_MODELS`); ``mac`` is the card's address (default 52:54:00:12:34:56)."""

    def __init__(self, mem: str | int = "64M", nic: Backend | None = None, mac: str | bytes | None = None,
                 card: str = RTL8139, shares: list[ShareOption] | tuple[ShareOption, ...] = ()) -> None:
        self.memory = PhysicalMemory(parse_size(mem))
        self.mmu = MMU(self.memory)
        self.ports = PortBus()
        self.irq = IrqController()
        self.pit = PIT(self.irq)
        self.ports.register(range(0x40, 0x44), self.pit)
        self.serial = Serial(self.irq)
        self.ports.register(self.serial.ports, self.serial)
        self.keyboard = PS2Controller(self.irq, self.ports)
        self.vga = VgaText(self.memory, self.ports)
        self.pci = PciHost(self.memory.mmio)
        self.ports.register(self.pci.config_ports, self.pci)
        self.ports.register(IO_WINDOW, self.pci.window)
        for slot, function, fn in i440fx_functions():
            self.pci.add(slot, function, fn)
        self.backend = nic
        self.card, withdrawn = parse_nic_spec(card)
        self.nic: Rtl8139 | VirtioNet | None = None
        if nic is not None:
            if self.card == VIRTIO_NET:
                self.nic = VirtioNet(self.memory, self.irq, mac=mac)
                self.nic.offered &= ~withdrawn
                self.nic.transmit = nic.send
                if hasattr(nic, "send_gso"):  # the offload path (machine/netdev); else counted, dropped
                    self.nic.transmit_gso = nic.send_gso
            else:
                self.nic = Rtl8139(self.memory, self.irq, mac=mac)
                self.nic.transmit = nic.send
            self.pci.add(3, 0, self.nic.pci)
        self.shares = check_shares(list(shares))
        if len(self.shares) > MAX_SHARES:
            raise ValueError(f"at most {MAX_SHARES} shared folders (one IRQ line each), not {len(self.shares)}")
        self.ninep: list[VirtioNinep] = []
        for n, share in enumerate(self.shares):
            device = VirtioNinep(self.memory, self.irq, ShareServer(share.path, readonly=share.readonly, max_msize=VIRTFS_MSIZE), share.tag,
                                 line=SHARE_IRQS[n], io_base=SHARE_IO_BASE + SHARE_IO_STEP * n,
                                 mem_base=SHARE_MEM_BASE + SHARE_MEM_STEP * n)
            self.pci.add(SHARE_SLOT + n, 0, device.pci)
            self.ninep.append(device)
        self.acpi = AcpiPm(lambda: self.halt("poweroff"))
        self.ports.register(ACPI_PORTS, self.acpi)
        self.keyboard.reset_line = lambda: self.halt("reset")
        self.halted = trio.Event()
        self.halt_reason: str | None = None
        self.running = True  # False between the monitor's stop and cont

    def halt(self, reason: str) -> None:
        """The machine stops for good: "reset" (the CPU's reset line) or "poweroff"; the first
        reason wins (a reset during power-off is still a power-off)."""
        if self.halt_reason is None:
            self.halt_reason = reason
        self.halted.set()

    def stop(self) -> None:
        """The monitor's stop: the timer stops counting and the CPU takes no interrupts (devices
        raise them and they wait, pending, at the PIC)."""
        self.running = False
        self.pit.pause()
        self.irq.hold()

    def cont(self) -> None:
        """The monitor's cont: interrupts that waited are delivered, the timer counts again."""
        self.running = True
        self.irq.release()
        self.pit.resume()

    def detach_backend(self) -> Backend | None:
        """Take the NIC's wire back before this machine is torn down for a reset, so that close()
        leaves it open for the next machine (the wire outlives a reset, as on a real PC)."""
        backend, self.backend = self.backend, None
        return backend

    async def run(self) -> None:
        """Run the devices that have a life of their own: the timer and the NIC's backend.

        The backend is closed when the machine stops (the machine owns its wire)."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.pit.run)
                for device in self.ninep:
                    nursery.start_soon(device.run)
                if self.backend is not None and isinstance(self.nic, VirtioNet):
                    nursery.start_soon(self.nic.run, self.backend)  # it chooses run's arguments
                elif self.backend is not None and self.nic is not None:
                    nursery.start_soon(self.backend.run, self.nic.receive)
        finally:
            self.close()

    def close(self) -> None:
        """Release host resources held by devices (the NIC backend's fd or socket, the shares'
        directory fds)."""
        for device in self.ninep:
            device.close()
        if self.backend is not None:
            self.backend.close()
