"""9P2000.L, sans-IO: the messages, their wire encoding, and a stream decoder.

9P2000.L is the Linux dialect of Plan 9's file protocol (diod's protocol.md; Linux's
include/net/9p/9p.h and net/9p/protocol.c; QEMU's hw/9pfs/9p.c speak it). EuraliOS uses it for
host folders: the virtio-9p device is a server over a host directory (machine/share/), and the
OS's client speaks it to that device or to a 9P server over TCP.

Every frame is ``size[4] type[1] tag[2] body``, little-endian, `size` counting itself. Each
message is a frozen dataclass (Tversion, Rversion, Tattach, Rattach, Twalk, Rwalk, ...) with its
type number in ``TYPE`` (:class:`MsgType`); the tag travels beside the message.

    >>> frame = encode(Tclunk(fid=1), tag=7)
    >>> decode(frame)
    (7, Tclunk(fid=1))

For a stream, feed a :class:`Decoder` and pull events until NEED_DATA: :class:`Frame`
(tag, message), :class:`BadMessage` (a well-framed but invalid message: answer Rlerror to its tag)
or :class:`StreamError` (an impossible size: close the stream). The codec raises only its own
:class:`NinepError` family (DecodeError, EncodeError).

Names and strings are ``str``; bytes that are not UTF-8 round-trip through ``surrogateescape``.
Readdir entries are :class:`Dirent` tuples in :class:`Rreaddir`; :func:`dirent_size` tells a
server how many fit in a Treaddir's `count`. :func:`describe` / :func:`describe_frame` turn a
message into a line and a dict of fields for a trace (``euralios --trace``).
"""

from proto.ninep.codec import (
    NEED_DATA,
    BadMessage,
    Decoder,
    Event,
    Frame,
    NeedData,
    StreamError,
    StreamErrorKind,
    decode,
    decode_body,
    encode,
    negotiate,
)
from proto.ninep.consts import (
    AT_REMOVEDIR,
    DEFAULT_MSIZE,
    HEADER_LEN,
    IOHDRSZ,
    MAXWELEM,
    MIN_MSIZE,
    NOFID,
    NONUNAME,
    NOTAG,
    QID_LEN,
    V9FS_MAGIC,
    VERSION,
    VERSION_UNKNOWN,
    VIRTFS_MSIZE,
    DirentType,
    Errno,
    GetattrMask,
    MsgType,
    OpenFlag,
    QidType,
    SetattrMask,
)
from proto.ninep.describe import describe, describe_frame
from proto.ninep.fields import (
    DecodeError,
    Dirent,
    EncodeError,
    NinepError,
    Qid,
    decode_dirents,
    dirent_size,
    encode_dirents,
)
from proto.ninep.messages import (
    MESSAGE_TYPES,
    Message,
    Rattach,
    Rauth,
    Rclunk,
    Rflush,
    Rgetattr,
    Rlcreate,
    Rlerror,
    Rlopen,
    Rmkdir,
    Rread,
    Rreaddir,
    Rremove,
    Rrename,
    Rrenameat,
    Rsetattr,
    Rstatfs,
    Runlinkat,
    Rversion,
    Rwalk,
    Rwrite,
    Tattach,
    Tauth,
    Tclunk,
    Tflush,
    Tgetattr,
    Tlcreate,
    Tlopen,
    Tmkdir,
    Tread,
    Treaddir,
    Tremove,
    Trename,
    Trenameat,
    Tsetattr,
    Tstatfs,
    Tunlinkat,
    Tversion,
    Twalk,
    Twrite,
    attach,
    layout,
)

__all__ = [
    "NEED_DATA", "BadMessage", "Decoder", "Event", "Frame", "NeedData", "StreamError",
    "StreamErrorKind", "decode", "decode_body", "encode", "negotiate",
    "AT_REMOVEDIR", "DEFAULT_MSIZE", "HEADER_LEN", "IOHDRSZ", "MAXWELEM", "MIN_MSIZE", "NOFID",
    "NONUNAME", "NOTAG", "QID_LEN", "VIRTFS_MSIZE", "V9FS_MAGIC", "VERSION", "VERSION_UNKNOWN", "DirentType",
    "Errno", "GetattrMask", "MsgType", "OpenFlag", "QidType", "SetattrMask",
    "describe", "describe_frame",
    "DecodeError", "Dirent", "EncodeError", "NinepError", "Qid", "decode_dirents", "dirent_size",
    "encode_dirents",
    "MESSAGE_TYPES", "Message", "Rattach", "Rauth", "Rclunk", "Rflush", "Rgetattr", "Rlcreate",
    "Rlerror", "Rlopen", "Rmkdir", "Rread", "Rreaddir", "Rremove", "Rrename", "Rrenameat", "Rsetattr", "Rstatfs",
    "Runlinkat", "Rversion", "Rwalk", "Rwrite", "Tattach", "Tauth", "Tclunk", "Tflush", "Tgetattr",
    "Tlcreate", "Tlopen", "Tmkdir", "Tread", "Treaddir", "Tremove", "Trename", "Trenameat", "Tsetattr", "Tstatfs",
    "Tunlinkat", "Tversion", "Twalk", "Twrite", "attach", "layout",
]
