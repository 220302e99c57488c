"""The training sections: SFT (with its LoRA adapter) and the optional GRPO stage."""

from __future__ import annotations

from dataclasses import dataclass, field

from sca.config.checks import ConfigError, choice, need
from sca.params import runtime


@dataclass
class LoraConfig:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: str = "all-linear"

    def __post_init__(self) -> None:
        need(self.r >= 1, "train.lora.r", self.r, ">= 1")
        need(self.alpha > 0, "train.lora.alpha", self.alpha, "> 0")
        need(0 <= self.dropout < 1, "train.lora.dropout", self.dropout, "in [0, 1)")


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
        choice(self.method, ("lora", "full"), "train.method")
        need(self.learning_rate > 0, "train.learning_rate", self.learning_rate, "> 0")
        need(0 <= self.warmup_ratio < 1, "train.warmup_ratio", self.warmup_ratio, "in [0, 1)")
        need(self.num_train_epochs > 0, "train.num_train_epochs", self.num_train_epochs, "> 0")
        need(self.max_steps == -1 or self.max_steps >= 1, "train.max_steps", self.max_steps, ">= 1, or -1 (epochs)")
        need(self.global_batch_size >= 1, "train.global_batch_size", self.global_batch_size, ">= 1")
        need(self.max_length >= 1, "train.max_length", self.max_length, ">= 1")
        need(self.max_grad_norm >= 0, "train.max_grad_norm", self.max_grad_norm, ">= 0 (0 = no clipping)")
        need(self.per_device_batch_size >= 1, "train.per_device_batch_size", self.per_device_batch_size, ">= 1")
        need(self.save_steps >= 1, "train.save_steps", self.save_steps, ">= 1")
        need(self.logging_steps >= 1, "train.logging_steps", self.logging_steps, ">= 1")
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
        choice(self.method, ("lora", "full"), "rl.method")
        if self.num_generations < 2:
            raise ConfigError(f"rl.num_generations={self.num_generations} must be >= 2: GRPO compares rollouts")
        if self.global_batch_size % self.num_generations:
            raise ConfigError(
                f"rl.global_batch_size={self.global_batch_size} must be a multiple of "
                f"rl.num_generations={self.num_generations}"
            )
        if not 0.0 <= self.holdout < 1.0:
            raise ConfigError(f"rl.holdout={self.holdout} must be in [0, 1)")
