"""The warm worker ("zygote"): forks one confined child per program and reports what happened.

Started by the supervisor with an allow-listed environment (and, in tier A, inside its own user, pid,
net and mount namespaces). It speaks length-prefixed JSON on stdin/stdout; candidate output never
reaches those, because every child gets its own pipes at the file-descriptor level.

The worker observes, it does not judge: it returns the child's record (fd 3), exit status, signal and
why it was killed, and the supervisor turns that into a verdict.
"""

from __future__ import annotations

import builtins
import contextlib
import gc
import json
import os
import select
import shutil
import signal
import struct
import sys
import tempfile
import time
from typing import Any, NoReturn

from sca.sandbox import codec, confine, harness

RESULT_FD = 3
RESULT_CAP = 64 << 20  # benchmark outputs can be large; still bounded
TAIL = 2048
# Modules most generated programs import, loaded once in the warm worker so each fork inherits them. Not numpy:
# its pages make every fork about 20% dearer (bench/sandbox.py: 1.45x -> 1.64x evalplus's throughput), a cost
# paid by all programs for the few that import it.
PREIMPORT = ("math", "re", "collections", "itertools", "functools", "heapq", "bisect", "string", "random",
             "typing", "dataclasses", "json", "copy", "unittest", "decimal", "fractions", "datetime")  # fmt: skip


# --- framing -------------------------------------------------------------------------------------
def send(stream: Any, msg: dict[str, Any]) -> None:
    data = json.dumps(msg).encode()
    stream.write(struct.pack("<I", len(data)) + data)
    stream.flush()


def _read_exact(fd: int, n: int) -> bytes:
    parts, left = [], n
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def recv(fd: int) -> dict[str, Any] | None:
    """Unbuffered on purpose: no reader object keeps a copy of a job (and its nonce) for a child to find."""
    head = _read_exact(fd, 4)
    if len(head) < 4:
        return None
    (n,) = struct.unpack("<I", head)
    data: dict[str, Any] = json.loads(_read_exact(fd, n))
    return data


# --- the child -------------------------------------------------------------------------------------
def _record(nonce: str, **fields: Any) -> None:
    os.write(RESULT_FD, (json.dumps({"nonce": nonce, **fields}) + "\n").encode())


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _run_bench(code: str, entry_point: str, inputs: list[Any], nonce: str) -> None:
    import copy

    fresh = {"__name__": "__sca_candidate__", "__builtins__": builtins}
    try:
        exec(compile(code, "<candidate>", "exec"), fresh)
        fn: Any = fresh[entry_point]
    except BaseException as e:
        _record(nonce, status="setup", type=type(e).__name__, msg=str(e)[:500])
        return
    for i, args in enumerate(inputs):
        try:
            out = codec.encode(fn(*copy.deepcopy(args)))
        except BaseException as e:
            _record(nonce, i=i, type=type(e).__name__, msg=str(e)[:300])
            continue
        _record(nonce, i=i, out=out)
    _flush()
    _record(nonce, status="ok")


def child(job: dict[str, Any], pipes: dict[str, int], workdir: str, key_path: str, state: dict[str, Any]) -> NoReturn:
    """Runs in the forked child; never returns. Confinement order matters: seccomp last.

    In filter mode the child never sees the nonce: it is in ``key_path``, which only the harness's
    audit hook may open, after the program has ended (sca/sandbox/guard.py)."""
    try:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(pipes["out"], 1)
        os.dup2(pipes["err"], 2)
        os.dup2(pipes["res"], RESULT_FD)
        sys.stdout = sys.__stdout__  # the worker pointed it at stderr to protect its protocol
        layers = state["layers"]
        if "rlimits" in layers:
            cpu = int(job["timeout"]) + 2
            confine.apply_rlimits(job["memory_mb"] << 20, cpu, job["fsize_mb"] << 20, job["nofile"])
        os.chdir(workdir)
        os.environ.update(HOME=workdir, TMPDIR=workdir)
        tempfile.tempdir = workdir
        if "landlock" in layers:
            read_fds = state["read_fds"]
            if key_path:  # readable (by the hook alone), not writable; closed again below
                read_fds = [*read_fds, (os.open(key_path, os.O_PATH | os.O_CLOEXEC), False)]
            confine.apply_landlock(state["abi"], read_fds, [workdir, f"/proc/{os.getpid()}"], state["rw_files"])
        os.closerange(RESULT_FD + 1, 1 << 16)  # worker's pipes, O_PATH fds: nothing else leaks in
        if "seccomp" in layers:
            confine.apply_seccomp(confine.seccomp_program(os.getpid()))
        gc.enable()
        if job["mode"] == "filter":
            harness.run_filter(job["code"], key_path, RESULT_FD)  # returns only if its record was refused
        else:
            nonce = job["nonce"]
            del job["nonce"]
            _run_bench(job["code"], job["entry_point"], job["inputs"], nonce)
    except BaseException as e:  # a setup failure is the sandbox's fault: say so on the result channel
        with contextlib.suppress(OSError):
            os.write(RESULT_FD, (json.dumps({"setup_error": f"{type(e).__name__}: {e}"}) + "\n").encode())
    os._exit(0)  # non-daemon threads, atexit handlers and buffered junk all die here


# --- the worker side of one run ---------------------------------------------------------------------
def _kill(pid: int) -> None:
    for fn, target in ((os.killpg, pid), (os.kill, pid)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            fn(target, signal.SIGKILL)


def _dir_bytes(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def _write_key(base: str, job: dict[str, Any]) -> str:
    """Move the filter-mode nonce out of this process's objects into a file only the hook may read."""
    path = os.path.join(base, f"key-{os.urandom(8).hex()}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, job.pop("nonce").encode())
    finally:
        os.close(fd)
    return path


def run_one(job: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    workdir = tempfile.mkdtemp(prefix="run-", dir=state["base"])
    os.chmod(workdir, 0o700)
    key_path = _write_key(state["base"], job) if job["mode"] == "filter" else ""
    fds = {name: os.pipe() for name in ("out", "err", "res")}
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        child(job, {k: w for k, (_r, w) in fds.items()}, workdir, key_path, state)
    for _r, w in fds.values():
        os.close(w)
    reads = {r: name for name, (r, _w) in fds.items()}
    bufs: dict[str, bytearray] = {"out": bytearray(), "err": bytearray(), "res": bytearray()}
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    for r in reads:
        os.set_blocking(r, False)
        poller.register(r, select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    deadline = start + job["timeout"]
    killed, output_bytes, exited, next_disk_check = "", 0, False, start + 0.2
    while not exited:
        now = time.monotonic()
        if now >= deadline:
            killed = "timeout"
            break
        for fd, _ev in poller.poll(max(1, int((min(deadline, next_disk_check) - now) * 1000))):
            if fd == pidfd:
                exited = True
                continue
            name = reads[fd]
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                poller.unregister(fd)
                continue
            if name == "res":
                bufs["res"] += chunk
                if len(bufs["res"]) > RESULT_CAP:
                    killed = "output"
            else:
                output_bytes += len(chunk)
                bufs[name] = (bufs[name] + chunk)[-TAIL:]  # keep a tail, memory stays flat
                if output_bytes > job["max_output"]:
                    killed = "output"
        if killed:
            break
        if time.monotonic() >= next_disk_check:  # aggregate quota where no size-capped tmpfs exists
            next_disk_check = time.monotonic() + 0.2
            if not state["tmpfs_quota"] and _dir_bytes(workdir) > job["disk_mb"] << 20:
                killed = "disk"
                break
    # Kill the group before reaping: while the child is an unreaped zombie its pid (= its process
    # group id) cannot be reused, so this can never hit an unrelated process.
    _kill(pid)
    _, status, usage = os.wait4(pid, 0)
    duration = time.monotonic() - start
    if not killed and not state["tmpfs_quota"] and _dir_bytes(workdir) > job["disk_mb"] << 20:
        killed = "disk"  # finished faster than the polling: the quota still decides
    os.close(pidfd)
    for r, name in reads.items():  # drain what is left (never block: an escapee may hold a write end)
        try:
            while len(bufs[name]) <= RESULT_CAP and (chunk := os.read(r, 1 << 16)):
                bufs[name] += chunk
        except (BlockingIOError, OSError):
            pass
        os.close(r)
    if state["pid1"]:
        _reap_namespace()
    shutil.rmtree(workdir, ignore_errors=True)  # fd-based on Linux: never follows planted symlinks
    if key_path:
        with contextlib.suppress(OSError):
            os.unlink(key_path)
    return {
        "exit": os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        "killed": killed,
        "duration": duration,
        "cpu": usage.ru_utime + usage.ru_stime,
        "result": bufs["res"].decode("utf-8", "replace"),
        "stderr": bytes(bufs["err"][-TAIL:]).decode("utf-8", "replace"),
    }


def _reap_namespace() -> None:
    """As pid 1 of our own pid namespace, kill(-1) reaches every other process in it: nothing survives."""
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        return
    while True:
        try:
            pid, _ = os.waitpid(-1, 0)
        except ChildProcessError:
            return
        if pid == 0:
            return


# --- start-up ----------------------------------------------------------------------------------------
def read_allow_list() -> list[str]:
    import sysconfig

    paths = ["/usr", "/lib", "/lib64", "/bin", "/etc/ld.so.cache", "/etc/localtime", "/dev/urandom", "/dev/zero"]
    paths += [sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))]
    paths += [p for key in ("stdlib", "platstdlib", "purelib", "platlib") if (p := sysconfig.get_paths().get(key))]
    return paths


def setup(opts: dict[str, Any]) -> dict[str, Any]:
    layers = set(opts["layers"])
    tmpfs_quota = False
    if opts["namespaces"]:
        # Inside our own mount namespace: a private, size-capped tmpfs on the empty directory the
        # supervisor made for it. Never on /tmp: an interpreter, venv or checkout may live there.
        confine.mount_tmpfs(opts["scratch"], opts["disk_mb"])
        base = tempfile.mkdtemp(prefix="sca-pool-", dir=opts["scratch"])
        tmpfs_quota = True
    else:
        shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        base = tempfile.mkdtemp(prefix="sca-pool-", dir=shm)
    for name in PREIMPORT:
        with contextlib.suppress(ImportError):
            __import__(name)
    harness.setup()
    import random

    random.seed(0)  # every child starts from the same state
    gc.collect()
    gc.freeze()  # children must not copy-on-write the whole heap when the collector runs
    gc.disable()
    return {
        "layers": layers,
        "abi": confine.landlock_abi() if "landlock" in layers else 0,
        "read_fds": confine.open_read_paths(read_allow_list()) if "landlock" in layers else [],
        "rw_files": ["/dev/null"],
        "base": base,
        "tmpfs_quota": tmpfs_quota,
        "pid1": os.getpid() == 1,
    }


def main() -> None:
    opts = json.loads(sys.argv[1])
    stdin, stdout = sys.stdin.fileno(), sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print in the worker must not corrupt the protocol
    state = setup(opts)
    send(stdout, {"ready": True, "pid": os.getpid(), "abi": state["abi"], "pid1": state["pid1"]})
    try:
        while (job := recv(stdin)) is not None:
            send(stdout, run_one(job, state))
    finally:
        shutil.rmtree(state["base"], ignore_errors=True)


if __name__ == "__main__":
    main()
