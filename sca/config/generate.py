"""The generation sections: seeds, the LLM backend, and the three self-generation stages (S->C, C->I, I->R)."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from sca.config.checks import ConfigError, choice, need, prompt_digest
from sca.params import runtime


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
        choice(self.source, ("stdlib", "dir", "hf"), "generate.seeds.source")
        need(self.max_lines >= 1, "generate.seeds.max_lines", self.max_lines, ">= 1")
        need(0 < self.dedup_threshold <= 1, "generate.seeds.dedup_threshold", self.dedup_threshold, "in (0, 1]")
        need(self.dedup_num_perm >= 1, "generate.seeds.dedup_num_perm", self.dedup_num_perm, ">= 1")
        need(self.decontam_ngram >= 0, "generate.seeds.decontam_ngram", self.decontam_ngram, ">= 0")
        need(self.limit >= 0, "generate.seeds.limit", self.limit, ">= 0 (0 = all)")
        need(self.workers >= 0, "generate.seeds.workers", self.workers, ">= 0 (0 = one per core)")


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
        need(self.n >= 1, "sampling.n", self.n, ">= 1")
        need(self.max_tokens >= 1, "sampling.max_tokens", self.max_tokens, ">= 1")
        need(self.temperature >= 0, "sampling.temperature", self.temperature, ">= 0 (0 = greedy)")
        need(0 < self.top_p <= 1, "sampling.top_p", self.top_p, "in (0, 1]")
        need(all(self.stop), "sampling.stop", self.stop, "non-empty strings")


@dataclass
class StageConfig:
    prompt: str = field(default=MISSING, metadata={"digest": prompt_digest})
    """Few-shot prompt file in sca/generate/prompts/ (or a path); its content enters the step hash."""
    num_fewshots: int = 8
    sampling: SamplingConfig = field(default_factory=SamplingConfig)

    def __post_init__(self) -> None:
        need(self.num_fewshots >= 0, "num_fewshots", self.num_fewshots, ">= 0")


@dataclass
class ResponsesConfig(StageConfig):
    continue_for_tests: bool = False
    """When a sample stops after its code without writing tests, ask the model (a second request, from the
    sample's own text) to continue with them. Not the method's: it changes what the kept responses look like.
    A sample cut at max_tokens is never continued: it is dropped as truncated."""
    stop_at_code_end: bool = False
    """Also stop each answer at the end of its first code block, and its tests at the end of theirs (then ask
    for the tests with continue_for_tests). Not the method's: for a small model that, after its code, repeats
    itself until max_tokens, which costs most of the stage's tokens and drops the sample as truncated."""
    tests_call_solution: bool = False
    """With continue_for_tests, start the asked-for tests with a call of the answer's function
    (``assert name(``), so the model writes what that call returns. Not the method's: a small model asked to
    go on from a bare ``assert `` mostly asserts literals (``assert 1 == 1``), tests that check nothing."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.stop_at_code_end and not self.continue_for_tests:
            raise ConfigError(
                "stop_at_code_end=true ends every answer before its tests: it needs continue_for_tests=true to ask "
                "for them"
            )
        if self.tests_call_solution and not self.continue_for_tests:
            raise ConfigError(
                "tests_call_solution=true shapes the tests that continue_for_tests asks for: it needs "
                "continue_for_tests=true"
            )


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
        choice(self.name, ("vllm", "openai", "hf"), "generate.backend.name")
        if self.tensor_parallel_size < 1 or self.data_parallel_size < 0:
            raise ConfigError(
                f"generate.backend.tensor_parallel_size={self.tensor_parallel_size} must be >= 1 and "
                f"generate.backend.data_parallel_size={self.data_parallel_size} >= 0 (0 = every visible GPU)"
            )
        for key in ("max_concurrency", "batch_size"):
            need(getattr(self, key) >= 1, f"generate.backend.{key}", getattr(self, key), ">= 1")
        need(self.retries >= 0, "generate.backend.retries", self.retries, ">= 0")
        util = self.gpu_memory_utilization
        need(0 < util <= 1, "generate.backend.gpu_memory_utilization", util, "in (0, 1]")


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
