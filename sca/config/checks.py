"""What every config section shares: the error type, range checks, and where prompt files live."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

PROMPTS_DIR = Path(__file__).parent.parent / "generate" / "prompts"
DEFAULT_CACHE = "~/.cache/sca"  # paths.cache: converted models, downloaded releases, ground truth
STAGES = ("seeds", "concepts", "instructions", "responses", "executions", "sft_data", "train", "rl", "eval")


class ConfigError(ValueError):
    pass


def choice(value: str, choices: tuple[str, ...], key: str) -> None:
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not one of {list(choices)}")


def need(ok: bool, key: str, value: Any, what: str) -> None:
    """A range check; ``key`` is relative for nodes used in several places (to_config adds the path)."""
    if not ok:
        raise ConfigError(f"{key}={value!r} must be {what}")


def prompt_path(name: str) -> Path:
    path = Path(name) if Path(name).is_absolute() or "/" in name else PROMPTS_DIR / name
    if not path.exists():
        raise ConfigError(f"prompt file {name!r} not found (looked at {path})")
    return path


def prompt_digest(name: str) -> str:
    """A prompt file's identity in step keys: its content, wherever it lives."""
    return "sha256:" + hashlib.sha256(prompt_path(name).read_bytes()).hexdigest()


def chat_template_digest(name: str) -> str:
    """A chat template's identity in step keys: its name and its content (it shapes every prompt)."""
    from sca.models import chat_template_path

    return f"{name}@sha256:" + hashlib.sha256(chat_template_path(name).read_bytes()).hexdigest()
