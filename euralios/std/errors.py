"""SyscallError: what every failing system call or server request raises in user programs."""

from euralios.std.abi import ERROR_TEXT


class SyscallError(Exception):
    """An error code from the kernel or a server, formatted as the seed does (`7 : Not found`)."""

    def __init__(self, code: int, message: object = None, detail: str = "") -> None:
        self.code = code
        self.message = message  # the message returned with the error, if any
        self.detail = detail
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.code} : {ERROR_TEXT.get(self.code, 'Unknown error')}"
        return f"{text} ({self.detail})" if self.detail else text

    def __repr__(self) -> str:
        return f"SyscallError({self.code})"
