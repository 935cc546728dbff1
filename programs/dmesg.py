"""dmesg: the kernel log (from /proc/klog)."""


async def main(proc):
    text = (await proc.read_file("/proc/klog")).decode("utf-8", "replace")
    if len(proc.args) > 1 and proc.args[1].isdigit():
        text = "".join(text.splitlines(keepends=True)[-int(proc.args[1]):])
    await proc.write(text)
    return 0
