"""Where log lines go: libraries' lines into each step's log file, the terminal kept for sca's own output.

A run prints progress bars, each step's counter table, sca's one-line notices and the final report. vLLM,
DeepSpeed, transformers, torchrun and W&B log hundreds of lines per run; they are written to files instead:

- the orchestrator's own log: ``<run_dir>/run.log`` (every record, INFO and up);
- a step run in a child process: ``<step_dir>/logs/shard-NNNNN.log``. The child's stdout and stderr *are*
  that file (so are those of every process it starts: vLLM's engine, torchrun's workers), and sca's bars and
  tables reach the terminal through ``SCA_TERMINAL``, a path to the orchestrator's stderr
  (``/proc/<pid>/fd/2``) that any descendant can open, whatever file descriptors its launcher closed;
- a step run inline: the same file, through a logging handler for the step's duration.

Warnings are not lost: after each child step, one line says how many warning lines its log holds and where.
When a child fails, the orchestrator prints the child's one-line cause (``<log>.error``) last.
``run.verbose=true`` turns all of this off: every line reaches the terminal, as before.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import stat
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
TERMINAL_ENV = "SCA_TERMINAL"
LOG_ENV = "SCA_STEP_LOG"  # the shard's log file, which its stdout and stderr are
# vLLM writes "WARNING 12-02 04:30:00 [x.py:12] ...", the logging module "... WARNING name: ...", Python's
# warnings module "file.py:3: UserWarning: ...".
WARNING_RE = re.compile(r"\bWARN(ING)?\b|\w+Warning: ")


class _SCAOrWarnings(logging.Filter):
    """The terminal's share of the orchestrator's records: sca's own from INFO, libraries' from WARNING."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name == "sca" or record.name.startswith("sca.") or record.levelno >= logging.WARNING


def setup_orchestrator(run_dir: Path | None, verbose: bool) -> None:
    """Logging of ``python -m sca.main``: terminal (filtered unless verbose) plus ``run_dir/run.log``."""
    from sca.progress import terminal

    console = logging.StreamHandler(terminal())
    console.setFormatter(logging.Formatter(FORMAT))
    handlers: list[logging.Handler] = [console]
    if run_dir is not None:
        handlers.append(_file_handler(run_dir / "run.log"))
    if not verbose:
        console.addFilter(_SCAOrWarnings())
        # Python warnings (deprecations in libraries) go to the run log only, not between the bars.
        logging.captureWarnings(True)
        warnings_log = logging.getLogger("py.warnings")
        warnings_log.propagate = False
        for handler in handlers[1:]:
            warnings_log.addHandler(handler)
        os.environ.setdefault("WANDB_SILENT", "true")  # W&B's banner and sync hints
    logging.basicConfig(level=logging.INFO, format=FORMAT, handlers=handlers, force=True)


class _LazyFileHandler(logging.FileHandler):
    """Creates its file (and folder) on the first record: a step that logs nothing leaves no empty log."""

    def _open(self) -> TextIO:  # type: ignore[override]
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


def _file_handler(path: Path) -> logging.Handler:
    handler = _LazyFileHandler(path, encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter(FORMAT))
    return handler


def shard_log(out: Path, shard: int) -> Path:
    return out / "logs" / f"shard-{shard:05d}.log"


def error_file(log: Path) -> Path:
    return log.with_suffix(".error")


def terminal_path() -> str | None:
    """A path through which children reach this process's stderr, or None where there is none (not Linux)."""
    path = f"/proc/{os.getpid()}/fd/2"
    if not os.path.exists(path):
        return None
    if stat.S_ISREG(os.fstat(2).st_mode):
        # stderr redirected to a file (`> run.txt 2>&1`): children append to it, so this process must append
        # too, or its writes at its own offset would overwrite theirs.
        fcntl.fcntl(2, fcntl.F_SETFL, fcntl.fcntl(2, fcntl.F_GETFL) | os.O_APPEND)
    return path


def attach_terminal() -> None:
    """In a child whose output goes to its log: send sca's bars and tables to the orchestrator's terminal."""
    from sca.progress import use_terminal

    path = os.environ.get(TERMINAL_ENV)
    if not path:
        return
    try:
        stream = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    except OSError:
        return  # the orchestrator is gone or its stderr cannot be reopened (a socket): bars stay in the log
    use_terminal(stream)


def record_failure(log: Path | None, error: BaseException) -> None:
    """The child's side of a failure: the traceback into its log, the one-line cause beside it."""
    traceback.print_exception(error, file=sys.stderr)
    if log is not None:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        error_file(log).write_text(f"{type(error).__name__}: {first}".rstrip(": ") + "\n", encoding="utf-8")


def failure_cause(log: Path) -> str | None:
    path = error_file(log)
    return path.read_text(encoding="utf-8").strip() if path.exists() else None


def count_warnings(log: Path) -> int:
    if not log.exists():
        return 0
    with open(log, encoding="utf-8", errors="replace") as f:
        return sum(1 for line in f if WARNING_RE.search(line))


@contextmanager
def inline_log(log: Path | None) -> Iterator[None]:
    """An inline step's records (its libraries' included) also go to its log file while it runs."""
    if log is None:
        yield
        return
    handler = _file_handler(log)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
