"""SyscallError: what every failing system call or server request raises in user programs."""

from euralios.std.abi import ERROR_TEXT


class SyscallError(Exception):
    """An error code from the kernel or a server, formatted as the seed does (`7 : Not found`)."""

    def __init__(self, code: int, message: object = None, detail: str = "") -> None:
        self.code = code
        # The message returned with the error: for a failed send, what is ours again (its chunk
        # and handles to free); None when it was delivered and went down with its receiver.
        self.message = message
        self.detail = detail
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.code} : {ERROR_TEXT.get(self.code, 'Unknown error')}"
        return f"{text} ({self.detail})" if self.detail else text

    def __repr__(self) -> str:
        return f"SyscallError({self.code})"
