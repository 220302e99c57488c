"""The batch loop every LLM stage shares: ask a shard's unfinished records in batches, commit per batch.

A stage (concepts, instructions, responses, judge) reads it as a story::

    with ctx.journal() as journal:
        queries = [Query(record, fields, shots) for record in pending(ctx, journal, records)]
        ask_all(ctx, journal, queries, asking, parse)   # parse(query, samples, counts): the stage's own
    return summary(ctx, STAGE, journal)

The journal makes this exactly-once: a batch's records and its input ids are committed together, so a
re-run asks only what no earlier run committed and ends with exact counters. Everything random is keyed
by the run seed, the record id and the stage (:func:`query_rng`, ``request_seed``), never by the batch,
the shard or the resume point, so the output does not depend on any of them.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Generator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from sca.config import SamplingConfig
from sca.generate.prompting import Template, render
from sca.llm.contract import Backend, Completion, LLMParams, Request, request_seed
from sca.llm.registry import open_backend
from sca.progress import bar, print_counters

if TYPE_CHECKING:
    from sca.io import Journal
    from sca.step import StepContext


class Identified(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=Identified)
FollowUp = Callable[[Request, int, Completion], Request | None]


@dataclass(frozen=True)
class Query(Generic[T]):
    """What one input record asks: its prompt's fields, after few-shot examples (or why it is not asked)."""

    record: T
    fields: Mapping[str, str]
    shots: Sequence[Mapping[str, str]]
    dropped: str = ""  # a reason: the record is counted as ``dropped_<reason>`` and never sent

    @property
    def id(self) -> str:
        return self.record.id


@dataclass(frozen=True)
class Asking:
    """How a stage asks its model: the model, the template, sampling, seeds and batch size."""

    stage: str  # names the records' rngs and request seeds
    template: Template
    chat: bool
    sampling: SamplingConfig
    seed: int
    llm: LLMParams  # the model, its backend, and the backend's batch size
    follow_up: FollowUp | None = None  # may continue a sample from a longer prefix (see continue_samples)


@dataclass(frozen=True)
class Batch(Generic[T]):
    """One batch, answered: every input id (asked or dropped), each asked query with its samples, counters."""

    ids: list[str]
    answers: list[tuple[Query[T], list[Completion]]]
    counts: Counter[str]


def query_rng(seed: int, record_id: str, stage: str) -> random.Random:
    """A record's own rng (its few-shot examples, its drawn category): the same in any batch, shard or re-run."""
    return random.Random(f"{seed}:{record_id}:{stage}")


def pending(ctx: StepContext, journal: Journal, records: Sequence[T]) -> list[T]:
    """This shard's records that no earlier run committed, in input order."""
    return [r for r in records if ctx.mine(r.id) and r.id not in journal.done]


def answered_batches(
    ctx: StepContext, journal: Journal, queries: Sequence[Query[T]], asking: Asking
) -> Generator[Batch[T], None, None]:
    """The queries, asked ``asking.batch_size`` at a time; the caller commits each batch before the next.

    The backend opens only when there is something to ask. Walk it under ``contextlib.closing``: an error
    in the caller's loop then closes the backend and the bar at once, not when the generator is collected.
    """
    done = len(journal.done)  # this shard's records committed by earlier runs
    progress = bar(done + len(queries), ctx.name, unit="prompt", initial=done)
    if not queries:
        progress.close()
        return
    backend = open_backend(asking.llm, ctx.inputs)
    started, tokens = time.monotonic(), 0
    try:
        size = asking.llm.backend.batch_size
        for start in range(0, len(queries), size):
            batch = ask(backend, queries[start : start + size], asking)
            yield batch  # the caller parses and commits it
            tokens += batch.counts["completion_tokens"]
            progress.update(len(batch.ids))
            progress.set_postfix(
                tok_s=f"{tokens / max(time.monotonic() - started, 1e-9):.1f}", out=journal.counters["out"]
            )
    finally:
        progress.close()
        backend.close()


def ask(backend: Backend, queries: Sequence[Query[T]], asking: Asking) -> Batch[T]:
    """One batch: the requests of its queries, the completions (follow-ups spliced in), its counters."""
    counts: Counter[str] = Counter({"in": len(queries)})
    asked = []
    for query in queries:
        if query.dropped:
            counts[f"dropped_{query.dropped}"] += 1
        else:
            asked.append(query)
    requests = [request_for(query, asking) for query in asked]
    results = backend.generate(requests) if requests else []
    if len(results) != len(requests):
        raise RuntimeError(f"backend returned {len(results)} results for {len(requests)} requests")
    if asking.follow_up is not None:
        results, followed = continue_samples(backend, requests, results, asking.follow_up)
        counts["follow_ups"] += followed
    for completions in results:
        counts["requests"] += 1
        counts["completions"] += len(completions)
        counts["prompt_tokens"] += sum(c.prompt_tokens for c in completions[:1])
        counts["completion_tokens"] += sum(c.completion_tokens for c in completions)
    return Batch([query.id for query in queries], list(zip(asked, results, strict=True)), counts)


def request_for(query: Query[Any], asking: Asking) -> Request:
    """The rendered prompt of one query, sampled as the stage says, with the record's own seed."""
    rendered = render(asking.template, query.shots, query.fields, asking.chat)
    sampling = asking.sampling
    return Request(
        prompt=rendered.prompt,
        seed=request_seed(asking.seed, query.id, asking.stage),
        n=sampling.n,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        max_tokens=sampling.max_tokens,
        stop=(*rendered.stop, *sampling.stop),  # the template's, then the config's
        prefix=rendered.prefix,
    )


def continue_samples(
    backend: Backend, requests: Sequence[Request], results: list[list[Completion]], follow_up: FollowUp
) -> tuple[list[list[Completion]], int]:
    """Run the follow-up requests of a batch and splice each continuation onto its sample.

    The spliced text is what the follow-up added to the prefix followed by what the model then wrote,
    so the sample reads as one completion; token counts add up, and the finish reason is the last one.
    """
    asked: list[tuple[int, int, Request]] = []
    for i, (request, completions) in enumerate(zip(requests, results, strict=True)):
        for k, completion in enumerate(completions):
            extra = follow_up(request, k, completion)
            if extra is not None:
                asked.append((i, k, extra))
    if not asked:
        return results, 0
    answers = backend.generate([extra for _, _, extra in asked])
    merged = [list(row) for row in results]
    for (i, k, extra), [answer, *_] in zip(asked, answers, strict=True):
        added = extra.prefix[len(requests[i].prefix) :]
        first = merged[i][k]
        merged[i][k] = Completion(
            text=added + answer.text,
            finish_reason=answer.finish_reason,
            prompt_tokens=first.prompt_tokens,
            completion_tokens=first.completion_tokens + answer.completion_tokens,
        )
    return merged, len(asked)


def ask_all(
    ctx: StepContext,
    journal: Journal,
    queries: list[Query[T]],
    asking: Asking,
    parse: Callable[[Query[T], list[Completion], Counter[str]], Sequence[Any]],
) -> None:
    """Ask every query a batch at a time; commit each batch's parsed records before the next batch is asked.

    ``parse`` turns a query's samples into records, counting what it cannot use. ``closing``: an error in it
    shuts the engine at once, not when its traceback is finally released.
    """
    with closing(answered_batches(ctx, journal, queries, asking)) as batches:
        for batch in batches:
            commit(journal, batch, [r for query, samples in batch.answers for r in parse(query, samples, batch.counts)])


def commit(journal: Journal, batch: Batch[Any], records: Sequence[Any]) -> None:
    """Write a batch's records and mark all its inputs done, with its counters (``out``: records written)."""
    batch.counts["out"] = len(records)
    journal.commit(batch.ids, records, batch.counts)


def summary(ctx: StepContext, stage: str, journal: Journal) -> dict[str, float]:
    """The step's counters (``in`` and ``out`` even when there was nothing to do), printed as a table."""
    counters: dict[str, float] = {"in": 0, "out": 0, **journal.counters}
    print_counters(f"{ctx.name}: {stage}", counters)
    return counters
