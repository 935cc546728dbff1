"""euralios.std: the user-side standard library every EuraliOS program uses (the seed's
euralios_std). A program is a module with `async def main(proc) -> int`; `proc` is a Proc."""

from euralios.std import abi
from euralios.std.carried import discard
from euralios.std.chunk import Chunk
from euralios.std.errors import SyscallError
from euralios.std.fs import File
from euralios.std.message import Error, Handle, Memory, Message
from euralios.std.proc import STDIN, STDOUT, Child, Proc

__all__ = [
    "abi", "Chunk", "Child", "Error", "File", "Handle", "Memory", "Message", "Proc", "STDIN", "STDOUT",
    "SyscallError", "discard",
]
