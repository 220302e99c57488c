"""Filter mode's audit hook (PEP 578): the only code in the child that can write a pass.

The child holds no secret while the candidate runs. The run's nonce sits in a key file that only this
hook may open, and only once the harness frame that started the run has reached its end line; the
hook then writes the one completion record and exits the process. The candidate cannot remove the
hook (audit hooks are irremovable), cannot reach its state (the function is referenced only by the
interpreter; ``gc`` introspection is denied) and cannot jump the harness frame to its end line
(tracing and profiling are denied). ctypes (raw memory) and ``/proc/*/mem`` are denied too.
What this does and does not promise: docs/sandbox.md, "Filter mode against an adversary".
"""

from __future__ import annotations

import _json
import gc
import os
import signal
import sys
from types import CodeType

DENIED = frozenset(
    {
        "sys.settrace",  # a tracer can set a frame's line: jump the harness to its end line
        "sys.setprofile",
        "sys._current_frames",  # another thread's view of the hook's frame while it writes
        "sys._current_exceptions",
        "sys.addaudithook",
        "gc.get_objects",  # the hook function and its state are reachable only through gc
        "gc.get_referrers",
        "gc.get_referents",
    }
)
# Modules that read files in C without an "open" event, or expose raw memory.
DENIED_IMPORTS = frozenset(
    {"readline", "_dbm", "_gdbm", "_testcapi", "_testinternalcapi", "_testbuffer", "_ctypes", "ctypes"}
)
RENAMES = frozenset({"os.rename", "os.link", "os.symlink", "os.remove", "os.truncate", "os.chmod", "os.chown"})
RECORD = '{"nonce": %s, "status": %s, "type": %s, "msg": %s, "checks": %d, "tests": %d, "failures": %d, "errors": %d}\n'


def install(key_path: str, result_fd: int, harness: CodeType, ok_line: int, end_line: int) -> None:
    """Add the hook for this run; returns nothing, so no frame keeps a reference to it.

    Everything the hook uses is bound here, in its closure: the program can rebind module globals and
    builtins, but not the cells of a function it cannot reach.
    """
    key_name = os.path.basename(key_path)
    denied, denied_imports, renames, record_fmt = DENIED, DENIED_IMPORTS, RENAMES, RECORD
    o_rdonly, sig_block, all_signals = os.O_RDONLY, signal.SIG_BLOCK, signal.valid_signals()
    _type, _str, _int, _bytes, _len, _deny, _no_import = type, str, int, bytes, len, PermissionError, ImportError
    _frame, _enc, _fsdecode = sys._getframe, _json.encode_basestring_ascii, os.fsdecode
    _open, _read, _write, _exit, _mask, _gc_off = (
        os.open,
        os.read,
        os.write,
        os._exit,
        signal.pthread_sigmask,
        gc.disable,
    )
    _closerange = os.closerange
    begin = None  # the harness frame that started the run
    summary: tuple[object, ...] | None = None  # set when that frame reached ok_line
    armed = None  # the hook frame allowed to open the key, once
    poisoned = False

    def base(path: object) -> object:
        if _type(path) is _str:
            return path.rsplit("/", 1)[-1]  # type: ignore[attr-defined]
        if _type(path) is _bytes:
            return _fsdecode(path.rsplit(b"/", 1)[-1])  # type: ignore[attr-defined]
        return None

    def hook(event: str, args: tuple[object, ...]) -> None:
        nonlocal begin, summary, armed, poisoned
        if _type(event) is not _str:
            return
        if event in denied or event[:7] == "ctypes.":
            raise _deny(f"{event} is not allowed in the sandbox (filter mode)")
        if event == "open":
            name = base(args[0])
            if name == "mem":
                raise _deny("reading process memory is not allowed in the sandbox (filter mode)")
            if name == key_name:
                if armed is not None and _frame(1) is armed:
                    armed = None  # once
                    return
                raise _deny("the sandbox's key is not readable by the program")
            return
        if event in renames:
            if base(args[0]) == key_name or (_len(args) > 1 and base(args[1]) == key_name):
                raise _deny("the sandbox's key is not the program's to move or change")
            return
        if event == "import":
            if _type(args[0]) is _str and args[0] in denied_imports:
                # ImportError: code that treats the module as optional (pdb and readline) keeps working
                raise _no_import(f"import {args[0]} is not allowed in the sandbox (filter mode)")
            return
        if event[:4] != "sca.":
            return
        caller = _frame(1)
        if event == "sca.begin":
            if begin is None and caller.f_code is harness:
                begin = caller
            else:
                poisoned = True  # the harness started twice: someone called it from inside the run
            return
        if caller is not begin:
            return
        if event == "sca.ok" and caller.f_lineno == ok_line and _len(args) == 5:
            a = args
            ints = _type(a[0]) is _int and _type(a[1]) is _int and _type(a[2]) is _int and _type(a[3]) is _int
            if ints and _type(a[4]) is _str:
                summary = a
            return
        if event != "sca.end" or caller.f_lineno != end_line or _len(args) != 3:
            return
        # From here no candidate code may run: no signal handlers, no collector-run finalizers.
        _mask(sig_block, all_signals)
        _gc_off()
        status = args[0] if _type(args[0]) is _str else ""
        etype = args[1] if _type(args[1]) is _str else ""
        msg = args[2] if _type(args[2]) is _str else ""
        counts: tuple[object, ...] = (0, 0, 0, 0)
        if summary is not None and not poisoned:
            status, etype, msg, counts = "ok", summary[4], "", summary[:4]
        elif status == "ok" or poisoned:
            status, etype, msg = "exception", "HarnessTampered", "the run did not reach its end"
        _closerange(result_fd + 1, 1 << 16)  # the program may have used up RLIMIT_NOFILE; we exit next
        armed = _frame(0)
        try:
            nonce = _read(_open(key_path, o_rdonly), 256).decode("ascii", "replace")
        except OSError:  # the program got at the key somehow: no record, an error, never infra
            _write(2, b"sca: the run's key was unreadable at the end\n")
            _exit(0)
        record = record_fmt % (_enc(nonce), _enc(status), _enc(etype), _enc(msg[:500]), *counts)  # type: ignore[index,arg-type]
        _write(result_fd, record.encode())
        _exit(0)

    sys.addaudithook(hook)
