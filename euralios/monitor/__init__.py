"""A monitor as QEMU's (HMP): inspect and control the running machine from the host.

* pagetables.py, memdump.py, devices.py, sendkey.py: sans-IO parsing and QEMU's output formats
  (info tlb / info mem, x and xp, info pci / network / irq, sendkey key names);
* commands.py: the commands, one line in and the text out, over a Vm;
* vm.py: the boot loop (system_reset boots a fresh machine, power-off and quit end it) and
  stop/cont;
* server.py: `--monitor unix:PATH` and `--monitor stdio`; the terminal UI has it on Ctrl-] c.

Import the modules themselves (euralios.monitor.vm pulls in the whole boot; the command line's
--help needs only the command table).
"""

