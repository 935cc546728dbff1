"""9P messages as one line of text and a dict of fields, for people reading a trace.

A learner opening ``euralios --trace`` in Perfetto should see the conversation, not bytes:

    describe(Twalk(fid=0, newfid=1, wnames=("a", "b")), tag=3)
      -> ("Twalk fid=0 newfid=1 wnames=['a', 'b']",
          {"tag": 3, "type": "Twalk", "type_number": 110, "fid": 0, "newfid": 1, "wnames": ["a", "b"]})
    describe(Rwalk(wqids=(Qid(), Qid())), tag=3)[0] -> "Rwalk qids=2"

The title names the fields that say what happened; long replies (Rgetattr, Tsetattr, Rstatfs)
show the few that matter in the title and keep every field in ``args``. Bytes are never copied
whole into a trace: ``data`` becomes its length (``count``) and a short preview, so a 512 KiB
Rread costs the trace a few dozen bytes. Everything returned is JSON-ready (ints, strs, lists,
dicts). Pure: no I/O, and a frame that does not decode is described as such, not raised.
"""

from __future__ import annotations

from dataclasses import fields as dc_fields
from typing import Any

from proto.ninep.codec import decode
from proto.ninep.consts import NOFID, NOTAG, Errno, MsgType
from proto.ninep.fields import Dirent, NinepError, Qid
from proto.ninep.messages import Message

__all__ = ["describe", "describe_frame", "PREVIEW"]

PREVIEW = 32  # bytes of data shown in args["data"]

# The fields a title shows for messages with many; the rest stay in args.
_TITLE_FIELDS: dict[MsgType, tuple[str, ...]] = {
    MsgType.RGETATTR: ("qid", "mode", "size"),
    MsgType.TSETATTR: ("fid", "valid", "mode", "size"),
    MsgType.RSTATFS: ("bsize", "blocks", "bfree", "files"),
}
_OCTAL = frozenset({"mode"})
_HEX = frozenset({"request_mask", "valid", "flags"})


def _type_name(mtype: int) -> str:
    try:
        name = MsgType(mtype).name
    except ValueError:
        return f"type{mtype}"
    return name[0] + name[1:].lower()  # TWALK -> Twalk


def _qid(q: Qid) -> str:
    """type:version:path, the type by name (dir, file, symlink ...)."""
    kind = q.type.name.lower() if q.type.name else f"{int(q.type):#x}"
    return f"{kind}:{q.version}:{q.path:#x}"


def _value(name: str, v: Any) -> Any:
    """A field as JSON-ready data for args."""
    if isinstance(v, Qid):
        return _qid(v)
    if isinstance(v, tuple):
        return [_value(name, x) for x in v]
    if isinstance(v, Dirent):
        return {"name": v.name, "qid": _qid(v.qid), "offset": v.offset, "type": int(v.type)}
    if isinstance(v, bytes):
        return repr(v[:PREVIEW]) + ("..." if len(v) > PREVIEW else "")
    if name in ("fid", "afid", "newfid") and v == NOFID:
        return "NOFID"
    return int(v) if isinstance(v, int) else v


def _shown(name: str, v: Any) -> str:
    """One field as it appears in the title."""
    if isinstance(v, bytes):
        return f"count={len(v)}"
    if name == "wqids":
        return f"qids={len(v)}"
    if name == "entries":
        return f"entries={len(v)}"
    if name == "ecode":
        try:
            return f"ecode={Errno(v).name}"
        except ValueError:
            return f"ecode={v}"
    if name in _OCTAL:
        return f"{name}={v:#o}"
    if name in _HEX:
        return f"{name}={v:#x}"
    if isinstance(v, Qid):
        return f"{name}={_qid(v)}"
    if isinstance(v, tuple):
        return f"{name}={list(v)!r}"
    if isinstance(v, str):
        return f"{name}={v!r}"
    return f"{name}={_value(name, v)}"


def describe(msg: Message, tag: int) -> tuple[str, dict[str, Any]]:
    """(title, args) of one message: the title a trace shows, the args with tag, type and every field."""
    mtype = msg.TYPE
    tname = _type_name(mtype)
    args: dict[str, Any] = {"tag": "NOTAG" if tag == NOTAG else tag, "type": tname, "type_number": int(mtype)}
    parts = [tname]
    wanted = _TITLE_FIELDS.get(mtype)
    for f in dc_fields(msg):  # type: ignore[arg-type]
        v = getattr(msg, f.name)
        if isinstance(v, bytes):
            args["count"] = len(v)
        args[f.name] = _value(f.name, v)
        if wanted is None or f.name in wanted:
            parts.append(_shown(f.name, v))
    return " ".join(parts), args


def describe_frame(frame: bytes | memoryview) -> tuple[str, dict[str, Any]]:
    """(title, args) of one whole frame; a frame that does not decode says so in the title."""
    try:
        tag, msg = decode(frame)
    except NinepError as e:
        mtype = frame[4] if len(frame) > 4 else -1
        tag = int.from_bytes(bytes(frame[5:7]), "little") if len(frame) >= 7 else -1
        tname = _type_name(mtype) if mtype >= 0 else "?"
        return f"{tname} (undecodable: {e})", {"tag": tag, "type": tname, "bytes": len(frame), "error": str(e)}
    return describe(msg, tag)
