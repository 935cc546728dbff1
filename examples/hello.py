"""Hello, EuraliOS: `euralios run examples/hello.py [NAME]`."""


async def main(proc):
    name = proc.args[1] if len(proc.args) > 1 else "world"
    await proc.print(f"Hello, {name}! I am pid {proc.pid}, running as {proc.user}.")
    await proc.print(f"The time page says {proc.now():.3f} s since boot.")
    return 0
