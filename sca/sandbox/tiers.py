"""Isolation tiers, decided by probing what this kernel and this user actually allow.

A: B + the pool runs in its own user, pid, network and mount namespaces (``unshare``): no network at
   all, nothing outlives the pool, a size-capped private /tmp.
B: Landlock + seccomp per child, unprivileged: file-system allow-list, no TCP, no fork/exec, no
   signals to other processes, plus all of C.
C: rlimits, own session, output caps, wall-clock SIGKILL, clean environment. NOT a security boundary.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass

from sca.sandbox import confine

log = logging.getLogger(__name__)
ORDER = {"A": 3, "B": 2, "C": 1}
FORCE_ENV = "SCA_SANDBOX_FORCE_TIER"  # test/CI knob: exercise a lower tier on a capable machine
C_WARNING = "sandbox tier C: limits only, this is NOT a security boundary; run untrusted code in a VM/container"
UNSHARE = ("--user", "--map-root-user", "--pid", "--fork", "--kill-child", "--mount-proc", "--net", "--mount")


class SandboxUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class Probe:
    tier: str
    namespaces: bool
    landlock_abi: int
    seccomp: bool

    @property
    def layers(self) -> tuple[str, ...]:
        return ("rlimits", "landlock", "seccomp") if self.tier in ("A", "B") else ("rlimits",)

    def describe(self) -> str:
        parts = [f"tier {self.tier}", f"landlock ABI {self.landlock_abi}", f"seccomp {'on' if self.seccomp else 'off'}"]
        parts.append("namespaces (user,pid,net,mount)" if self.tier == "A" else "no namespaces")
        return ", ".join(parts) + ("" if self.tier != "C" else f" -- {C_WARNING}")


def _probe_seccomp() -> bool:
    """Load the real filter in a throw-away child and check that it denies fork but allows the rest."""
    if not confine.seccomp_supported():
        return False
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            confine.apply_seccomp(confine.seccomp_program(os.getpid()))
            try:
                os.fork()  # must be denied; were it not, the grandchild exits at once
                os._exit(3)
            except PermissionError:
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def _probe_namespaces() -> bool:
    exe = shutil.which("unshare")
    if exe is None:
        return False
    try:
        proc = subprocess.run([exe, *UNSHARE, "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


@functools.cache
def probe() -> Probe:
    abi = confine.landlock_abi()
    seccomp = _probe_seccomp()
    namespaces = _probe_namespaces()
    tier = "A" if (namespaces and abi and seccomp) else "B" if (abi and seccomp) else "C"
    forced = os.environ.get(FORCE_ENV, "")
    if forced:
        if forced not in ORDER:
            raise SandboxUnavailable(f"{FORCE_ENV}={forced!r} is not one of A, B, C")
        if ORDER[forced] > ORDER[tier]:
            raise SandboxUnavailable(f"{FORCE_ENV}={forced} but this machine only supports tier {tier}")
        tier = forced
    return Probe(tier=tier, namespaces=namespaces and tier == "A", landlock_abi=abi, seccomp=seccomp)


def require(min_tier: str) -> Probe:
    """The probed tier, or a clear refusal if it is weaker than ``sandbox.min_tier``."""
    found = probe()
    if ORDER[found.tier] < ORDER[min_tier]:
        raise SandboxUnavailable(
            f"sandbox.min_tier={min_tier} but this machine provides only {found.describe()}. "
            "Tier A needs `unshare` with user namespaces; tier B needs Landlock (Linux >= 5.13) and seccomp "
            "(x86_64). Lower sandbox.min_tier only if you accept the weaker isolation."
        )
    if found.tier == "C":
        log.warning(C_WARNING)
    return found
