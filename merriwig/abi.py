"""The kernel's binary interface: syscall numbers, error codes, message control bits and tags.

These numbers are the contract between user programs and the kernel (the seed's values, spec §2,
§4, §17). User space has its own copy in euralios/std/abi.py, as a C library has its own headers;
tests/kernel/test_syscalls.py (test_std_abi_matches_the_kernel_abi) checks the two agree.
"""

# Syscall numbers (RAX & 0xFF), spec §2.3.
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
SYSCALL_NAMES = {
    0: "fork_thread", 1: "exit_thread", 2: "debug_write", 3: "receive", 4: "send",
    5: "send_receive", 6: "open", 7: "malloc", 8: "free", 9: "yield", 10: "new_rendezvous",
    11: "copy_rendezvous", 12: "exec", 13: "mount", 14: "list_mounts", 15: "umount", 16: "close",
    17: "await_interrupt",
}
# Port I/O: the seed uses in/out instructions gated by IOPL; we expose them through the same gate
# as numbers past the syscall table, allowed only to processes started with EXEC_PERM_IO.
PORT_IN = 0x40
PORT_OUT = 0x41
# chunk_info: (base, size in bytes, physical start) of the chunk holding RDI. EuraliOS-py
# extension: a receiver must check a length it was sent against the chunk before reading.
CHUNK_INFO = 0x42
MAP_PHYS = 0x43  # I/O-privileged: map device memory (outside managed RAM) as a chunk
# Vectored port I/O (as MINIX's SYS_VDEVIO): RDI points at RSI entries of 8 bytes, each
# (u16 port, u8 size, u8 op: 0 in / 1 out, u32 value), done in order; an "in" stores what it read
# back into its entry's value. One kernel entry for a driver's burst of register accesses.
PORT_VIO = 0x44
PORT_VIO_MAX = 64
# reboot (Linux's reboot(2), root only, else NOT_PERMITTED): RDI is what to do. The kernel does
# it as a PC's firmware-less kernel does: RESTART pulses the keyboard controller's reset line
# (out 0x64, 0xFE), POWER_OFF is the ACPI soft-off (outw 0x604, 0x2000); neither returns.
# REBOOT_QUERY only answers whether the caller may (so a program can say goodbye first).
REBOOT = 0x45
REBOOT_QUERY = 0
REBOOT_RESTART = 1
REBOOT_POWER_OFF = 2

# Error codes, spec §2.2.
SUCCESS = 0  # (named OK in the seed; OK is the message tag below)
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
# EuraliOS-py errors the kernel itself returns (euralios/std/abi.py has the whole list, with texts).
DENIED = 17  # permission denied (umount or mount over a mount point by a user)
NOT_EMPTY = 22
IS_DIR = 23  # a file request to a directory (READ on /proc)
NOT_PERMITTED = 24  # kill of another user's process
ERROR_CONTAINS_MESSAGE = 0x80
ERROR_MASK = 0x7F

# Message control bits, spec §4.2.
MSG_LONG = 0x100
KIND_VALUE = 0
KIND_HANDLE = 1
KIND_MEMORY = 2
KIND_ERROR = 3
D2_SHIFT = 9
D3_SHIFT = 11
CTRL_MASK = 0x1F00
REPLY_EXPECTED = 0x2000  # on receive: the sender used send_receive and waits for a reply (extension)

# Message tags the kernel itself produces.
MSG_WRITE = 2
MSG_EXIT = 9  # kernel -> exit-notify rendezvous: Short(MSG_EXIT, pid | ENDED_<how> << 32, status); EuraliOS-py extension
# How a process ended, in bits 32-39 of MSG_EXIT's first word (its pid is the low 32 bits).
ENDED_EXITED = 0
ENDED_KILLED = 1  # by request (/proc kill, the host)
ENDED_INTERRUPTED = 2  # Ctrl+C
ENDED_CRASHED = 3  # an exception (or an image that would not load)
ENDED_FAULT = 4  # a page fault or general protection fault
ENDED_OUT_OF_MEMORY = 5
ENDED_WATCHDOG = 6
ENDED_REFUSED = 7  # it could not be started confined

# exec flags (RAX bits 8-15)
EXEC_PERM_IO = 1
# Start when the system is idle (every runnable thread has run and blocked), at most IDLE_START_MAX
# seconds later: systemd's Type=idle. For work that should not delay what is on screen -- init
# starts the TCP/IP stack (a fifth of a second of loading) this way, after the login prompt.
EXEC_IDLE = 2
IDLE_START_MAX = 2.0
EXEC_FUNCTION_IMAGE = 0x80  # RDI holds a host coroutine function instead of a pointer (scripting)

# File-protocol tags, for the kernel's own file server (/proc); spec §4.5.
READ = 1
DATA = 2
JSON = 4
COMM_HANDLE = 6
QUERY = 7
OK = 8
OPEN_TAG = 16
O_WRITE = 1
CLOSE_TAG = 32
ERROR = 129
ERROR_UNKNOWN_MESSAGE = 133
ERROR_DENIED = 134
NO_DATA = 16
