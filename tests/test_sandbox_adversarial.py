"""docs/sandbox.md, threat model: the adversarial catalogue, each case asserting its expected outcome.

Cases that could kill or flood the host if the sandbox regressed (fork bombs, orphans, kill(-1),
kill(parent)) run only inside an outer user+pid+net namespace (docs/sandbox.md, design): this file
re-executes itself there with ``--trial`` and reports JSON. Secrets are fake canaries.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from sca.config import SandboxConfig
from sca.sandbox import BenchTask, Sandbox, probe

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 1.5
SECRET = "hf_FAKE_CANARY_123"
ADD = "def add(a, b):\n    return a + b\n"
TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"
CFG = SandboxConfig(timeout_s=LIMIT, memory_mb=512, max_output_bytes=1 << 20, rerun_timeouts=0, workers=2, disk_mb=128)
TIERS = ["A", "B"] if probe().tier == "A" else [probe().tier]


def catalogue(canary: Path, host_secret: Path, port: int) -> dict[str, str]:
    """name -> program. The solution is correct unless the case is about verdict forgery."""
    c, h = str(canary), str(host_secret)
    return {
        "01_infinite_loop": "while True:\n    pass\n",
        "02_sleep_forever": "import time\ntime.sleep(10**6)\n",
        "03_swallow_signals": (
            "import signal\nfor s in (signal.SIGALRM, signal.SIGTERM, signal.SIGXCPU, signal.SIGINT):\n"
            "    signal.signal(s, signal.SIG_IGN)\nsignal.setitimer(signal.ITIMER_REAL, 0)\nwhile True:\n    pass\n"
        ),
        "04_nondaemon_thread": "import threading, time\nthreading.Thread(target=time.sleep, args=(10**6,)).start()\n"
        + ADD
        + TESTS,
        "07_memory_bomb": ADD + "x = b'x' * (6 << 30)\n" + TESTS,
        "08_raise_rlimit_then_bomb": (
            "import ctypes, resource\n"
            "try:\n    resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))\n"
            "except (ValueError, OSError):\n    pass\n"
            "try:\n    libc = ctypes.CDLL(None)\n    lim = (ctypes.c_ulong * 2)(2**63, 2**63)\n"
            "    libc.prlimit64(0, resource.RLIMIT_AS, lim, None)\n"
            "except OSError:\n    pass  # filter mode denies ctypes outright\n"
            "x = b'x' * (6 << 30)\n"
        ),
        "09_recursion": "import sys\nsys.setrecursionlimit(10**7)\ndef f(n):\n    return f(n + 1) + 1\nf(0)\n",
        "10_segfault": "import faulthandler\nfaulthandler._sigsegv()\n",
        "10_ctypes_denied": "import ctypes\nctypes.string_at(0)\n",
        "11_fd_exhaustion": (
            "import os\nfds = []\ntry:\n    while len(fds) < 10000:\n        fds.append(os.open(os.devnull, os.O_RDONLY))\n"
            "except OSError:\n    pass\nassert len(fds) < 64, len(fds)\n"
        ),
        "12_stdin": "input()\n",
        "13_huge_print": "for _ in range(200):\n    print('x' * (1 << 20))\n",
        "14_huge_fd1_write": "import os\nfor _ in range(200):\n    os.write(1, b'x' * (1 << 20))\n",
        "15_big_file": "with open('big', 'wb') as f:\n    for _ in range(512):\n        f.write(b'x' * (1 << 20))\n",
        "16_many_files": (
            "for i in range(48):\n    with open(f'f{i}', 'wb') as f:\n        for _ in range(15):\n"
            "            f.write(b'x' * (1 << 20))\n"
        ),
        "17_persist_write": (
            "import os\nopen('state.txt', 'w').write('x')\n"
            "for p in ('/tmp/sca_persist_marker', '/dev/shm/sca_persist_marker'):\n"
            "    try:\n        open(p, 'w').write('x')\n    except OSError:\n        pass\n"
        ),
        "17_persist_check": (
            "import os\nassert not os.path.exists('state.txt')\n"
            "assert not os.path.exists('/tmp/sca_persist_marker')\nassert not os.path.exists('/dev/shm/sca_persist_marker')\n"
        ),
        "18_unlink_outside": f"import posix\nposix.unlink({c!r})\n",
        "19_overwrite_outside": f"import io\nio.open({c!r}, 'w').write('pwned')\n",
        "20_env_secrets": (
            "import os, sys\nseen = repr(dict(os.environ))\n"
            "for p in ('/proc/self/environ', f'/proc/{os.getppid()}/environ', '/proc/1/environ'):\n"
            "    try:\n        seen += open(p, 'rb').read().decode('latin-1')\n    except OSError:\n        pass\n"
            "sys.stderr.write(seen[-2000:])\n"
            "assert 'CANARY' not in seen and 'FAKE' not in seen\n"
        ),
        "21_read_host_files": (
            "import os\nfound = []\n"
            f"for p in ('/etc/passwd', {h!r}, os.path.expanduser('~/.netrc'), '/root/.netrc'):\n"
            "    try:\n        found.append(open(p).read())\n    except OSError:\n        pass\n"
            "assert not found, found\n"
        ),
        "22_net_loopback": f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\n",
        "23_net_capability": (
            "import socket\nmade = []\n"
            "for fam, kind in ((socket.AF_INET, socket.SOCK_STREAM), (socket.AF_INET, socket.SOCK_DGRAM),\n"
            "                  (socket.AF_INET6, socket.SOCK_STREAM), (socket.AF_NETLINK, socket.SOCK_RAW)):\n"
            "    try:\n        socket.socket(fam, kind)\n        made.append(fam)\n    except OSError:\n        pass\n"
            "assert not made, made\n"
        ),
        "28_exec_true": "import os\nos.execv('/bin/true', ['true'])\n",
        "29_sys_exit_before_tests": "import sys\ndef add(a, b):\n    return 0\nsys.exit(0)\n" + TESTS,
        "30_os_exit_before_tests": "import os\ndef add(a, b):\n    return 0\nos._exit(0)\n" + TESTS,
        "31_system_exit_in_fn": "def add(a, b):\n    raise SystemExit(0)\n" + TESTS,
        "32_fake_passed_stdout": "def add(a, b):\n    return 0\nprint('PASSED')\nprint('{\"status\": \"ok\"}')\n"
        + TESTS,
        "32_forge_result_fd": 'import os\nos.write(3, b\'{"status": "ok"}\\n\')\nos._exit(0)\n',
        "37_symlink_planted": f"import os\nos.symlink({str(canary.parent)!r}, 'escape')\nos.symlink({c!r}, 'out.txt')\n"
        "assert os.path.islink('escape')\n",
        "38_tty_ioctl": (
            "import fcntl, termios, os\nok = []\ntry:\n    fcntl.ioctl(0, termios.TIOCSTI, b'x')\n    ok.append(0)\n"
            "except OSError:\n    pass\ntry:\n    os.open('/dev/tty', os.O_RDWR)\n    ok.append(1)\nexcept OSError:\n    pass\n"
            "assert not ok\n"
        ),
        "39_numpy_import": "import numpy as np\ndef mean(xs):\n    return float(np.mean(xs))\nassert mean([1, 2, 3]) == 2.0\n",
        "40_helpers_classes": (
            "import math\nfrom collections import Counter\nLIMIT = 10\n"
            "class Shape:\n    def __init__(self, r):\n        self.r = r\n    def area(self):\n        return math.pi * square(self.r)\n"
            "def square(x):\n    return x * x\n"
            "def total(rs):\n    return sum(Shape(r).area() for r in rs if r < LIMIT)\n"
            "assert abs(total([1, 2]) - 5 * math.pi) < 1e-9\nassert Counter('aab')['a'] == 2\n"
            "if __name__ == '__main__':\n    assert square(3) == 9\n"
        ),
    }


EXPECTED: dict[str, tuple[str, ...]] = {  # verdict, and error_type where it matters
    "01_infinite_loop": ("timeout",),
    "02_sleep_forever": ("timeout",),
    "03_swallow_signals": ("timeout",),
    "04_nondaemon_thread": ("passed",),
    "07_memory_bomb": ("memory", "MemoryError"),
    "08_raise_rlimit_then_bomb": ("memory", "MemoryError"),
    "10_segfault": ("crash", "SIGSEGV"),
    "10_ctypes_denied": ("error", "PermissionError"),
    "11_fd_exhaustion": ("passed",),
    "12_stdin": ("error", "EOFError"),
    "13_huge_print": ("error", "OutputLimitExceeded"),
    "14_huge_fd1_write": ("error", "OutputLimitExceeded"),
    "15_big_file": ("error", "OSError"),
    "17_persist_check": ("passed",),
    "18_unlink_outside": ("error", "PermissionError"),
    "19_overwrite_outside": ("error", "PermissionError"),
    "20_env_secrets": ("passed",),
    "21_read_host_files": ("passed",),
    "23_net_capability": ("passed",),
    "28_exec_true": ("error", "PermissionError"),
    "29_sys_exit_before_tests": ("error", "SystemExit"),
    "30_os_exit_before_tests": ("error", "EarlyExit"),
    "31_system_exit_in_fn": ("error", "SystemExit"),
    "32_fake_passed_stdout": ("failed", "AssertionError"),
    "32_forge_result_fd": ("error", "ForgedRecord"),
    "37_symlink_planted": ("passed",),
    "38_tty_ioctl": ("passed",),
    "39_numpy_import": ("passed",),
    "40_helpers_classes": ("passed",),
}


@pytest.fixture(scope="module", params=TIERS)
def ran(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Run the whole (non-process-killing) catalogue once per tier; the cases are checked below."""
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_TOKEN", SECRET)  # in the supervisor's environment: must never reach a program
    mp.setenv("WANDB_API_KEY", "wandb_FAKE_456")
    mp.setenv("SCA_SANDBOX_FORCE_TIER", request.param)
    probe.cache_clear()
    # Not under /tmp: tier A's private /tmp would hide it, and Landlock is what must be tested here.
    host = Path(tempfile.mkdtemp(prefix="sca-host-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    request.addfinalizer(lambda: shutil.rmtree(host, ignore_errors=True))
    canary, secret = host / "canary.txt", host / "host_secret.txt"
    canary.write_text("canary")
    secret.write_text(SECRET)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    programs = catalogue(canary, secret, listener.getsockname()[1])
    names = list(programs)
    try:
        with Sandbox(CFG) as sb:
            first = [n for n in names if n != "17_persist_check"]
            outcomes = dict(zip(first, sb.run_filter([programs[n] for n in first]), strict=True))
            # after the writer: state must not cross runs, on whichever worker this lands
            outcomes["17_persist_check"] = sb.run_filter([programs["17_persist_check"]] * 2)[0]
            after = sb.run_filter([ADD + TESTS] * 4)
            tier = sb.tier
    finally:
        mp.undo()
        probe.cache_clear()
    try:
        listener.accept()
        connections = 1
    except BlockingIOError:
        connections = 0
    listener.close()
    return {
        "outcomes": outcomes,
        "after": after,
        "tier": tier,
        "canary": canary.read_text() if canary.exists() else None,
        "connections": connections,
        "host": host,
    }


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_case_has_expected_outcome(ran: dict[str, Any], case: str) -> None:
    out = ran["outcomes"][case]
    verdict, *etype = EXPECTED[case]
    assert out.verdict == verdict, (case, out)
    if etype:
        assert out.error_type == etype[0], (case, out)
    assert out.tier == ran["tier"]


def test_timeouts_are_killed_at_the_wall_clock_limit(ran: dict[str, Any]) -> None:
    # Left alone, each would run for 10**6 s. The slack is for a loaded machine: this is about the kill, not
    # about how fast the supervisor is (the benches measure that).
    for case in ("01_infinite_loop", "02_sleep_forever", "03_swallow_signals"):
        assert ran["outcomes"][case].duration_s < LIMIT + 5, case


def test_nondaemon_thread_is_reaped_at_once(ran: dict[str, Any]) -> None:
    # Its thread sleeps for 10**6 s: a program that waited for it would be killed at the limit, not pass.
    out = ran["outcomes"]["04_nondaemon_thread"]
    assert out.verdict == "passed" and out.duration_s < LIMIT, out


def test_recursion_never_hangs(ran: dict[str, Any]) -> None:
    assert ran["outcomes"]["09_recursion"].verdict in ("timeout", "memory", "crash", "error")


def test_aggregate_disk_quota(ran: dict[str, Any]) -> None:
    out = ran["outcomes"]["16_many_files"]
    assert out.verdict == "error" and out.error_type in ("OSError", "DiskQuotaExceeded"), out


def test_files_outside_the_work_dir_are_untouched(ran: dict[str, Any]) -> None:
    assert ran["canary"] == "canary"  # 18, 19, and 37 (the host's cleanup never follows planted links)
    assert not Path("/tmp/sca_persist_marker").exists() and not Path("/dev/shm/sca_persist_marker").exists()
    assert sorted(p.name for p in ran["host"].iterdir()) == ["canary.txt", "host_secret.txt"]


def test_no_secret_in_any_channel(ran: dict[str, Any]) -> None:
    for out in ran["outcomes"].values():
        assert SECRET not in out.detail and "wandb_FAKE" not in out.detail


def test_loopback_listener_saw_no_connection(ran: dict[str, Any]) -> None:
    assert ran["outcomes"]["22_net_loopback"].verdict == "error"
    assert ran["connections"] == 0


def test_pool_keeps_working_after_the_catalogue(ran: dict[str, Any]) -> None:
    assert [o.verdict for o in ran["after"]] == ["passed"] * 4


# --- benchmark mode: verdict forgery (33-36) ---------------------------------------------------------
FORGERIES = {
    "33_always_equal": "class E:\n    def __eq__(self, o):\n        return True\ndef add(a, b):\n    return E()\n",
    "34_int_subclass": "class I(int):\n    def __eq__(self, o):\n        return True\ndef add(a, b):\n    return I(0)\n",
    "35_frame_tamper": (
        "import sys, os, json\ndef add(a, b):\n    f = sys._getframe(1)\n    while f is not None and 'nonce' not in f.f_locals:\n"
        "        f = f.f_back\n    nonce = f.f_locals['nonce']\n"
        "    for i in range(2):\n        os.write(3, (json.dumps({'nonce': nonce, 'i': i, 'out': 0}) + '\\n').encode())\n"
        "    os.write(3, (json.dumps({'nonce': nonce, 'status': 'ok'}) + '\\n').encode())\n    os._exit(0)\n"
    ),
    "36_patch_numpy_allclose": (
        "import numpy, unittest\nnumpy.allclose = lambda *a, **k: True\nnumpy.isclose = lambda *a, **k: True\n"
        "unittest.TestCase.assertEqual = lambda *a, **k: None\ndef add(a, b):\n    return 0.5\n"
    ),
}


def test_benchmark_mode_forgeries_fail() -> None:
    with Sandbox(CFG) as sb:
        tasks = [BenchTask(code, "add", [[2, 3], [1.5, 1.0]], [5, 2.5]) for code in FORGERIES.values()]
        honest = BenchTask(ADD, "add", [[2, 3], [1.5, 1.0]], [5, 2.5])
        outs = sb.run_benchmark([*tasks, honest])
    for name, out in zip(FORGERIES, outs, strict=False):
        assert out.verdict in ("failed", "error"), (name, out)
    assert outs[0].per_input[0] == "error:NonPlainOutput" and outs[1].per_input[0] == "error:NonPlainOutput"
    assert outs[2].per_input == ["failed", "failed"]  # forged outputs are compared outside: wrong
    assert outs[-1].verdict == "passed" and outs[-1].per_input == ["passed", "passed"]


# --- process-killing cases: only inside an outer namespace -----------------------------------------------
KILLERS = {
    "05_fork_loop": "import os\nwhile True:\n    os.fork()\n",
    "06_posix_fork_bomb": "import posix\nwhile True:\n    posix.fork()\n",
    "06_posix_spawn_bomb": "import os\nwhile True:\n    os.posix_spawn('/bin/sleep', ['sleep', '300'], {})\n",
    "06_multiprocessing_bomb": (
        "import multiprocessing, time\nps = [multiprocessing.Process(target=time.sleep, args=(300,)) for _ in range(50)]\n"
        "for p in ps:\n    p.start()\n"
    ),
    "24_orphan_posix_spawn": "import os\nos.posix_spawn('/bin/sh', ['sh', '-c', '(setsid sleep 300 &)'], {})\n",
    "25_orphan_fork_setsid": "import posix, time\nif posix.fork() == 0:\n    posix.setsid()\n    while True:\n        time.sleep(1)\n",
    "26_kill_parent": "import os, posix\nposix.kill(os.getppid(), 9)\n",
    "27_kill_everything": "import posix\nposix.kill(-1, 9)\n",
}


def _processes() -> int:
    return sum(1 for p in os.listdir("/proc") if p.isdigit())


def trial() -> None:
    """Inside the outer namespace: run each killer, then an honest program; count survivors."""
    if os.getpid() > 100 or _processes() > 20:
        raise SystemExit("refusing to run process-killing cases outside an outer pid namespace")
    report: dict[str, Any] = {}
    with Sandbox(CFG) as sb:
        baseline = _processes()
        for name, code in KILLERS.items():
            out = sb.run_filter([code])[0]
            nxt = sb.run_filter([ADD + TESTS])[0]
            report[name] = {
                "verdict": out.verdict,
                "error_type": out.error_type,
                "extra_processes": _processes() - baseline,
                "next": nxt.verdict,
                "tier": out.tier,
            }
    print(json.dumps(report))


OUTER = ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--kill-child", "--mount-proc", "--net"]


@pytest.fixture(scope="module", params=TIERS)
def killers(request: pytest.FixtureRequest) -> dict[str, Any]:
    if shutil.which("unshare") is None or subprocess.run([*OUTER, "true"], capture_output=True).returncode != 0:
        pytest.skip("no user+pid namespaces here: the process-killing cases must not run unconfined")
    env = {**os.environ, "SCA_SANDBOX_FORCE_TIER": request.param, "HF_TOKEN": SECRET}
    proc = subprocess.run(
        [*OUTER, sys.executable, __file__, "--trial"], capture_output=True, text=True, timeout=180, env=env, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


@pytest.mark.parametrize("case", sorted(KILLERS))
def test_process_killing_case_is_contained(killers: dict[str, Any], case: str) -> None:
    r = killers[case]
    assert r["verdict"] == "error" and r["error_type"] == "PermissionError", r
    assert r["extra_processes"] == 0, r  # nothing outlived the run
    assert r["next"] == "passed", r  # the worker survived and the next program runs normally


if __name__ == "__main__" and sys.argv[1:] == ["--trial"]:
    trial()
