"""Execute untrusted programs: namespace the pool, confine the child, judge outside (docs/sandbox.md)."""

from sca.sandbox.supervisor import BenchTask, Sandbox, execute_programs
from sca.sandbox.tiers import SandboxUnavailable, probe
from sca.sandbox.verdicts import VERDICTS, BenchOutcome, Outcome

__all__ = [
    "VERDICTS",
    "BenchOutcome",
    "BenchTask",
    "Outcome",
    "Sandbox",
    "SandboxUnavailable",
    "execute_programs",
    "probe",
]
