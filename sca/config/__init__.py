"""The typed schema of the whole config tree, and its validation at the entry.

Hydra composes YAML; :func:`to_config` merges the result into these dataclasses, so an unknown key, a
wrong type or a missing required value fails at once with the key's name. No ``DictConfig`` travels
past the entry. Fields marked ``runtime(...)`` (:mod:`sca.params`) do not change a step's outputs (batch
sizes, workers, parallelism) and stay out of step keys. The sections live in three modules: ``schema``
(the root, run, paths, model, sandbox, curation, eval, launcher, logging), ``generate`` and ``train``.
"""

from sca.config.checks import DEFAULT_CACHE, STAGES, ConfigError, prompt_path
from sca.config.generate import (
    BackendConfig,
    GenerateConfig,
    JudgeConfig,
    ResponsesConfig,
    SamplingConfig,
    SeedsConfig,
    StageConfig,
)
from sca.config.schema import (
    Config,
    CurateConfig,
    EvalConfig,
    HubConfig,
    LauncherConfig,
    LoggerConfig,
    ModelConfig,
    PathsConfig,
    RunConfig,
    SandboxConfig,
    to_config,
)
from sca.config.train import LoraConfig, RLConfig, TrainConfig

__all__ = [
    "DEFAULT_CACHE",
    "STAGES",
    "BackendConfig",
    "Config",
    "ConfigError",
    "CurateConfig",
    "EvalConfig",
    "GenerateConfig",
    "HubConfig",
    "JudgeConfig",
    "LauncherConfig",
    "LoggerConfig",
    "LoraConfig",
    "ModelConfig",
    "PathsConfig",
    "RLConfig",
    "ResponsesConfig",
    "RunConfig",
    "SamplingConfig",
    "SandboxConfig",
    "SeedsConfig",
    "StageConfig",
    "TrainConfig",
    "prompt_path",
    "to_config",
]
