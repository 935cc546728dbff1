"""The escape corpus: programs a `user` writes to get out, one technique each (issue 14).

Every program starts with PRELUDE, which knows the test's host-side targets (a marker file to
create, a secret file to read, a victim process to kill, a listener to connect to) and tries all
of them with whatever the technique got hold of: an `os` module, an `open` function, a `sys`.
Whatever works prints ESCAPED; the tests assert that nothing did and that nothing changed on the
host, in root's data, or in the kernel's modules. Techniques that aim at the OS itself (the kernel
object, monkeypatching, smuggling, exhaustion) have their own checks in the test.
"""

from __future__ import annotations

from dataclasses import dataclass

PRELUDE = '''
MARKER = {marker!r}
SECRET_FILE = {secret_file!r}
VICTIM = {victim}
PORT = {port}
ROOT_SECRET = "/ramdisk/root/secret.txt"
said = []

def note(text):
    said.append(str(text)[:300])

def with_os(os):
    """Everything an attacker does with a real os module."""
    try:
        fd = os.open(MARKER, os.O_CREAT | os.O_WRONLY, 0o644)
        os.write(fd, b"escaped")
        os.close(fd)
        note("ESCAPED marker written")
    except BaseException as e:
        note(f"marker: {{type(e).__name__}}")
    try:
        fd = os.open(SECRET_FILE, os.O_RDONLY)
        note("ESCAPED secret " + os.read(fd, 200).decode())
    except BaseException as e:
        note(f"secret: {{type(e).__name__}}")
    try:
        os.kill(VICTIM, 15)
        note("ESCAPED victim killed")
    except BaseException as e:
        note(f"kill: {{type(e).__name__}}")
    try:
        os.system("touch " + MARKER)
        if os.path.exists(MARKER):
            note("ESCAPED os.system")
    except BaseException as e:
        note(f"system: {{type(e).__name__}}")

def with_open(opener):
    """Everything an attacker does with a function that opens host files."""
    try:
        with opener(SECRET_FILE) as f:
            note("ESCAPED secret " + str(f.read()))
    except BaseException as e:
        note(f"read: {{type(e).__name__}}")
    try:
        with opener(MARKER, "w") as f:
            f.write("escaped")
        note("ESCAPED marker written")
    except BaseException as e:
        note(f"write: {{type(e).__name__}}")

def with_sys(sys):
    m = sys.modules
    if "os" in m:
        with_os(m["os"])
    if "socket" in m:
        try:
            s = m["socket"].socket()
            s.connect(("127.0.0.1", PORT))
            note("ESCAPED connected")
        except BaseException as e:
            note(f"socket: {{type(e).__name__}}")
    if "merriwig.loader" in m:
        try:
            m["merriwig.loader"]._CODE_CACHE.clear()
            note("reached the loader")
        except BaseException as e:
            note(f"loader: {{type(e).__name__}}")

def find_in_frames(frame):
    """Walk frames outwards for a module global that leads somewhere."""
    while frame is not None:
        g = frame.f_globals
        for name in ("os", "sys", "_os"):
            if name in g and hasattr(g[name], "modules" if name == "sys" else "open"):
                (with_sys if name == "sys" else with_os)(g[name])
                return True
        b = g.get("__builtins__")
        b = b if isinstance(b, dict) else getattr(b, "__dict__", {{}})
        if "open" in b:
            with_open(b["open"])
            return True
        frame = frame.f_back
    note("frames: nothing found")
    return False

async def finish(proc):
    line = "RESULT " + " | ".join(said)
    await proc.sys.debug_write(line)  # the kernel log keeps it whole (the screen wraps it)
    await proc.print(line)
    return 0
'''


@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # the class of technique (issue 14's list)
    body: str  # the body of `async def main(proc):`, indented four spaces
    expect_killed: bool = False  # contained by killing the program (watchdog, memory)


def program(case: Case, **targets: object) -> str:
    return PRELUDE.format(**targets) + "\n\nasync def main(proc):\n" + case.body + "\n"


CASES = [
    # ------------------------------------------------------------------ frames
    Case("frame-f_back", "frames", """
    import inspect
    find_in_frames(inspect.currentframe().f_back)
    return await finish(proc)"""),
    Case("coroutine-cr_frame", "frames", """
    async def inner():
        return 1
    c = inner()
    import inspect
    frame = inspect.currentframe()
    found = find_in_frames(frame)
    c.close()
    try:
        note(f"cr_frame back: {type(c.cr_frame).__name__}")
    except BaseException as e:
        note(type(e).__name__)
    return await finish(proc)"""),
    Case("generator-gi_frame", "frames", """
    def gen():
        yield __import__("inspect").currentframe().f_back
    g = gen()
    frame = next(g).f_back
    find_in_frames(frame)
    return await finish(proc)"""),
    Case("traceback-tb_frame", "frames", """
    try:
        proc.gate.nonexistent_attribute
    except AttributeError as e:
        tb = e.__traceback__
        while tb.tb_next is not None:
            tb = tb.tb_next
        find_in_frames(tb.tb_frame)
    return await finish(proc)"""),
    # ------------------------------------------------------------------ subclasses
    Case("subclasses-wrap_close", "subclasses", """
    for cls in ().__class__.__base__.__subclasses__():
        if cls.__name__ == "_wrap_close":
            g = cls.__init__.__globals__
            with_os(g["sys"].modules["os"]) if "sys" in g else with_os(cls.__init__.__globals__.get("os", g))
            break
    else:
        note("no _wrap_close")
    return await finish(proc)"""),
    Case("subclasses-fileio", "subclasses", """
    todo, seen = [object], set()
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        if cls.__name__ == "FileIO":
            with_open(cls)
            return await finish(proc)
        try:
            todo.extend(cls.__subclasses__())
        except TypeError:
            pass
    note("no FileIO")
    return await finish(proc)"""),
    Case("subclasses-builtin-importer", "subclasses", """
    for cls in object.__subclasses__():
        if cls.__name__ == "BuiltinImporter":
            try:
                posix = cls.load_module("posix")
                with_os(posix)
            except BaseException as e:
                note(f"importer: {type(e).__name__}")
            break
    return await finish(proc)"""),
    Case("subclasses-catch_warnings", "subclasses", """
    for cls in object.__subclasses__():
        if cls.__name__ == "catch_warnings":
            with_sys(cls()._module.sys)
            break
    return await finish(proc)"""),
    # ------------------------------------------------------------------ globals and builtins
    Case("globals-real-import", "globals/builtins", """
    imp = main.__globals__["__builtins__"]["__import__"]
    try:
        importlib = imp.__globals__["importlib"]
        with_os(importlib.import_module("os"))
    except BaseException as e:
        note(f"import: {type(e).__name__}")
    return await finish(proc)"""),
    Case("builtins-module-via-print", "globals/builtins", """
    real = print.__self__
    with_open(real.open)
    return await finish(proc)"""),
    Case("globals-of-std", "globals/builtins", """
    real = type(proc).__init__.__globals__["__builtins__"]
    real = real if isinstance(real, dict) else vars(real)
    try:
        with_os(real["__import__"]("os"))
    except BaseException as e:
        note(f"std builtins: {type(e).__name__}")
    return await finish(proc)"""),
    # ------------------------------------------------------------------ format strings
    Case("format-string-kernel", "format strings", """
    for fmt in ("{0.gate.kernel.processes}", "{0.gate.process.vfs}", "{0.gate._space}",
                "{0.gate.kernel.klog.lines}"):
        try:
            note("ESCAPED leak " + fmt.format(proc)[:120])
        except BaseException as e:
            note(f"format: {type(e).__name__}")
    return await finish(proc)"""),
    # ------------------------------------------------------------------ module attributes
    Case("module-scapy-utils-os", "module attributes", """
    import scapy.utils
    with_os(scapy.utils.os)
    return await finish(proc)"""),
    Case("module-warnings-sys", "module attributes", """
    import warnings
    with_sys(warnings.sys)
    return await finish(proc)"""),
    Case("module-locale-sys", "module attributes", """
    import locale
    with_sys(locale.sys)
    return await finish(proc)"""),
    Case("module-zoneinfo-tzpath-os", "module attributes", """
    import zoneinfo
    with_os(zoneinfo._tzpath.os)
    return await finish(proc)"""),
    Case("module-random-_os", "module attributes", """
    import random
    with_os(random._os)
    return await finish(proc)"""),
    Case("module-inspect-os", "module attributes", """
    import inspect
    with_os(inspect.os)
    with_sys(inspect.sys)
    return await finish(proc)"""),
    # ------------------------------------------------------------------ file openers
    Case("opener-io-open", "file openers", """
    import io
    with_open(io.open)
    return await finish(proc)"""),
    Case("opener-codecs-open", "file openers", """
    import codecs
    with_open(codecs.open)
    return await finish(proc)"""),
    Case("opener-tokenize-open", "file openers", """
    import tokenize
    with_open(tokenize.open)
    return await finish(proc)"""),
    Case("opener-linecache", "file openers", """
    import inspect
    lines = inspect.linecache.getlines(SECRET_FILE)
    note(("ESCAPED secret " + "".join(lines)) if lines else "linecache: nothing")
    return await finish(proc)"""),
    Case("opener-inspect-getsource", "file openers", """
    import inspect, json
    try:
        note("ESCAPED host source " + inspect.getsource(json)[:60])
    except BaseException as e:
        note(f"getsource: {type(e).__name__}")
    return await finish(proc)"""),
    Case("opener-loader-get_data", "file openers", """
    import json
    try:
        note("ESCAPED secret " + json.__loader__.get_data(SECRET_FILE).decode())
    except BaseException as e:
        note(f"get_data: {type(e).__name__}")
    return await finish(proc)"""),
    Case("opener-scapy-pcap", "file openers", """
    from scapy.utils import rdpcap, wrpcap
    try:
        wrpcap(MARKER, [])
        note("ESCAPED wrpcap")
    except BaseException as e:
        note(f"wrpcap: {type(e).__name__}")
    try:
        rdpcap(SECRET_FILE)
        note("ESCAPED rdpcap")
    except BaseException as e:
        note(f"rdpcap: {type(e).__name__}")
    return await finish(proc)"""),
    # ------------------------------------------------------------------ proc and gate
    Case("gate-kernel-make-root", "proc/gate attributes", """
    try:
        kernel = proc.gate.kernel
        me = kernel.processes[proc.pid]
        me.user = "root"
        note("ESCAPED became root " + str(kernel))
    except BaseException as e:
        note(f"kernel: {type(e).__name__}")
    try:
        note("ESCAPED root data " + (await proc.read_file(ROOT_SECRET)).decode())
    except BaseException as e:
        note(f"root file: {type(e).__name__}")
    return await finish(proc)"""),
    Case("gate-process-vfs-mount", "kernel object", """
    try:
        kernel = proc.gate.kernel
        init = next(p for p in kernel.processes.values() if p.name == "init")
        r, _ = init.vfs.resolve("/ramdisk/x")
        r.incref()
        proc.gate.process.vfs.mount("/rootdisk", r)
        note("ESCAPED mounted init's disk")
        note("ESCAPED root data " + (await proc.read_file("/rootdisk/root/secret.txt")).decode())
    except BaseException as e:
        note(f"mount: {type(e).__name__}")
    return await finish(proc)"""),
    Case("kernel-login-passwords", "kernel object", """
    try:
        kernel = proc.gate.kernel
        login = next(p for p in kernel.processes.values() if p.name == "login")
        r, _ = login.vfs.resolve("/etc/passwd.json")
        note("ESCAPED reached the password store " + repr(r))
    except BaseException as e:
        note(f"passwords: {type(e).__name__}")
    return await finish(proc)"""),
    Case("gate-space-read-other", "kernel object", """
    try:
        kernel = proc.gate.kernel
        other = next(p for p in kernel.processes.values() if p.name == "init")
        note("ESCAPED read init memory " + other.space.read(0x400000, 16).hex())
    except BaseException as e:
        note(f"space: {type(e).__name__}")
    return await finish(proc)"""),
    # ------------------------------------------------------------------ monkeypatching
    Case("monkeypatch-std-and-servers", "monkeypatching", """
    import hmac
    import euralios.std.proc as stdproc
    import vfs.server as vserver
    async def lie(self, path):
        return b"PATCHED"
    stdproc.Proc.read_file = lie
    hmac.compare_digest = lambda a, b: True
    for name in list(vars(vserver)):
        if isinstance(getattr(vserver, name), type):
            setattr(vserver, name, None)
    note("patched")
    return await finish(proc)"""),
    # ------------------------------------------------------------------ shared builtins and caches
    Case("builtins-and-code-cache", "shared builtins and caches", """
    __builtins__["len"] = lambda x: 0
    b = main.__globals__["__builtins__"]
    b["sorted"] = lambda *a, **k: ["trojan"]
    imp = b["__import__"]
    try:
        g = imp.__globals__
        sysmod = g["importlib"].import_module("sys")
        with_sys(sysmod)
    except BaseException as e:
        note(f"cache: {type(e).__name__}")
    return await finish(proc)"""),
    # ------------------------------------------------------------------ object smuggling
    Case("smuggle-object-word", "object smuggling", """
    from euralios.std import abi
    class Sneaky:
        def __eq__(self, other):
            with_open(open if "open" in dir(__builtins__) else None)
            return False
        __hash__ = object.__hash__
    rax, *_ = await proc.gate.syscall(abi.SEND | (1 << 32), abi.WRITE, Sneaky(), Sneaky())
    note(f"send: {rax & 0xff}")
    return await finish(proc)"""),
    # ------------------------------------------------------------------ resource exhaustion
    Case("exhaust-frames", "resource exhaustion", """
    chunks = []
    while True:
        c = await proc.malloc(64 * 4096)
        for page in range(64):
            c.write(page * 4096, b"x")
        chunks.append(c)""", expect_killed=True),
    Case("exhaust-fork-bomb", "resource exhaustion", """
    from euralios.std import SyscallError
    started = 0
    try:
        while True:
            await proc.exec("/ramdisk/esc.py", ["esc", "bomb"])
            started += 1
    except SyscallError as e:
        note(f"exec refused: {e.code} after {started}")
    if "bomb" in proc.args:
        await proc.sleep(20)
    return await finish(proc)"""),
    Case("exhaust-host-memory", "host memory", """
    blob = bytearray(10 ** 10)
    note(f"ESCAPED got {len(blob)} bytes of host memory")
    return await finish(proc)""", expect_killed=True),
    Case("exhaust-host-memory-growth", "host memory", """
    hoard = []
    while True:
        hoard.append(bytearray(1 << 24))""", expect_killed=True),
    # ------------------------------------------------------------------ watchdog and C calls
    Case("watchdog-catch-everything", "watchdog catching", """
    await proc.print("spinning")
    while True:
        try:
            while True:
                pass
        except BaseException:
            note("caught the watchdog")""", expect_killed=True),
    Case("c-call-freeze-sum", "C-call freeze", """
    await proc.print("summing")
    return sum(range(10 ** 14)) & 1""", expect_killed=True),
    Case("c-call-freeze-regex", "C-call freeze", """
    import re
    await proc.print("matching")
    return 1 if re.match(r"(a+)+$", "a" * 64 + "b") else 0""", expect_killed=True),
    # ------------------------------------------------------------------ the host directly
    Case("host-socket-connect", "host (network)", """
    for cls in object.__subclasses__():
        g = getattr(getattr(cls, "__init__", None), "__globals__", None)
        if g and "sys" in g and hasattr(g["sys"], "modules"):
            with_sys(g["sys"])
            break
    return await finish(proc)"""),
]

assert len({c.id for c in CASES}) == len(CASES)
