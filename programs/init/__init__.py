"""init ("Hyacinth"): the first process; starts the drivers and servers and owns the virtual consoles.

The host starts init with I/O privilege and two handles (spec §1.3-1.4, adapted):

* handle 0 (stdin): keys. init gives a copy to the keyboard driver as its stdout, so every key
  typed arrives here as Short(CHAR, code, 0).
* handle 1 (stdout): the rendezvous on which the host parked Long(INITRD, n, chunk), the initial
  RAM disk with the images of every driver, server and built-in program, and then
  Long(VIDEO_MEMORY, n, chunk), the VGA text memory. Afterwards the host may post kernel-log lines
  on it as Long(WRITE, n, chunk); init shows them on the system console (F1), so a process killed
  for a fault is reported there.

Boot order: receive INITRD; the keyboard driver; receive VIDEO_MEMORY; the console driver on a
private rendezvous, sent the video memory; console 0 (the system console, F1) with a coloured
boot log; the RAM disk, filled from the initial RAM disk; the devices and the network; console 1
(F2) running the console program; then the key loop.

The package, one concept a file: consoles.py (the consoles, key routing, the console driver's
restarts), services.py (the drivers and servers, started from their images), supervisor.py
(restarting them), klog.py (kernel-log lines onto F1).
"""

from __future__ import annotations

from euralios.std import STDOUT, Memory, abi, discard
from programs.init.consoles import BLUE, RESET, TAG, Consoles
from programs.init.klog import kernel_log
from programs.init.services import Image, Services, receive_initrd


async def main(proc) -> int:
    sys = proc.sys
    await sys.debug_write("[init] Starting")
    images = await receive_initrd(sys)
    if images is None:
        return 1
    consoles = Consoles(proc, images.get(Image.ECHO, b""))
    services = Services(proc, consoles, images)
    keymap = proc.env.get("KEYMAP", "us")
    keyboard = await services.keyboard(keymap)
    consoles.keyboard = keyboard
    video = await sys.receive(STDOUT)
    if video.tag != abi.VIDEO_MEMORY or not isinstance(video.d3, Memory):
        await sys.debug_write(f"[init] expected VIDEO_MEMORY on handle 1, got message {video.tag}")
        await discard(sys, video)
        return 1
    console = await services.console()
    await consoles.driver_started(console, video)

    system = await consoles.open_console(0)
    await consoles.activate(system)
    await consoles.say(system, f"{TAG} {BLUE}Starting EuraliOS...{RESET}\n")
    await consoles.log(f"keyboard driver: pid {keyboard.child.pid}, layout {keymap}")
    await consoles.log(f"console driver: pid {console.child.pid}, {video.d2} bytes of video memory")
    await consoles.log("system console: F1 (this screen); user consoles: F2-F5")
    await services.filesystems()
    consoles.secrets = services.secrets
    await services.devices()
    await proc.spawn_thread(kernel_log, consoles)

    await consoles.activate(await consoles.user_console(1))
    return await consoles.serve_keys()
