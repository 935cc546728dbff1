"""The kernel ABI as user programs see it (the seed's numbers; spec §2, §4, §17).

User space keeps its own copy, as a C library keeps its own headers; tests/std/test_abi.py
checks it against the kernel's.
"""

# syscalls
FORK_THREAD = 0
EXIT_THREAD = 1
DEBUG_WRITE = 2
RECEIVE = 3
SEND = 4
SEND_RECEIVE = 5
OPEN = 6
MALLOC = 7
FREE = 8
YIELD = 9
NEW_RENDEZVOUS = 10
COPY_RENDEZVOUS = 11
EXEC = 12
MOUNT = 13
LIST_MOUNTS = 14
UMOUNT = 15
CLOSE = 16
AWAIT_INTERRUPT = 17
PORT_IN = 0x40
PORT_OUT = 0x41
CHUNK_INFO = 0x42  # EuraliOS-py: size of a chunk this process holds (check lengths you are sent)
MAP_PHYS = 0x43  # EuraliOS-py, I/O privilege only: map device memory (e.g. VGA text) as a chunk
PORT_VIO = 0x44  # EuraliOS-py, I/O privilege only: a vector of port ins/outs in one call (MINIX's vdevio)
PORT_VIO_MAX = 64  # entries per PORT_VIO call
REBOOT = 0x45  # EuraliOS-py, root only (Linux's reboot(2)): RDI one of the REBOOT_* below
REBOOT_QUERY = 0  # may I? (OK or NOT_PERMITTED, nothing happens)
REBOOT_RESTART = 1  # reset the machine (the keyboard controller's reset line); does not return
REBOOT_POWER_OFF = 2  # ACPI soft power-off; does not return

# errors
SEND_BLOCKING = 1
RECV_BLOCKING = 2
INVALID_HANDLE = 3
MEMALLOC = 4
PARAM = 5
UTF8 = 6
NOTFOUND = 7
THREAD = 8
MEMORY = 9
DOUBLEFREE = 10
NOMEMSLOTS = 11
CLOSED = 12
EXISTS = 13
NOT_IMPLEMENTED = 14
NOT_DIR = 15
NO_DATA = 16
DENIED = 17  # EuraliOS-py: permission denied (the seed used an ERROR_DENIED reply, then error 5)
# EuraliOS-py network errors (replies from /tcp, /udp, /dns)
REFUSED = 18
TIMEDOUT = 19
UNREACHABLE = 20
RESET = 21
# EuraliOS-py file and process errors (Unix's ENOTEMPTY, EISDIR, EPERM)
NOT_EMPTY = 22  # DELETE of a directory that still has entries
IS_DIR = 23  # a file request (READ, WRITE, truncate/append) to a directory
NOT_PERMITTED = 24  # an operation on something that is not yours (kill of another user's process)
ERROR_CONTAINS_MESSAGE = 0x80
ERROR_MASK = 0x7F

ERROR_TEXT = {
    1: "Send blocking", 2: "Receive blocking", 3: "Invalid handle", 4: "Memory allocation error",
    5: "Invalid parameter", 6: "UTF8 conversion error", 7: "Not found", 8: "Thread error",
    9: "Memory error", 10: "Double free", 11: "No memory slots", 12: "Rendezvous closed",
    13: "Already exists", 14: "Not implemented", 15: "Not a directory", 16: "No data",
    17: "Permission denied", 18: "Connection refused", 19: "Timed out", 20: "Host unreachable",
    21: "Connection reset", 22: "Directory not empty", 23: "Is a directory", 24: "Operation not permitted",
}

# message control bits
MSG_LONG = 0x100
KIND_VALUE = 0
KIND_HANDLE = 1
KIND_MEMORY = 2
KIND_ERROR = 3
D2_SHIFT = 9
D3_SHIFT = 11
REPLY_EXPECTED = 0x2000  # on receive: the sender waits for a reply (send_receive)

# message tags (spec §4.5)
READ = 1
WRITE = 2
DATA = 2
CHAR = 3
JSON = 4
VIDEO_MEMORY = 5
COMM_HANDLE = 6
QUERY = 7
OK = 8
EXIT = 9  # kernel exit notice: Short(EXIT, pid | ENDED_<how> << 32, status)
# How a process ended (bits 32-39 of an EXIT notice's first word): merriwig/abi.py's ENDED_*.
ENDED_EXITED = 0
ENDED_KILLED = 1  # by request (kill)
ENDED_INTERRUPTED = 2  # Ctrl+C
ENDED_CRASHED = 3  # an exception; its console was shown the traceback
ENDED_FAULT = 4
ENDED_OUT_OF_MEMORY = 5
ENDED_WATCHDOG = 6
ENDED_REFUSED = 7  # it could not be started confined
INITRD = 10  # Long(INITRD, n, chunk): JSON of "bin/NAME" and "sbin/NAME" sources: programs and services
SCROLL = 11  # to the console driver: Short(SCROLL, console id, lines back (<0 forward, 0 bottom)) -> OK(offset)
OPEN_TAG = 16
O_READ = 0
O_WRITE = 1
O_CREATE = 2
O_TRUNCATE = 4
O_APPEND = 8
OPEN_READWRITE = 17
CLOSE_TAG = 32
DELETE = 33
RENAME = 34
MKDIR = 64
# The console as a tty (drivers/tty.py, euralios/std/tty.py):
FOREGROUND = 40  # to a console writer: Long(FOREGROUND, Handle(reader), Handle(controller) | Value(0)) -> OK(entry)
READ_KEY = 41  # on a tty stdin: Short(READ_KEY, mode) -> Short(CHAR, code)
READ_LINE = 42  # on a tty stdin: Short(READ_LINE, mode) -> Long(DATA, n, Memory(line)) | Short(EMPTY): end
INTERRUPT = 43  # console -> a job's controller: Ctrl+C was typed for it
BACKGROUND = 44  # to a console writer: Short(BACKGROUND, entry) -> OK: that reader's program is gone
TTY_ECHO = 1  # mode bits of READ_KEY / READ_LINE (drivers.tty.Mode)
TTY_ISIG = 2
ACCEPT = 65  # to a /tcp/listen/PORT session: Short(ACCEPT) -> Long(COMM_HANDLE, Handle(conn), Value(0))
READ_INTO = 67  # to a /tcp connection: Long(READ_INTO, max, chunk) -> Long(DATA, n, the same chunk): net/sessions/tcp.py
EMPTY = 128
ERROR = 129
ERROR_INVALID_FORMAT = 130
ERROR_INVALID_UTF8 = 131
ERROR_INVALID_VALUE = 132
ERROR_UNKNOWN_MESSAGE = 133
ERROR_DENIED = 134

# exec
EXEC_PERM_IO = 1
EXEC_IDLE = 2  # start once the system is idle (at most 2 s later), as systemd's Type=idle
EXEC_FUNCTION_IMAGE = 0x80

# layout
PAGE = 4096
VGA_TEXT = 0xB8000  # physical address of the VGA text memory (80x25 cells of char + attribute)
KERNEL_INFO = 0x4FF_F000
