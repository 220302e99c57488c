"""The whole self-alignment loop as one list of steps: read this file to know what runs, in what order.

seeds -> [judge] -> r0/concepts -> r0/instructions -> r0/responses -> r0/executions -> r0/sft_data
      -> r0/train -> r0/eval   (+ eval of the base model), then round r1 generates with r0's model.
With rl.enabled: r0/train -> r0/rl (GRPO, sandbox reward) -> r0/rl/eval, and r1 generates with r0's RL model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sca.benchmarks import DATASETS, benchmark_data, benchmark_paths
from sca.config import STAGES, Config, StageConfig, hash_view, runtime_view
from sca.generate.seed_mining import mining_params
from sca.step import Step


def only(data: Mapping[str, str], benchmarks: Sequence[str]) -> dict[str, str]:
    return {b: data[b] for b in benchmarks}


def wandb_runtime(cfg: Config, name: str) -> dict[str, Any]:
    from sca.tracking import resolve_mode

    return {
        "mode": resolve_mode(cfg.logger.mode),
        "project": cfg.logger.project,
        "entity": cfg.logger.entity,
        "group": cfg.run.name,
        "name": name,
        "dir": str(Path(cfg.paths.root).resolve()),
    }


def build_pipeline(cfg: Config) -> list[Step]:
    g = cfg.generate
    model_spec = hash_view(cfg.model)
    backend_rt = {"backend": runtime_view(g.backend), "cache": cfg.paths.cache}
    seed = cfg.run.seed

    def llm(model: dict[str, Any]) -> dict[str, Any]:
        return {"backend": g.backend.name, "model": model}

    def trained(train: Step) -> dict[str, Any]:
        # SFT trains on chat-templated text and saves that template with the model, so the tuned model is
        # always prompted through it, even when the base model was prompted by raw completion.
        return {
            "from_step": train.name,
            "key": train.key,
            "chat": True,
            "max_model_len": cfg.model.max_model_len,
        }

    def stage(conf: StageConfig) -> dict[str, Any]:
        return {"stage": hash_view(conf), "prompt_file": conf.prompt}

    paths = benchmark_paths(cfg)
    data = benchmark_data(paths)  # each file hashed once per plan
    mined = Step(
        "mined_seeds",
        "sca.generate.seed_mining:run",
        {"seeds": mining_params(hash_view(g.seeds))},
        runtime=runtime_view(g.seeds),
        num_shards=cfg.launcher.num_shards,  # by file / data file: SLURM array tasks, each resumable per unit
    )
    seeds = Step(
        "seeds",
        "sca.generate.seeds:run",
        {
            # With the judge on, seeds.limit applies to what the judge approves (the final count), not here.
            "seeds": {**hash_view(g.seeds), "limit": 0} if g.judge.enabled else hash_view(g.seeds),
            "benchmarks": only(data, DATASETS if g.seeds.decontaminate else ()),
            "seed": seed,
        },
        {"mined": mined},
        runtime={**runtime_view(g.seeds), **paths},
    )
    plan = [mined, seeds]
    base_llm = llm(model_spec)
    if g.judge.enabled:
        seeds = Step(
            "judged_seeds",
            "sca.generate.judge:run",
            {"llm": base_llm, **stage(g.judge), "seed": seed, "limit": g.seeds.limit},
            {"seeds": seeds},
            runtime=backend_rt,
            where="subprocess",
        )
        plan.append(seeds)
    eval_data = only(data, cfg.eval.benchmarks)
    if cfg.eval.include_base:
        plan.append(
            Step(
                "base/eval",
                "sca.eval.evalplus:run",
                {"eval": hash_view(cfg.eval), "data": eval_data, "llm": base_llm, "seed": seed},
                runtime={**backend_rt, **paths, **runtime_view(cfg.eval)},
                where="subprocess",
            )
        )

    model: dict[str, Any] = model_spec
    model_dep: dict[str, Step] = {}
    shards = cfg.launcher.num_shards
    for r in range(cfg.run.rounds):
        gen = llm(model)
        concepts = Step(
            f"r{r}/concepts",
            "sca.generate.concepts:run",
            {"llm": gen, **stage(g.concepts), "seed": seed},
            {"seeds": seeds, **model_dep},
            runtime=backend_rt,
            where="subprocess",
            num_shards=shards,
        )
        instructions = Step(
            f"r{r}/instructions",
            "sca.generate.instructions:run",
            {
                "llm": gen,
                **stage(g.instructions),
                "seed": seed,
                "categories": g.categories,
                "difficulties": g.difficulties,
            },
            {"concepts": concepts, **model_dep},
            runtime=backend_rt,
            where="subprocess",
            num_shards=shards,
        )
        responses = Step(
            f"r{r}/responses",
            "sca.generate.responses:run",
            {"llm": gen, **stage(g.responses), "seed": seed},
            {"instructions": instructions, **model_dep},
            runtime=backend_rt,
            where="subprocess",
            num_shards=shards,
        )
        executions = Step(
            f"r{r}/executions",
            "sca.sandbox.step:run",
            {"sandbox": hash_view(cfg.sandbox)},
            {"responses": responses},
            runtime=runtime_view(cfg.sandbox),
            num_shards=shards,
        )
        sft_data = Step(
            f"r{r}/sft_data",
            "sca.curate:run",
            {
                "curate": hash_view(cfg.curate),
                "benchmarks": only(data, cfg.curate.decontaminate),
                "seed": seed,
            },
            {
                "seeds": seeds,
                "concepts": concepts,
                "instructions": instructions,
                "responses": responses,
                "executions": executions,
            },
            runtime=paths,
        )
        train = Step(
            f"r{r}/train",
            "sca.train.sft:run",
            # Every round fine-tunes the base model on its own round's data (the paper's setting);
            # the model that generated the data is what changes between rounds.
            {
                "train": hash_view(cfg.train),
                "base": model_spec,  # holds the chat template's name and the sha256 of its content
                "chat_template": cfg.model.chat_template,
                "seed": seed,
            },
            {"data": sft_data},
            runtime={
                **runtime_view(cfg.train),
                "cache": cfg.paths.cache,
                "wandb": wandb_runtime(cfg, f"{cfg.run.name}-r{r}-train"),
            },
            where="torchrun",
        )
        evaluation = Step(
            f"r{r}/eval",
            "sca.eval.evalplus:run",
            {"eval": hash_view(cfg.eval), "data": eval_data, "llm": llm(trained(train)), "seed": seed},
            {"model": train},
            runtime={**backend_rt, **paths, **runtime_view(cfg.eval)},
            where="subprocess",
        )
        plan += [concepts, instructions, responses, executions, sft_data, train, evaluation]
        model = trained(train)
        model_dep = {"model": train}
        if cfg.rl.enabled:  # GRPO from the SFT model on this round's tasks; the next round generates with it
            rl = Step(
                f"r{r}/rl",
                "sca.rl.grpo:run",
                {"rl": hash_view(cfg.rl), "sandbox": hash_view(cfg.sandbox), "seed": seed},
                {"data": sft_data, "responses": responses, "executions": executions, "model": train},
                runtime={
                    **runtime_view(cfg.rl),
                    "sandbox_workers": cfg.sandbox.workers,
                    "wandb": wandb_runtime(cfg, f"{cfg.run.name}-r{r}-rl"),
                },
                where="torchrun",
            )
            rl_eval = Step(  # stage "eval": gated against the SFT model's eval before the next round
                f"r{r}/rl/eval",
                "sca.eval.evalplus:run",
                {"eval": hash_view(cfg.eval), "data": eval_data, "llm": llm(trained(rl)), "seed": seed},
                {"model": rl},
                runtime={**backend_rt, **paths, **runtime_view(cfg.eval)},
                where="subprocess",
            )
            plan += [rl, rl_eval]
            model = trained(rl)
            model_dep = {"model": rl}
    return truncate(plan, cfg.run.until)


def truncate(plan: list[Step], until: str) -> list[Step]:
    """Steps up to and including the stage ``until`` (in every round)."""
    allowed = set(STAGES[: STAGES.index(until) + 1])
    if "seeds" in allowed:
        allowed |= {"mined_seeds", "judged_seeds"}
    return [s for s in plan if s.stage in allowed]


def split_rounds(plan: list[Step]) -> list[list[Step]]:
    """The plan as consecutive chunks: what precedes round 0 (seeds, base eval) joins round 0."""
    chunks: list[list[Step]] = [[]]
    for step in plan:
        prefix = step.name.split("/")[0]
        if prefix.startswith("r") and prefix[1:].isdigit() and int(prefix[1:]) >= len(chunks):
            chunks.append([])
        chunks[-1].append(step)
    return chunks


def eval_gate(before: Mapping[str, Any], after: Mapping[str, Any], margin: float) -> list[str]:
    """Benchmarks whose plus-test pass@1 fell by more than ``margin`` (the scores.json of two eval steps)."""
    drops = []
    for bench, scores in after.items():
        old = before.get(bench, {}).get("pass@1_plus")
        new = scores.get("pass@1_plus")
        if old is not None and new is not None and old - new > margin:
            drops.append(f"{bench}: pass@1+ {old:.3f} -> {new:.3f}")
    return drops


def describe(cfg: Config) -> dict[str, Any]:
    """The resolved config as plain data (for spec.json, W&B and the run directory)."""
    return dataclasses.asdict(cfg)
