"""The RL stage: the task pool, the sandbox reward (and its defences against hacking), GRPO on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import TrainerCallback

from sca.config import ConfigError, RLConfig, SandboxConfig
from sca.io import read_records
from sca.records import Execution, Response, SFTExample
from sca.rl import grpo
from sca.rl.reward import SandboxReward, judge, solution_of
from sca.rl.tasks import EmptyPool, build_pool, require_tasks
from sca.sandbox import Outcome, Sandbox
from sca.train.common import grad_accum
from tests.helpers.rl_inputs import FORGED, PASSING, rl_ctx, round_inputs, scripted_generate

TESTS = "assert add_2(1) == 3\nassert add_2(-2) == 0"


@pytest.fixture(scope="module")
def sandbox() -> Any:
    with Sandbox(SandboxConfig(timeout_s=5, workers=2)) as sb:
        yield sb


def pool_of(root: Path, model: Path, **kw: Any) -> tuple[Any, Any]:
    verdicts = kw.pop("verdicts", ("passed", "failed"))
    strong = kw.pop("strong", None)
    inputs = round_inputs(root, model, kw.pop("n", 5), verdicts, strong)
    args = {"holdout": 0.2, "max_tasks": 0, "strong_tests_only": False, "seed": 0, **kw}
    return build_pool(
        read_records(inputs["data"], SFTExample),
        read_records(inputs["responses"], Response),
        read_records(inputs["executions"], Execution),
        **args,
    )


# --- the task pool -----------------------------------------------------------------------------------------


def test_pool_keeps_only_learnable_tasks_and_holds_some_out(tmp_path: Path) -> None:
    tasks, counts = pool_of(tmp_path, tmp_path, n=10)
    assert len(tasks) == 10 and {t.pass_rate for t in tasks} == {0.5}
    assert [t.split for t in tasks].count("holdout") == 2 == counts["tasks_holdout"]
    assert all("assert add_" in t.tests and t.prompt[0]["role"] == "user" for t in tasks)
    again, _ = pool_of(tmp_path / "again", tmp_path, n=10)
    assert [(t.id, t.split) for t in again] == [(t.id, t.split) for t in tasks], "the split is seeded"

    always, counts = pool_of(tmp_path / "always", tmp_path, verdicts=("passed", "passed"))
    assert always == [] and counts["dropped_always_passed"] == 5
    with pytest.raises(EmptyPool, match="responses.sampling.n"):
        require_tasks(always, counts, strong_only=False)


def test_pool_drops_weak_tests_and_unchecked_ones_when_asked(tmp_path: Path) -> None:
    weak, counts = pool_of(tmp_path / "weak", tmp_path, strong=False)
    assert weak == [] and counts["dropped_weak_tests"] == 5, "a stub passed these tests: never a reward"
    unchecked, counts = pool_of(tmp_path / "unchecked", tmp_path, strong_tests_only=True)
    assert unchecked == [] and counts["dropped_tests_unchecked"] == 5
    with pytest.raises(EmptyPool, match="strong_tests_only=false"):
        require_tasks(unchecked, counts, strong_only=True)
    strong, _ = pool_of(tmp_path / "strong", tmp_path, strong=True, strong_tests_only=True)
    assert len(strong) == 5


def test_pool_only_takes_curated_examples_and_caps_them(tmp_path: Path) -> None:
    tasks, counts = pool_of(tmp_path, tmp_path, n=6, max_tasks=3, holdout=0.0)
    assert len(tasks) == 3 and counts["dropped_over_max_tasks"] == 3
    inputs = round_inputs(tmp_path / "mixed", tmp_path, 2)
    examples = read_records(inputs["data"], SFTExample)
    with pytest.raises(ValueError, match="different runs"):
        build_pool(examples, [], [], holdout=0.0, max_tasks=0, strong_tests_only=False, seed=0)


def test_bad_rl_config_names_the_key() -> None:
    with pytest.raises(ConfigError, match="rl.num_generations"):
        RLConfig(num_generations=1)
    with pytest.raises(ConfigError, match="rl.global_batch_size"):
        RLConfig(num_generations=3, global_batch_size=64)
    with pytest.raises(ConfigError, match="rl.method"):
        RLConfig(method="qlora")
    with pytest.raises(ConfigError, match="rl.per_device_batch_size"):
        grad_accum(8, 3, 1, "rl")


# --- the reward ----------------------------------------------------------------------------------------------


def test_reward_is_the_verdict_plus_a_small_format_term(sandbox: Sandbox) -> None:
    reward = SandboxReward(sandbox, format_weight=0.1)
    answers = [
        PASSING.format(k=2),  # passes
        PASSING.format(k=3).replace("add_3", "add_2"),  # runs, fails its tests
        "I would add two to x.",  # no code
        "```python\ndef add_2(x):\n    return x + 2\n```\n```python\nprint(1)\n```",  # passes, two blocks
    ]
    logged: dict[str, float] = {}
    got = reward([[]] * 4, [[{"role": "assistant", "content": a}] for a in answers], [TESTS] * 4,
                 log_metric=logged.__setitem__)  # fmt: skip
    assert got == pytest.approx([1.1, 0.1, 0.0, 1.0])
    assert reward.history == [got]
    assert logged["reward/pass_rate"] == pytest.approx(0.5) and logged["reward/no_code"] == pytest.approx(0.25)


HACKS = {
    "exit_0_before_tests": "```python\nimport os\nos._exit(0)\n```",
    "sys_exit_before_tests": "```python\nimport sys\ndef add_2(x):\n    return 0\nsys.exit(0)\n```",
    "prints_a_success_record": '```python\nimport os\nprint(\'{"status": "ok"}\', flush=True)\nos._exit(0)\n```',
    "writes_a_record_on_the_result_fd": (
        '```python\nimport os\nfor fd in range(3, 16):\n    try:\n        os.write(fd, b\'{"status": "ok", "nonce": "0"}\\n\')\n'
        "    except OSError:\n        pass\nos._exit(0)\n```"
    ),
}


@pytest.mark.parametrize("name", sorted(HACKS))
def test_a_forged_pass_or_an_early_exit_gets_no_reward(sandbox: Sandbox, name: str) -> None:
    reward = SandboxReward(sandbox, format_weight=0.1)
    [got] = reward([[]], [[{"role": "assistant", "content": HACKS[name]}]], [TESTS])
    assert got == 0.0, f"{name} was rewarded {got}"
    assert not reward.verdicts.get("passed")


class FlakySandbox:
    """Fails the first ``bad`` runs as infrastructure, then judges for real (test double)."""

    def __init__(self, real: Sandbox, bad: int) -> None:
        self.real, self.bad, self.calls = real, bad, 0

    def run_filter(self, programs: list[str]) -> list[Outcome]:
        self.calls += 1
        if self.bad > 0:
            self.bad -= 1
            return [Outcome("infra", "SandboxFailure") for _ in programs]
        return self.real.run_filter(programs)


def test_infra_failures_are_retried_and_never_rewarded(sandbox: Sandbox) -> None:
    retried = FlakySandbox(sandbox, bad=1)
    [once] = judge(retried, [PASSING.format(k=2)], [TESTS])  # type: ignore[arg-type]
    assert once.verdict == "passed" and retried.calls == 2
    broken = SandboxReward(FlakySandbox(sandbox, bad=99), format_weight=0.1)  # type: ignore[arg-type]
    assert broken([[]], [PASSING.format(k=2)], [TESTS]) == [None], "an unjudged rollout is no signal either way"


def test_solution_is_the_first_block_and_a_cut_answer_is_not_formatted() -> None:
    assert solution_of(PASSING.format(k=1)) == ("def add_1(x):\n    return x + 1\n", True)
    assert solution_of("```python\ndef f(:\n```")[1] is False
    assert solution_of("```python\ndef f():\n    return [1,") == ("", False)


# --- GRPO on the tiny model ------------------------------------------------------------------------------------


def test_grpo_steps_on_the_tiny_model_log_the_sandbox_rewards(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs = round_inputs(tmp_path / "in", tiny_model_dir, 4)
    ctx = rl_ctx(tmp_path / "rl", inputs, holdout=0.0, beta=0.04)
    ctx.out.mkdir()
    seen: list[SandboxReward] = []
    real_build = grpo.build_trainer

    def build_scripted(c: Any, tasks: Any, reward: SandboxReward) -> Any:
        trainer = real_build(c, tasks, reward)
        tok = trainer.processing_class
        # Row i of a generation batch: even rows answer correctly, odd rows forge a pass by exiting early.
        trainer.model.generate = scripted_generate(tok, lambda k, i: FORGED if i % 2 else PASSING.format(k=k))
        seen.append(reward)
        return trainer

    monkeypatch.setattr(grpo, "build_trainer", build_scripted)
    stats = grpo.run(ctx)

    [reward] = seen
    logged = [e for e in json.loads((ctx.out / "rewards.json").read_text())["curve"] if "reward" in e]
    assert len(reward.history) == len(logged) == 2 == stats["steps"]
    for batch, entry in zip(reward.history, logged, strict=True):
        assert sorted(batch) == pytest.approx([0.0, 0.0, 1.1, 1.1]), "one pass and one forgery per group"
        assert entry["reward"] == pytest.approx(sum(batch) / len(batch))
        assert entry["reward/pass_rate"] == pytest.approx(0.5)
        assert "kl" in entry and entry["completions/mean_length"] > 0
    assert stats["verdict_passed"] == 4 and stats["tasks_train"] == 4
    assert (ctx.out / "model" / "config.json").exists() and (ctx.out / "model" / "tokenizer_config.json").exists()
    assert len((ctx.out / "tasks.jsonl").read_text().splitlines()) == 4


def test_an_empty_pool_stops_the_step_with_what_to_change(tmp_path: Path, tiny_model_dir: Path) -> None:
    inputs = round_inputs(tmp_path / "in", tiny_model_dir, 2, verdicts=("passed",))
    ctx = rl_ctx(tmp_path / "rl", inputs)
    ctx.out.mkdir()
    with pytest.raises(EmptyPool, match="pass rate strictly between 0 and 1"):
        grpo.run(ctx)


@pytest.mark.slow  # the tiny model samples for real: about a minute on two shared cores
def test_a_pool_smaller_than_one_step_still_trains_every_step(tmp_path: Path, tiny_model_dir: Path) -> None:
    # One task, two prompts per step: the trainer's sampler alone would yield no batch and stop at step 0.
    inputs = round_inputs(tmp_path / "in", tiny_model_dir, 1)
    ctx = rl_ctx(tmp_path / "rl", inputs, holdout=0.0, max_completion_length=8)
    ctx.out.mkdir()
    stats = grpo.run(ctx)  # the tiny model samples for real here: noise, judged by the sandbox
    assert stats["steps"] == 2 and stats["tasks_train"] == 1
    assert grpo.cycled([{"a": 1}], 2) == [{"a": 1}, {"a": 1}] and grpo.cycled([], 2) == []


class _KillAt(TrainerCallback):
    def __init__(self, at: int) -> None:
        self.at = at

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.at:
            raise KeyboardInterrupt(f"killed at step {self.at}")


@pytest.mark.slow  # three GRPO runs on the tiny model
def test_killed_rl_resumes_from_its_last_checkpoint_and_ends_where_a_straight_run_does(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safetensors.torch import load_file

    inputs = round_inputs(tmp_path / "in", tiny_model_dir, 4)
    common = {"holdout": 0.0, "max_steps": 4, "save_steps": 2, "method": "full"}
    real_build = grpo.build_trainer
    rewards: list[SandboxReward] = []
    kill_at: list[int] = []

    def build_scripted(c: Any, tasks: Any, reward: SandboxReward) -> Any:
        trainer = real_build(c, tasks, reward)
        trainer.model.generate = scripted_generate(
            trainer.processing_class, lambda k, i: FORGED if i % 2 else PASSING.format(k=k)
        )
        if kill_at:
            trainer.add_callback(_KillAt(kill_at.pop()))
        rewards.append(reward)
        return trainer

    monkeypatch.setattr(grpo, "build_trainer", build_scripted)
    straight = rl_ctx(tmp_path / "straight", inputs, **common)
    straight.out.mkdir()
    grpo.run(straight)

    killed = rl_ctx(tmp_path / "killed", inputs, **common)
    killed.out.mkdir()
    kill_at.append(3)
    with pytest.raises(KeyboardInterrupt):
        grpo.run(killed)
    assert sorted(p.name for p in (killed.out / "checkpoints").glob("checkpoint-*")) == ["checkpoint-2"]
    assert not (killed.out / "model").exists()

    resumed = grpo.run(killed)
    assert resumed["resumed_from_step"] == 2 and resumed["steps"] == 4
    assert len(rewards[-1].history) == 2, "only the steps after the checkpoint generated and were judged again"
    # Not bitwise the straight run: TRL's in-batch shuffle of a generation batch draws from an RNG stream that
    # resuming does not restore exactly (step 3's KL differs in the 4th digit). Steps 1-2 are the checkpoint's.
    straight_log = json.loads((straight.out / "rewards.json").read_text())["curve"]
    resumed_log = json.loads((killed.out / "rewards.json").read_text())["curve"]
    assert [p["step"] for p in resumed_log] == [1.0, 2.0, 3.0, 4.0]
    assert resumed_log[:2] == straight_log[:2]
    ckpt = load_file(killed.out / "checkpoints" / "checkpoint-2" / "model.safetensors")
    final = load_file(killed.out / "model" / "model.safetensors")
    assert any(not torch.equal(ckpt[n], final[n]) for n in ckpt), "training went on from the checkpoint"


def test_rl_scores_carry_the_same_intervals_as_the_scores_table(tmp_path: Path) -> None:
    """0 of 20 tasks is not a certain 0: the RL table used a bootstrap that printed [0.000, 0.000]."""
    from sca.io import write_finished_step
    from sca.records import EvalSample
    from sca.rl.report import benchmark_intervals, fmt
    from sca.scores import interval

    def sample(task: int, passed: bool) -> EvalSample:
        verdict = "pass" if passed else "fail"
        return EvalSample(id=f"s{task}", parent_id="", benchmark="humaneval", task_id=f"HumanEval/{task}", sample=0,
                          prompt="p", completion="c", solution="s", base_verdict=verdict, plus_verdict=verdict)  # fmt: skip

    none = write_finished_step(tmp_path / "none", [sample(t, False) for t in range(20)])
    assert fmt(benchmark_intervals(none)["humaneval"]) == str(interval([0.0] * 20)) == "0.000 [0.000, 0.161]"
    one = write_finished_step(tmp_path / "one", [sample(t, t == 3) for t in range(20)])
    assert fmt(benchmark_intervals(one)["humaneval"]) == "0.050 [0.009, 0.236]"
    assert fmt(None) == "-"
