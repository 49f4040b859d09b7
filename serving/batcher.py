"""Dynamic batching in front of the TF worker, grouped by text length.

Requests are queued per (model, version, signature, inner shapes and dtypes). A batch is
formed when a worker slot (``num_batch_threads``) is free and either nothing else is running
(so a lone request never waits: batch-1 latency stays the model's), the queue holds
``max_batch_size`` rows, or the oldest request has waited ``batch_timeout_micros``. Under
load every slot is busy and requests pile up into large batches by themselves.

Length grouping: the exported models pad each batch to its longest text, so a batch costs
about rows x tokens of its longest text, plus a fixed cost per batch. The batcher sorts the
queued requests by length, splits them into the batches of least estimated total cost (a
dynamic programme over the sorted order, within ``max_batch_size`` and ``max_batch_tokens``)
and runs the batch that holds the oldest request (no starvation). Texts of nearly equal
length share a batch, a long text does not pad many short ones, and a batch is not split
into small ones when the per-batch cost outweighs the padding saved.

A request larger than ``max_batch_size`` is split into chunks that are queued separately and
reassembled in order; every caller gets exactly its own rows.

Admission is deadline-aware: the batcher keeps a running estimate of the model's cost per
padded token (rows x estimated tokens of the batch's longest text, from the batches it has run,
so it tracks the current mix of batch sizes and text lengths), and a measured correction of its
queue-wait estimates, and refuses a request at once with RESOURCE_EXHAUSTED when the work
already queued and running ahead of it, shared over the slots, would not leave time to run it
before its deadline.
Overload is thus answered immediately and explicitly (the caller can back off or try another
replica) instead of as a DEADLINE_EXCEEDED after the wait, and no slot is spent on an answer
nobody will read. The fixed bounds (``max_queued_requests``, ``max_enqueued_batches x
max_batch_size`` rows) still apply on top.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import numpy as np

from serving.errors import Code, ServingError
from serving.serving_metrics import ServingMetrics

_LOG = logging.getLogger("textserve.batcher")

Arrays = Mapping[str, np.ndarray]
RunFn = Callable[
    [tuple[str, int], str, dict[str, np.ndarray]], Awaitable[tuple[dict[str, np.ndarray], float]]
]


# Weight of the newest batch in the running cost-per-token estimate: ~10 batches of memory.
_COST_SMOOTHING = 0.2
# Estimates are of a noisy machine: admit a request, or grow a batch, only when the estimated
# time fits its deadline this many times over. The cost: at saturation requests are refused
# once the estimated wait reaches 1/_HEADROOM of their deadline. Measured (2 cores, gRPC, 5 s
# deadlines, open loop at 2x / 3x capacity): 1.5 still let ~10% of admitted requests miss
# their deadline (the front, the load generator and longer-than-average batches share the
# CPU); 2.5 let none miss, and the answered rate at 2x stayed at the closed-loop capacity.
_HEADROOM = 2.5
# Waits shorter than this are mostly timer noise: they do not calibrate the estimate.
_MIN_CALIBRATION_WAIT = 0.05
# A batch's fixed cost (pipe to the worker, dispatch, tokenizer set-up), in padded tokens of
# encoder work. Measured on the 2-core machine (MiniLM, bench_serving.py): served batch-1
# latency 12.6-14.1 ms for a ~14-token text, ~0.24 ms per token in length-sorted batches of 32
# (298 sentences/s x 14.2 tokens), i.e. ~40-45 tokens of fixed cost; rounded up to 64 for the
# front's share of the CPU, which the worker-side figures do not see.
_BATCH_COST_TOKENS = 64
# Length grouping plans over the oldest queued requests only (bounds its cost per batch).
_PLAN_WINDOW = 256


def estimated_tokens(length_bytes: int) -> int:
    """Rough wordpiece count of a text of this many UTF-8 bytes (for the padded-tokens metric)."""
    return length_bytes // 4 + 2


@dataclasses.dataclass(eq=False)
class _Item:
    inputs: dict[str, np.ndarray]
    rows: int
    length: int  # longest text input, UTF-8 bytes (0 for non-text signatures)
    deadline: float  # time.monotonic()
    enqueued: float
    future: asyncio.Future[dict[str, np.ndarray]]
    solo: bool  # never merged with others (signature without a batch dimension, or batching off)
    predicted_wait: float = 0.0  # seconds, the raw estimate at admission
    cancelled: bool = False


@dataclasses.dataclass(frozen=True)
class BatcherSettings:
    enabled: bool
    max_batch_size: int
    batch_timeout_s: float
    max_enqueued_batches: int
    slots: int  # batches in flight at once (num_batch_threads)
    allowed_batch_sizes: tuple[int, ...]
    max_queued_requests: int
    length_grouping: bool
    max_batch_tokens: int = 0  # 0: rows only (max_batch_size)


class Batcher:
    """Queue, batch, run via ``run(key, signature, inputs)``, split the outputs back per request."""

    def __init__(self, *, run: RunFn, settings: BatcherSettings, metrics: ServingMetrics) -> None:
        self._run = run
        self._s = settings
        self._metrics = metrics
        self._queues: dict[tuple[Any, ...], collections.deque[_Item]] = {}
        self._queued_rows: dict[tuple[Any, ...], int] = collections.defaultdict(int)
        self._queued_requests = 0
        self._busy = 0
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # model key -> seconds per padded token (rows x estimated tokens of the longest text):
        # a batch's cost grows with its longest text, not only with its rows.
        self._token_seconds: dict[tuple[str, int], float] = {}
        self._queued_tokens: dict[tuple[Any, ...], int] = collections.defaultdict(int)
        # Measured queue wait / estimated queue wait: what the row costs miss (gaps between
        # batches, a busy event loop, length grouping letting short texts overtake long ones).
        self._wait_scale = 1.0
        self._running_tokens: dict[tuple[str, int], int] = collections.defaultdict(int)

    @property
    def queued_requests(self) -> int:
        return self._queued_requests

    @property
    def busy(self) -> int:
        return self._busy

    async def submit(
        self,
        *,
        key: tuple[str, int],
        signature: str,
        inputs: dict[str, np.ndarray],
        rows: int,
        text_length: int,
        deadline: float,
        batchable: bool,
    ) -> dict[str, np.ndarray]:
        """Run ``inputs`` (all with ``rows`` rows when ``batchable``) and return this request's
        outputs.
        """
        s = self._s
        solo = not (s.enabled and batchable)
        if solo or rows <= s.max_batch_size:
            return await self._submit_one(key, signature, inputs, rows, text_length, deadline, solo)
        # Too big for one batch: split, queue the chunks, reassemble in order.
        chunks = []
        for start in range(0, rows, s.max_batch_size):
            part = {k: v[start : start + s.max_batch_size] for k, v in inputs.items()}
            n = min(s.max_batch_size, rows - start)
            chunks.append(self._submit_one(key, signature, part, n, text_length, deadline, False))
        results = await asyncio.gather(*chunks)
        return {name: np.concatenate([r[name] for r in results], axis=0) for name in results[0]}

    async def _submit_one(
        self,
        key: tuple[str, int],
        signature: str,
        inputs: dict[str, np.ndarray],
        rows: int,
        text_length: int,
        deadline: float,
        solo: bool,
    ) -> dict[str, np.ndarray]:
        s = self._s
        shapes = tuple((n, a.dtype.str, a.shape[1:]) for n, a in sorted(inputs.items()))
        qkey = (key, signature, shapes)
        if self._queued_requests >= s.max_queued_requests:
            raise ServingError(
                Code.RESOURCE_EXHAUSTED,
                f"the server is overloaded: {self._queued_requests} requests are queued (limit "
                f"--max_queued_requests={s.max_queued_requests}); back off and retry",
            )
        row_limit = s.max_enqueued_batches * s.max_batch_size
        if s.enabled and self._queued_rows[qkey] + rows > row_limit:
            raise ServingError(
                Code.RESOURCE_EXHAUSTED,
                f"the batch queue of {key[0]} is full ({self._queued_rows[qkey]} rows queued, "
                f"limit "
                f"max_enqueued_batches x max_batch_size = {row_limit}); back off and retry",
            )
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        raw_wait = self._raw_wait()
        own = rows * estimated_tokens(text_length) * self._token_seconds.get(key, 0.0)
        finish = raw_wait * self._wait_scale + own
        if now + finish * _HEADROOM > deadline:
            raise ServingError(
                Code.RESOURCE_EXHAUSTED,
                f"the server is overloaded: this request would be answered in about "
                f"{finish * 1e3:.0f} ms, too close to or beyond its deadline "
                f"({max(0.0, deadline - now) * 1e3:.0f} ms); back off and retry",
            )
        item = _Item(inputs, rows, text_length, deadline, now, loop.create_future(), solo, raw_wait)
        self._queues.setdefault(qkey, collections.deque()).append(item)
        self._queued_rows[qkey] += rows
        self._queued_tokens[qkey] += rows * estimated_tokens(text_length)
        self._queued_requests += 1
        self._metrics.queue_depth.labels(key[0]).inc()
        # A timer instead of asyncio.wait_for: no extra task per request on the hot path.
        timer = loop.call_later(max(0.0, deadline - now), self._expire, qkey, item)
        self._schedule()
        try:
            return await item.future
        except asyncio.CancelledError:
            self._forget(qkey, item)
            raise
        finally:
            timer.cancel()

    def estimated_wait(self) -> float:
        """Seconds until a newly queued request would start: the queued and running rows of
        every model at its measured cost per padded token, shared over the slots, times the measured
        ratio of actual to estimated waits. 0 before any batch has run (nothing measured yet:
        only the fixed queue bounds apply).
        """
        return self._raw_wait() * self._wait_scale

    def _raw_wait(self) -> float:
        seconds = self._token_seconds
        work = sum(self._queued_tokens[q] * seconds.get(q[0], 0.0) for q in self._queues)
        work += sum(n * seconds.get(k, 0.0) for k, n in self._running_tokens.items())
        return work / self._s.slots

    def _expire(self, qkey: tuple[Any, ...], item: _Item) -> None:
        if item.future.done():
            return
        where = "while queued" if self._forget(qkey, item) else "while running"
        item.future.set_exception(
            ServingError(Code.DEADLINE_EXCEEDED, f"deadline exceeded {where}")
        )

    def _forget(self, qkey: tuple[Any, ...], item: _Item) -> bool:
        """Drop a request the caller gave up on; True if it had not started."""
        item.cancelled = True
        q = self._queues.get(qkey)
        if q is not None and item in q:
            q.remove(item)
            self._dequeued(qkey, item)
            return True
        return False

    def _dequeued(self, qkey: tuple[Any, ...], item: _Item) -> None:
        self._queued_rows[qkey] -= item.rows
        self._queued_tokens[qkey] -= item.rows * estimated_tokens(item.length)
        self._queued_requests -= 1
        self._metrics.queue_depth.labels(qkey[0][0]).dec()

    def _schedule(self) -> None:
        """Start batches while slots are free; arm a timer for partial batches still waiting."""
        s = self._s
        now = time.monotonic()
        wake_at: float | None = None
        while self._busy < s.slots:
            best: tuple[float, tuple[Any, ...]] | None = None
            for qkey, q in self._queues.items():
                if not q:
                    continue
                head = q[0]
                ready = (
                    head.solo
                    or self._busy == 0
                    or self._queued_rows[qkey] >= s.max_batch_size
                    or now - head.enqueued >= s.batch_timeout_s
                )
                if not ready:
                    due = head.enqueued + s.batch_timeout_s
                    wake_at = due if wake_at is None else min(wake_at, due)
                    continue
                if best is None or head.enqueued < best[0]:
                    best = (head.enqueued, qkey)
            if best is None:
                break
            items = self._form(best[1], now)
            if not items:
                continue
            self._busy += 1
            task = asyncio.get_running_loop().create_task(self._execute(best[1], items))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        for qkey in [k for k, q in self._queues.items() if not q]:
            del self._queues[qkey]
            self._queued_rows.pop(qkey, None)
            self._queued_tokens.pop(qkey, None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if wake_at is not None and self._busy < s.slots:
            self._timer = asyncio.get_running_loop().call_later(
                max(0.0, wake_at - now), self._schedule
            )

    def _form(self, qkey: tuple[Any, ...], now: float) -> list[_Item]:
        q = self._queues[qkey]
        live: list[_Item] = []
        # Expired requests are answered here without running them.
        for item in list(q):
            if item.deadline <= now:
                q.remove(item)
                self._dequeued(qkey, item)
                item.cancelled = True
                if not item.future.done():
                    item.future.set_exception(
                        ServingError(Code.DEADLINE_EXCEEDED, "deadline exceeded while queued")
                    )
            else:
                live.append(item)
        if not live:
            return []
        head = live[0]
        if head.solo:
            chosen = [head]
        else:
            budget = self._s.max_batch_size
            chosen, used = [], 0
            # A batch must end before the earliest deadline among its rows: under load that
            # caps batches well below max_batch_size (TF Serving's default is 1000 rows, ~10 s
            # on 2 CPU cores), so an admitted request is not sunk by the rows it is batched with.
            token_s = self._token_seconds.get(qkey[0], 0.0)
            end_by, longest = head.deadline, head.length
            token_cap = self._s.max_batch_tokens
            if self._s.length_grouping:
                batchable = [it for it in live[:_PLAN_WINDOW] if not it.solo]
                order = _plan_batch(batchable, head, budget, token_cap)
            else:
                order = live
            for it in order:
                if it.solo:
                    continue
                cost = (used + it.rows) * estimated_tokens(max(longest, it.length)) * token_s
                tokens = (used + it.rows) * estimated_tokens(max(longest, it.length))
                fits_deadlines = not chosen or now + cost * _HEADROOM <= min(end_by, it.deadline)
                fits_tokens = not chosen or not token_cap or tokens <= token_cap
                if used + it.rows <= budget and fits_deadlines and fits_tokens:
                    chosen.append(it)
                    used += it.rows
                    end_by, longest = min(end_by, it.deadline), max(longest, it.length)
                if used >= budget:
                    break
        for it in chosen:
            q.remove(it)
            self._dequeued(qkey, it)
        return chosen

    async def _execute(self, qkey: tuple[Any, ...], items: list[_Item]) -> None:
        key, signature, _ = qkey
        model = key[0]
        try:
            self._calibrate_waits(model, items, started=time.monotonic())
            inputs, rows, padded_rows = self._stack_inputs(items)
            self._metrics.batch_size.labels(model).observe(padded_rows)
            longest = max(it.length for it in items)
            tokens = padded_rows * estimated_tokens(longest)
            if longest:
                self._metrics.batch_tokens.labels(model).observe(tokens)
            self._running_tokens[key] += tokens
            sent = time.monotonic()
            try:
                outputs, seconds = await self._run(key, signature, inputs)
            except ServingError as exc:
                _fail(items, exc)
                return
            finally:
                self._running_tokens[key] -= tokens
            self._metrics.inference_latency.labels(model, str(key[1])).observe(seconds)
            self._learn_token_cost(key, (time.monotonic() - sent) / tokens)
            _deliver(items, outputs, rows=rows, padded_rows=padded_rows)
        except Exception as exc:  # never leave a caller hanging on a bug here
            _LOG.exception("batch failed", extra={"event": "batch_failed"})
            _fail(items, ServingError(Code.INTERNAL, f"batch failed: {exc}"))
        finally:
            self._busy -= 1
            self._schedule()

    def _calibrate_waits(self, model: str, items: list[_Item], *, started: float) -> None:
        """Queue-wait metrics, and the admission estimate's scale learnt from real waits."""
        for it in items:
            waited = started - it.enqueued
            self._metrics.queue_wait.labels(model).observe(waited)
            if it.predicted_wait >= _MIN_CALIBRATION_WAIT:
                ratio = min(max(waited / it.predicted_wait, 0.5), 5.0)
                self._wait_scale += _COST_SMOOTHING * (ratio - self._wait_scale)

    def _stack_inputs(self, items: list[_Item]) -> tuple[dict[str, np.ndarray], int, int]:
        """The batch's inputs (requests concatenated, padded to an allowed batch size), its
        real rows and its padded rows."""
        rows = sum(it.rows for it in items)
        if len(items) == 1:
            inputs = items[0].inputs
        else:
            names = list(items[0].inputs)
            inputs = {n: np.concatenate([it.inputs[n] for it in items], axis=0) for n in names}
        padded_rows = rows
        if self._s.enabled and self._s.allowed_batch_sizes and not items[0].solo:
            padded_rows = next((b for b in self._s.allowed_batch_sizes if b >= rows), rows)
            if padded_rows > rows:
                # TF Serving pads with copies of a real row; so do we, and drop their outputs.
                inputs = {
                    n: np.concatenate([a, np.repeat(a[-1:], padded_rows - rows, axis=0)])
                    for n, a in inputs.items()
                }
        return inputs, rows, padded_rows

    def _learn_token_cost(self, key: tuple[str, int], per_token: float) -> None:
        # Wall time, not the worker's TF time: the pipe and the loop are part of the cost.
        old = self._token_seconds.get(key)
        self._token_seconds[key] = (
            per_token if old is None else old + _COST_SMOOTHING * (per_token - old)
        )


def _fail(items: list[_Item], exc: ServingError) -> None:
    for it in items:
        if not it.future.done():
            it.future.set_exception(exc)


def _deliver(
    items: list[_Item], outputs: dict[str, np.ndarray], *, rows: int, padded_rows: int
) -> None:
    """Each request's rows of the batch's outputs (padding rows dropped)."""
    if len(items) == 1 and padded_rows == rows:
        if not items[0].future.done():
            items[0].future.set_result(outputs)
        return
    bad = [n for n, a in outputs.items() if a.ndim == 0 or a.shape[0] != padded_rows]
    if bad:
        _fail(
            items,
            ServingError(
                Code.INTERNAL, f"batched outputs {bad} have no batch dimension of {padded_rows}"
            ),
        )
        return
    offset = 0
    for it in items:
        part = {n: a[offset : offset + it.rows] for n, a in outputs.items()}
        offset += it.rows
        if not it.future.done():
            it.future.set_result(part)


def _plan_batch(items: list[_Item], head: _Item, max_rows: int, max_tokens: int) -> list[_Item]:
    """Length grouping: the batch to run now, head first, then longest first.

    ``items`` sorted by length are split into contiguous batches minimising the estimated
    total cost, the sum over batches of rows x estimated tokens of the longest text +
    ``_BATCH_COST_TOKENS``, each batch within ``max_rows`` rows and ``max_tokens`` padded
    tokens (0: no token cap; a single request over a cap is a batch of its own). The batch
    holding ``head`` is returned; the others are planned again when their turn comes.
    """
    ordered = sorted(items, key=lambda it: (it.length, it.enqueued))
    n = len(ordered)
    rows = list(itertools.accumulate((it.rows for it in ordered), initial=0))
    cost = [0.0] * (n + 1)  # cost[j]: least cost of batching ordered[:j]
    cut = [0] * (n + 1)  # ordered[cut[j]:j] is the last batch of that plan
    for j in range(1, n + 1):
        per_row = estimated_tokens(ordered[j - 1].length)  # the longest text of the batch
        limit = max_rows if not max_tokens else min(max_rows, max(1, max_tokens // per_row))
        best, best_i = math.inf, j - 1
        for i in range(j - 1, -1, -1):  # batches ordered[i:j], growing while within the caps
            if i < j - 1 and rows[j] - rows[i] > limit:
                break
            c = cost[i] + (rows[j] - rows[i]) * per_row
            if c < best:
                best, best_i = c, i
        cost[j], cut[j] = best + _BATCH_COST_TOKENS, best_i
    pos, end = ordered.index(head), n
    while cut[end] > pos:
        end = cut[end]
    batch = ordered[cut[end] : end]
    return [head] + sorted((it for it in batch if it is not head), key=lambda it: -it.length)
