"""Per-child confinement layers: rlimits, Landlock and seccomp, through ctypes (stdlib only).

Everything here runs in a freshly forked child of a warm worker, so each layer must be cheap: the
seccomp program is plain packed bytes (no libseccomp, nothing to compile per child) and the Landlock
read-only paths are opened once by the worker and inherited as ``O_PATH`` descriptors.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import platform
import resource
import struct
from collections.abc import Sequence

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.prctl.restype = ctypes.c_int

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

# --- Landlock (uapi/linux/landlock.h) -------------------------------------------------------------
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
LANDLOCK_CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH, RULE_NET_PORT = 1, 2
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1, 2, 4, 8
FS_TRUNCATE, FS_IOCTL_DEV = 1 << 14, 1 << 15
FS_READ = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
FILE_ONLY = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV
NET_BIND_TCP, NET_CONNECT_TCP = 1, 2
SCOPE_ABSTRACT_UNIX, SCOPE_SIGNAL = 1, 2


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when Landlock is absent or disabled."""
    abi = _libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), LANDLOCK_CREATE_RULESET_VERSION)
    return max(int(abi), 0)


def _handled_fs(abi: int) -> int:
    bits = (1 << 13) - 1  # ABI 1: execute .. make_sym
    if abi >= 2:
        bits |= 1 << 13  # refer
    if abi >= 3:
        bits |= FS_TRUNCATE
    if abi >= 5:
        bits |= FS_IOCTL_DEV
    return bits


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def _add_path(ruleset: int, fd: int, access: int) -> None:
    attr = struct.pack("=Qi", access, fd)  # struct landlock_path_beneath_attr is packed
    buf = ctypes.create_string_buffer(attr, len(attr))
    _check(_libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, RULE_PATH_BENEATH, buf, 0), "landlock_add_rule")


def apply_landlock(
    abi: int, read_fds: Sequence[tuple[int, bool]], write_dirs: Sequence[str], rw_files: Sequence[str]
) -> None:
    """Restrict this process: read-only below ``read_fds`` (fd, is_dir), read-write in ``write_dirs`` and
    ``rw_files``, no TCP bind/connect (ABI >= 4), no signals or abstract sockets outside (ABI >= 6)."""
    handled = _handled_fs(abi)
    if abi >= 6:
        attr = struct.pack("=QQQ", handled, NET_BIND_TCP | NET_CONNECT_TCP, SCOPE_ABSTRACT_UNIX | SCOPE_SIGNAL)
    elif abi >= 4:
        attr = struct.pack("=QQ", handled, NET_BIND_TCP | NET_CONNECT_TCP)
    else:
        attr = struct.pack("=Q", handled)
    buf = ctypes.create_string_buffer(attr, len(attr))
    ruleset = _check(_libc.syscall(SYS_LANDLOCK_CREATE_RULESET, buf, ctypes.c_size_t(len(attr)), 0), "landlock ruleset")
    try:
        for fd, is_dir in read_fds:
            _add_path(ruleset, fd, FS_READ if is_dir else FS_READ & FILE_ONLY)
        for path in (*write_dirs, *rw_files):
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                access = handled if path in write_dirs else (FS_READ_FILE | FS_WRITE_FILE | FS_TRUNCATE) & handled
                _add_path(ruleset, fd, access)
            finally:
                os.close(fd)
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        _check(_libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
    finally:
        os.close(ruleset)


def open_read_paths(paths: Sequence[str]) -> list[tuple[int, bool]]:
    """``O_PATH`` descriptors for the read-only allow-list, opened once per worker."""
    out = []
    for path in dict.fromkeys(os.path.realpath(p) for p in paths):
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue  # e.g. /lib64 does not exist on this distribution
        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)  # keep clear of 0-3, which the child rewires
        os.close(fd)
        out.append((high, os.path.isdir(path)))
    return out


# --- seccomp (x86_64 only: the syscall numbers below are that ABI's) -------------------------------
AUDIT_ARCH_X86_64 = 0xC000003E
RET_KILL_PROCESS, RET_ALLOW, RET_ERRNO = 0x80000000, 0x7FFF0000, 0x00050000
EPERM, ENOSYS = 1, 38
CLONE_THREAD = 0x00010000
AF_UNIX = 1
_LD, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
# Denied outright: process creation and replacement, namespaces and mounts, debugging other
# processes, kernel attack surface (bpf, io_uring, keyrings, userfaultfd, perf), raising limits,
# leaving the session, and host-level knobs.
DENY = (
    57, 58, 59, 322,  # fork vfork execve execveat
    101, 310, 311,  # ptrace process_vm_readv/writev
    165, 166, 155, 161, 272, 308,  # mount umount2 pivot_root chroot unshare setns
    321, 425, 426, 427, 248, 249, 250, 323, 298,  # bpf io_uring*3 add_key request_key keyctl userfaultfd perf_event_open
    424, 434, 438,  # pidfd_send_signal pidfd_open pidfd_getfd
    160, 112, 109,  # setrlimit setsid setpgid
    200, 129, 297,  # tkill rt_sigqueueinfo rt_tgsigqueueinfo
    169, 175, 176, 313, 246, 320, 167, 168, 163,  # reboot modules kexec swap acct
    164, 227, 159, 305, 170, 171, 172, 173, 179,  # clocks hostname iopl ioperm quotactl
    303, 304, 133, 259, 300, 212,  # handles mknod fanotify lookup_dcookie
)  # fmt: skip


def seccomp_supported() -> bool:
    return platform.machine() == "x86_64"


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k & 0xFFFFFFFF)


def seccomp_program(pid: int) -> bytes:
    """The BPF filter for one child; only ``pid`` (for kill-to-self) varies between children."""
    deny = RET_ERRNO | EPERM
    arg0 = 16  # offsetof(struct seccomp_data, args[0]), low 32 bits on little-endian
    p = [
        _ins(_LD, 4),
        _ins(_JEQ, AUDIT_ARCH_X86_64, jt=1),
        _ins(_RET, RET_KILL_PROCESS),  # a foreign ABI (i386 int 0x80) would bypass the numbers below
        _ins(_LD, 0),
        _ins(_JGE, 0x40000000, jf=1),
        _ins(_RET, deny),  # x32 ABI
    ]
    for nr in DENY:
        p += [_ins(_JEQ, nr, jf=1), _ins(_RET, deny)]
    p += [_ins(_JEQ, 435, jf=1), _ins(_RET, RET_ERRNO | ENOSYS)]  # clone3 -> glibc falls back to clone
    # clone: threads only.
    p += [
        _ins(_JEQ, 56, jf=4),
        _ins(_LD, arg0),
        _ins(_JSET, CLONE_THREAD, jf=1),
        _ins(_RET, RET_ALLOW),
        _ins(_RET, deny),
    ]
    # kill / tgkill: only to ourselves.
    for nr in (62, 234):
        p += [_ins(_JEQ, nr, jf=4), _ins(_LD, arg0), _ins(_JEQ, pid, jf=1), _ins(_RET, RET_ALLOW), _ins(_RET, deny)]
    # socket / socketpair: AF_UNIX only (no network even where there is no network namespace).
    for nr in (41, 53):
        p += [_ins(_JEQ, nr, jf=4), _ins(_LD, arg0), _ins(_JEQ, AF_UNIX, jf=1), _ins(_RET, RET_ALLOW), _ins(_RET, deny)]
    # prlimit64: reading limits is fine, setting them is not (new_limit == NULL).
    p += [
        _ins(_JEQ, 302, jf=6),
        _ins(_LD, 32),
        _ins(_JEQ, 0, jf=3),
        _ins(_LD, 36),
        _ins(_JEQ, 0, jf=1),
        _ins(_RET, RET_ALLOW),
        _ins(_RET, deny),
    ]
    p.append(_ins(_RET, RET_ALLOW))
    return b"".join(p)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def apply_seccomp(program: bytes) -> None:
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0), "seccomp")


# --- rlimits ----------------------------------------------------------------------------------------
def vm_size() -> int:
    """Current virtual size in bytes: the memory budget is added to it (a forked child inherits it)."""
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _set(which: int, soft: int, hard: int) -> None:
    # Never try to raise a hard limit: without CAP_SYS_RESOURCE that raises ValueError.
    _, cur_hard = resource.getrlimit(which)
    if cur_hard != resource.RLIM_INFINITY:
        hard = min(hard, cur_hard)
    resource.setrlimit(which, (min(soft, hard), hard))


def apply_rlimits(memory_bytes: int, cpu_s: int, fsize_bytes: int, nofile: int) -> None:
    _set(resource.RLIMIT_AS, vm_size() + memory_bytes, vm_size() + memory_bytes)
    _set(resource.RLIMIT_CPU, cpu_s, cpu_s + 1)
    _set(resource.RLIMIT_FSIZE, fsize_bytes, fsize_bytes)
    _set(resource.RLIMIT_NOFILE, nofile, nofile)
    _set(resource.RLIMIT_CORE, 0, 0)


def mount_tmpfs(target: str, size_mb: int) -> None:
    """Mount a size-capped tmpfs (the pool's aggregate disk quota); needs a private mount namespace."""
    ret = _libc.mount(b"tmpfs", target.encode(), b"tmpfs", 0, f"size={size_mb}m,mode=0700".encode())
    _check(ret, f"mount tmpfs on {target}")
