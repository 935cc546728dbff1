"""whoami: the user this runs as (the process' own, which the shell also gives as $USER)."""


async def main(proc) -> int:
    await proc.print(proc.user)
    return 0
