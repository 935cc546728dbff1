"""9P2000.L numbers: message types, qid types, flag words, errno values, limits.

Every value here is fixed by the protocol as Linux (include/net/9p/9p.h) and diod's protocol.md
publish it, not by the host we run on: the errno numbers and open flags are Linux x86-64's,
which is what a 9P2000.L peer means by them even when the server runs elsewhere.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

__all__ = [
    "MsgType", "QidType", "DirentType", "OpenFlag", "GetattrMask", "SetattrMask", "Errno",
    "NOTAG", "NOFID", "NONUNAME", "VERSION", "VERSION_UNKNOWN", "MIN_MSIZE", "DEFAULT_MSIZE",
    "HEADER_LEN", "IOHDRSZ", "VIRTFS_MSIZE", "MAXWELEM", "AT_REMOVEDIR", "V9FS_MAGIC", "QID_LEN",
]

NOTAG = 0xFFFF  # the tag of Tversion: it is answered before any tag means anything
NOFID = 0xFFFFFFFF  # "no fid", e.g. Tattach's afid when there is no authentication
NONUNAME = 0xFFFFFFFF  # Tattach/Tauth n_uname when the numeric uid is not given
VERSION = "9P2000.L"
VERSION_UNKNOWN = "unknown"  # Rversion's answer to a version the server does not speak
MIN_MSIZE = 4096  # below this no useful Twrite fits (QEMU refuses it too)
DEFAULT_MSIZE = 512 * 1024  # what our server offers; Linux asks 128 KiB by default, virtio allows 512
HEADER_LEN = 7  # size[4] type[1] tag[2]
IOHDRSZ = 24  # Linux P9_IOHDRSZ: the Twrite header rounded up; iounit = msize - IOHDRSZ
#: The msize of our virtio-9p device and driver: a 1 MiB READ of a file is one Tread (the
#: largest the file protocol's READ asks of it), not two; each request costs a virtqueue
#: round trip and a host thread hop, far more than the copy of its bytes.
VIRTFS_MSIZE = (1 << 20) + IOHDRSZ
MAXWELEM = 16  # most names one Twalk may carry
QID_LEN = 13
AT_REMOVEDIR = 0x200  # Tunlinkat flags: remove a directory (Linux AT_REMOVEDIR)
V9FS_MAGIC = 0x01021997  # Rstatfs type when the server has no better one


class MsgType(IntEnum):
    """The type byte of a 9P2000.L message (T = request, R = its reply: always T + 1)."""

    TLERROR = 6  # never sent; the slot of Rlerror's request
    RLERROR = 7
    TSTATFS = 8
    RSTATFS = 9
    TLOPEN = 12
    RLOPEN = 13
    TLCREATE = 14
    RLCREATE = 15
    TSYMLINK = 16
    RSYMLINK = 17
    TMKNOD = 18
    RMKNOD = 19
    TRENAME = 20
    RRENAME = 21
    TREADLINK = 22
    RREADLINK = 23
    TGETATTR = 24
    RGETATTR = 25
    TSETATTR = 26
    RSETATTR = 27
    TXATTRWALK = 30
    RXATTRWALK = 31
    TXATTRCREATE = 32
    RXATTRCREATE = 33
    TREADDIR = 40
    RREADDIR = 41
    TFSYNC = 50
    RFSYNC = 51
    TLOCK = 52
    RLOCK = 53
    TGETLOCK = 54
    RGETLOCK = 55
    TLINK = 70
    RLINK = 71
    TMKDIR = 72
    RMKDIR = 73
    TRENAMEAT = 74
    RRENAMEAT = 75
    TUNLINKAT = 76
    RUNLINKAT = 77
    TVERSION = 100
    RVERSION = 101
    TAUTH = 102
    RAUTH = 103
    TATTACH = 104
    RATTACH = 105
    TERROR = 106  # 9P2000 only; 9P2000.L answers errors with Rlerror
    RERROR = 107
    TFLUSH = 108
    RFLUSH = 109
    TWALK = 110
    RWALK = 111
    TOPEN = 112
    ROPEN = 113
    TCREATE = 114
    RCREATE = 115
    TREAD = 116
    RREAD = 117
    TWRITE = 118
    RWRITE = 119
    TCLUNK = 120
    RCLUNK = 121
    TREMOVE = 122
    RREMOVE = 123
    TSTAT = 124
    RSTAT = 125
    TWSTAT = 126
    RWSTAT = 127

    @property
    def is_request(self) -> bool:
        return self % 2 == 0


class QidType(IntFlag):
    """qid.type: what kind of object the qid names (the high byte of a Plan 9 mode)."""

    FILE = 0x00
    LINK = 0x01
    SYMLINK = 0x02
    TMP = 0x04
    AUTH = 0x08
    MOUNT = 0x10
    EXCL = 0x20
    APPEND = 0x40
    DIR = 0x80


class DirentType(IntEnum):
    """Treaddir entry type: Linux's DT_* (the S_IFMT bits of st_mode shifted right by 12)."""

    UNKNOWN = 0
    FIFO = 1
    CHR = 2
    DIR = 4
    BLK = 6
    REG = 8
    LNK = 10
    SOCK = 12


class OpenFlag(IntFlag):
    """Tlopen/Tlcreate flags: 9P2000.L's P9_DOTL_* bits, which are Linux x86's O_* values."""

    RDONLY = 0o0
    WRONLY = 0o1
    RDWR = 0o2
    NOACCESS = 0o3
    ACCMODE = 0o3
    CREAT = 0o100
    EXCL = 0o200
    NOCTTY = 0o400
    TRUNC = 0o1000
    APPEND = 0o2000
    NONBLOCK = 0o4000
    DSYNC = 0o10000
    FASYNC = 0o20000
    DIRECT = 0o40000
    LARGEFILE = 0o100000
    DIRECTORY = 0o200000
    NOFOLLOW = 0o400000
    NOATIME = 0o1000000
    CLOEXEC = 0o2000000
    SYNC = 0o4000000


class GetattrMask(IntFlag):
    """Tgetattr request_mask / Rgetattr valid."""

    MODE = 0x1
    NLINK = 0x2
    UID = 0x4
    GID = 0x8
    RDEV = 0x10
    ATIME = 0x20
    MTIME = 0x40
    CTIME = 0x80
    INO = 0x100
    SIZE = 0x200
    BLOCKS = 0x400
    BTIME = 0x800
    GEN = 0x1000
    DATA_VERSION = 0x2000
    BASIC = 0x7FF  # MODE .. BLOCKS
    ALL = 0x3FFF


class SetattrMask(IntFlag):
    """Tsetattr valid. ATIME/MTIME without their *_SET bit mean "now" (the server's clock)."""

    MODE = 0x1
    UID = 0x2
    GID = 0x4
    SIZE = 0x8
    ATIME = 0x10
    MTIME = 0x20
    CTIME = 0x40
    ATIME_SET = 0x80
    MTIME_SET = 0x100


class Errno(IntEnum):
    """Rlerror ecode: Linux errno numbers (asm-generic/errno-base.h, errno.h)."""

    EPERM = 1
    ENOENT = 2
    EIO = 5
    ENXIO = 6
    E2BIG = 7
    EBADF = 9
    EAGAIN = 11
    ENOMEM = 12
    EACCES = 13
    EFAULT = 14
    EBUSY = 16
    EEXIST = 17
    EXDEV = 18
    ENODEV = 19
    ENOTDIR = 20
    EISDIR = 21
    EINVAL = 22
    ENFILE = 23
    EMFILE = 24
    ETXTBSY = 26
    EFBIG = 27
    ENOSPC = 28
    ESPIPE = 29
    EROFS = 30
    EMLINK = 31
    ERANGE = 34
    EDEADLK = 35
    ENAMETOOLONG = 36
    ENOSYS = 38
    ENOTEMPTY = 39
    ELOOP = 40
    ENODATA = 61
    EPROTO = 71
    EOVERFLOW = 75
    EBADMSG = 74
    EMSGSIZE = 90
    EOPNOTSUPP = 95
    EDQUOT = 122
    ESTALE = 116
    ECONNREFUSED = 111
