"""The whole self-alignment loop as one list of steps: read this file to know what runs, in what order.

seeds -> [judge] -> r0/concepts -> r0/instructions -> r0/responses -> r0/executions -> r0/sft_data
      -> r0/train -> r0/eval   (+ eval of the base model), then round r1 generates with r0's model.
With rl.enabled: r0/train -> r0/rl (GRPO, sandbox reward) -> r0/rl/eval, and r1 generates with r0's RL model.

Each step names its function and that function's typed params (declared beside it); a step's key hashes
the params' semantic fields and its inputs' keys. Then read one module per step, in this order.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sca.benchmarks import DATASETS, benchmark_files
from sca.config import STAGES, Config
from sca.curate.step import CurateParams
from sca.eval.evalplus import EvalParams
from sca.generate.concepts import ConceptsParams
from sca.generate.instructions import InstructionsParams
from sca.generate.judge import JudgeParams
from sca.generate.responses import ResponsesParams
from sca.generate.seed_mining import mining_params
from sca.generate.seeds import SeedsParams
from sca.llm.contract import LLMParams
from sca.rl.grpo import RLParams
from sca.sandbox.step import ExecutionsParams
from sca.step import Step
from sca.tracking import wandb_run
from sca.train.sft import TrainParams


def build_pipeline(cfg: Config) -> list[Step[Any]]:
    g, seed, shards = cfg.generate, cfg.run.seed, cfg.launcher.num_shards
    files = benchmark_files(cfg)  # each benchmark file hashed once per plan

    def llm(trained_by: Step[Any] | None = None) -> LLMParams:
        # A fine-tuned checkpoint learned chat-templated text (its template saved with it), so it is always
        # prompted through it, even when the base model was prompted by raw completion.
        chat = trained_by is not None or cfg.model.chat
        return LLMParams(g.backend, cfg.model, trained_by.name if trained_by else "", chat, cfg.paths.cache)

    def generation(name: str, params: Any, deps: dict[str, Step[Any]], model: Step[Any] | None) -> Step[Any]:
        # A round after the first generates with the previous round's model: that step is an input too.
        inputs = {**deps, "model": model} if model else deps
        fn = f"sca.generate.{name.rsplit('/', 1)[-1]}:run"
        return Step(name, fn, params, inputs, where="subprocess", num_shards=shards)

    def evaluate(name: str, model: Step[Any] | None) -> Step[EvalParams]:
        params = EvalParams(cfg.eval, files.only(cfg.eval.benchmarks), llm(model), seed)
        deps = {"model": model} if model else {}
        return Step(name, "sca.eval.evalplus:run", params, deps, where="subprocess")

    # Mining is sharded by source file; the global filters (dedup, decontamination, type check) follow.
    mined = Step("mined_seeds", "sca.generate.seed_mining:run", mining_params(g.seeds), num_shards=shards)
    # With the judge on, seeds.limit applies to what the judge approves (the final count), not here.
    seeds_cfg = dataclasses.replace(g.seeds, limit=0) if g.judge.enabled else g.seeds
    decontam = files.only(DATASETS if g.seeds.decontaminate else ())
    seeds: Step[Any] = Step("seeds", "sca.generate.seeds:run", SeedsParams(seeds_cfg, decontam, seed), {"mined": mined})
    plan: list[Step[Any]] = [mined, seeds]
    if g.judge.enabled:
        judge = JudgeParams(llm(), g.judge, seed, g.seeds.limit)
        seeds = Step("judged_seeds", "sca.generate.judge:run", judge, {"seeds": seeds}, where="subprocess")
        plan.append(seeds)
    if cfg.eval.include_base:
        plan.append(evaluate("base/eval", None))

    model: Step[Any] | None = None  # None: the base model generates
    for r in range(cfg.run.rounds):
        concepts = generation(f"r{r}/concepts", ConceptsParams(llm(model), g.concepts, seed), {"seeds": seeds}, model)
        instructions = generation(
            f"r{r}/instructions",
            InstructionsParams(llm(model), g.instructions, seed, g.categories, g.difficulties),
            {"concepts": concepts},
            model,
        )
        responses = generation(
            f"r{r}/responses", ResponsesParams(llm(model), g.responses, seed), {"instructions": instructions}, model
        )
        executions = Step(
            f"r{r}/executions", "sca.sandbox.step:run", ExecutionsParams(cfg.sandbox), {"responses": responses},
            num_shards=shards,
        )  # fmt: skip
        sft_data = Step(
            f"r{r}/sft_data",
            "sca.curate.step:run",
            CurateParams(cfg.curate, files.only(cfg.curate.decontaminate), seed),
            {"seeds": seeds, "concepts": concepts, "instructions": instructions, "responses": responses,
             "executions": executions},
        )  # fmt: skip
        # Every round fine-tunes the base model on its own round's data (the paper's setting);
        # the model that generated the data is what changes between rounds.
        train_params = TrainParams(
            cfg.train, cfg.model, seed, cfg.paths.cache, wandb_run(cfg, f"{cfg.run.name}-r{r}-train")
        )
        train = Step(f"r{r}/train", "sca.train.sft:run", train_params, {"data": sft_data}, where="torchrun")
        plan += [concepts, instructions, responses, executions, sft_data, train, evaluate(f"r{r}/eval", train)]
        model = train
        if cfg.rl.enabled:  # GRPO from the SFT model on this round's tasks; the next round generates with it
            rl_params = RLParams(cfg.rl, cfg.sandbox, seed, wandb_run(cfg, f"{cfg.run.name}-r{r}-rl"))
            rl = Step(
                f"r{r}/rl", "sca.rl.grpo:run", rl_params,
                {"data": sft_data, "responses": responses, "executions": executions, "model": train}, where="torchrun",
            )  # fmt: skip
            # Stage "eval": gated against the SFT model's eval before the next round.
            plan += [rl, evaluate(f"r{r}/rl/eval", rl)]
            model = rl
    return truncate(plan, cfg.run.until)


def truncate(plan: list[Step[Any]], until: str) -> list[Step[Any]]:
    """Steps up to and including the stage ``until`` (in every round)."""
    allowed = set(STAGES[: STAGES.index(until) + 1])
    if "seeds" in allowed:
        allowed |= {"mined_seeds", "judged_seeds"}
    return [s for s in plan if s.stage in allowed]
