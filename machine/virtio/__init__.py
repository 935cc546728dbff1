"""virtio devices on PCI, as QEMU models them: the split virtqueue, the transport, the net card.

One concept a file (the specification's numbers -- status, features, capability types, register
maps -- are proto/virtio.py's: the device model and drivers/virtio_net.py read the same names):

* ``dma.py``    the device's bounds-checked access to guest RAM (rings and buffers)
* ``queue.py``  the split virtqueue (descriptor table, available and used rings, EVENT_IDX)
* ``device.py`` status and feature negotiation, queues, ISR and the INTx line
* ``pci.py``    the virtio-pci transport: modern capabilities in BAR4, the legacy I/O BAR0
* ``net.py``    virtio-net-pci: the card the board plugs in for ``--nic virtio-net-pci``

A driver's author needs pci.py's docstring (where everything is), device.py's (what the device
refuses) and net.py's (the frames and their headers).
"""
