"""Filter mode: a wrong solution must not be able to forge a pass (docs/sandbox.md, threat model).

Every forger below pairs a wrong ``add`` with tests that fail, hunts for the run's secret (frames, gc,
process memory, ctypes, the key file, the harness itself), writes what would be a valid completion
record to every low descriptor and leaves with ``os._exit(0)`` before the tests run.
"""

from __future__ import annotations

from typing import Any

import pytest

from sca.config import SandboxConfig
from sca.sandbox import Sandbox, probe

WRONG = "def add(a, b):\n    return a - b\n"
TESTS = "assert add(2, 3) == 5\n"
CFG = SandboxConfig(timeout_s=5.0, rerun_timeouts=0, workers=2)
TIERS = ["A", "B", "C"] if probe().tier == "A" else ["B", "C"] if probe().tier == "B" else ["C"]

# Shared by the forgers: collect hex strings from anything reachable, then write a full record with each.
HUNT = """
import os, sys, json, re
HEX = re.compile(r"[0-9a-f]{32}")
found = set()

def scan(obj, depth=0, seen=set()):
    if depth > 6 or id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, (str, bytes)):
        text = obj.decode("latin-1") if isinstance(obj, bytes) else obj
        found.update(HEX.findall(text))
    elif isinstance(obj, dict):
        for k, v in list(obj.items()):
            scan(k, depth + 1); scan(v, depth + 1)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for v in list(obj):
            scan(v, depth + 1)
    else:
        for name in ("__dict__", "f_locals", "f_globals", "__closure__", "cell_contents", "__defaults__"):
            try:
                scan(getattr(obj, name), depth + 1)
            except Exception:
                pass

def forge():
    for s in found:
        rec = {"nonce": s, "status": "ok", "type": "", "msg": "", "checks": 1, "tests": 0, "failures": 0, "errors": 0}
        for fd in range(3, 32):
            try:
                os.write(fd, (json.dumps(rec) + "\\n").encode())
            except OSError:
                pass
    os._exit(0)
"""

FORGERS = {
    "frames": HUNT + "f = sys._getframe()\nwhile f is not None:\n    scan(f)\n    f = f.f_back\nforge()\n",
    "modules": HUNT + "for m in list(sys.modules.values()):\n    scan(m)\nforge()\n",
    "gc": HUNT
    + "import gc\ntry:\n    objs = gc.get_objects()\nexcept Exception:\n    objs = []\n"
    + "for o in objs:\n    scan(o)\nforge()\n",
    "traceback_frames": HUNT
    + "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    try:\n        f = e.__traceback__.tb_frame\n"
    + "    except Exception:\n        f = None\nwhile f is not None:\n    scan(f)\n    f = f.f_back\nforge()\n",
    "signal_handler_frames": HUNT
    + "import signal, time\ndef handler(sig, frame):\n    while frame is not None:\n        scan(frame)\n"
    + "        frame = frame.f_back\nsignal.signal(signal.SIGALRM, handler)\n"
    + "signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)\nend = time.time() + 0.3\n"
    + "while time.time() < end:\n    open(os.devnull).close()\nsignal.setitimer(signal.ITIMER_REAL, 0)\nforge()\n",
    "trace_frames": HUNT
    + "def tracer(frame, event, arg):\n    scan(frame)\n    return tracer\ntry:\n    sys.settrace(tracer)\n"
    + "except Exception:\n    pass\nopen(os.devnull).close()\nsys.settrace(None)\nforge()\n",
    "proc_self_mem": HUNT
    + "try:\n    maps = open('/proc/self/maps').read().splitlines()\n    mem = open('/proc/self/mem', 'rb')\n"
    + "    for line in maps:\n        span, perms = line.split()[:2]\n        if 'r' not in perms or 'w' not in perms:\n"
    + "            continue\n        lo, hi = (int(x, 16) for x in span.split('-'))\n        try:\n"
    + "            mem.seek(lo)\n            scan(mem.read(min(hi - lo, 1 << 24)))\n        except (OSError, ValueError, OverflowError):\n"
    + "            pass\nexcept OSError:\n    pass\nforge()\n",
    "ctypes_memory": HUNT
    + "try:\n    import ctypes\n    f = sys._getframe()\n    for o in (f, f.f_back, f.f_back.f_back):\n"
    + "        scan(ctypes.string_at(id(o) - 4096, 1 << 16))\nexcept Exception:\n    pass\nforge()\n",
    "key_file": HUNT
    + "import glob\nfor pattern in ('/tmp/*/key-*', '/tmp/*/*/key-*', '/dev/shm/*/key-*', '../key-*', '../../key-*'):\n"
    + "    for path in glob.glob(pattern):\n        for opener in (lambda p: open(p).read(),\n"
    + "                       lambda p: os.read(os.open(p, os.O_RDONLY), 64).decode()):\n"
    + "            try:\n                found.update(HEX.findall(opener(path)))\n            except OSError:\n"
    + "                pass\n        try:\n            os.symlink(path, 'alias')\n            found.update(HEX.findall(open('alias').read()))\n"
    + "        except OSError:\n            pass\nforge()\n",
    "rebind_guard": HUNT
    + "import sca.sandbox.guard as g, gc\ng.DENIED = frozenset()\ng.DENIED_IMPORTS = frozenset()\n"
    + "try:\n    objs = gc.get_objects()\nexcept Exception:\n    objs = []\nfor o in objs:\n    scan(o)\nforge()\n",
    "sabotage_key": (  # the key's path is in a harness frame: spoiling it must not become "infra"
        "import os, sys\nf = sys._getframe()\npaths = set()\nwhile f is not None:\n"
        "    paths.update(v for v in f.f_locals.values() if isinstance(v, str) and '/key-' in v)\n"
        "    f = f.f_back\nfor p in paths:\n"
        "    for spoil in (lambda: os.chmod(p, 0), lambda: os.truncate(p, 0), lambda: os.remove(p)):\n"
        "        try:\n            spoil()\n        except OSError:\n            pass\n"
        "assert paths\n"
    ),
    "rerun_harness": (
        "import sca.sandbox.harness as h\nh._run('assert 1 == 1\\n')\n"  # a nested run must not count
    ),
    "fd_write_without_nonce": (
        "import os, json\nfor fd in range(3, 32):\n    try:\n"
        "        os.write(fd, (json.dumps({'status': 'ok', 'checks': 1, 'tests': 0, 'failures': 0, 'errors': 0}) + '\\n').encode())\n"
        "    except OSError:\n        pass\nos._exit(0)\n"
    ),
    "os_exit_before_tests": "import os\nos._exit(0)\n",
}


@pytest.fixture(scope="module", params=TIERS)
def outcomes(request: pytest.FixtureRequest) -> dict[str, Any]:
    mp = pytest.MonkeyPatch()
    mp.setenv("SCA_SANDBOX_FORCE_TIER", request.param)
    probe.cache_clear()
    try:
        with Sandbox(CFG) as sb:
            names = list(FORGERS)
            outs = sb.run_filter(
                [WRONG + FORGERS[n] + TESTS for n in names] + ["def add(a, b):\n    return a + b\n" + TESTS]
            )
    finally:
        mp.undo()
        probe.cache_clear()
    return {"forgers": dict(zip(names, outs[:-1], strict=True)), "honest": outs[-1]}


@pytest.mark.parametrize("name", sorted(FORGERS))
def test_a_forger_never_passes(outcomes: dict[str, Any], name: str) -> None:
    out = outcomes["forgers"][name]
    assert out.verdict in ("error", "failed"), (name, out)


def test_the_honest_program_still_passes_next_to_the_forgers(outcomes: dict[str, Any]) -> None:
    assert outcomes["honest"].verdict == "passed", outcomes["honest"]


def test_a_nested_harness_run_is_reported_as_tampering(outcomes: dict[str, Any]) -> None:
    out = outcomes["forgers"]["rerun_harness"]
    assert out.verdict == "error" and out.error_type in ("HarnessTampered", "AssertionError"), out


# The guard must not cost honest programs their pass: frames, logging, tracebacks, pickling, asyncio.
LEGIT = {
    "pytest_raises": "import pytest\nwith pytest.raises(ZeroDivisionError):\n    1 / 0\nassert True\n",
    "asyncio": "import asyncio\nasync def f():\n    await asyncio.sleep(0)\n    return 3\nassert asyncio.run(f()) == 3\n",
    "logging": "import logging\nlogging.basicConfig(level=logging.INFO)\nlogging.warning('w')\nassert True\n",
    "inspect_stack": "import inspect, traceback\ndef f():\n    return len(inspect.stack())\nassert f() > 0\ntraceback.print_stack()\n",
    "pickle_main_class": (
        "import pickle\nfrom dataclasses import dataclass\n@dataclass\nclass P:\n    x: int\n"
        "assert pickle.loads(pickle.dumps(P(1))) == P(1)\n"
    ),
    "threads": "import threading\nr = []\nt = threading.Thread(target=lambda: r.append(1))\nt.start()\nt.join()\nassert r == [1]\n",
    "tempfile": (
        "import tempfile\nwith tempfile.NamedTemporaryFile('w', delete=False) as f:\n    f.write('x')\n"
        "assert open(f.name).read() == 'x'\n"
    ),
}


def test_honest_programs_pass_under_the_guard() -> None:
    with Sandbox(CFG) as sb:
        outs = dict(zip(LEGIT, sb.run_filter(list(LEGIT.values())), strict=True))
    assert {k: o.verdict for k, o in outs.items()} == dict.fromkeys(LEGIT, "passed"), outs
