"""Dynamic batching in front of the TF worker, grouped by text length.

Requests are queued per (model, version, signature, inner shapes and dtypes). A batch is
formed when a worker slot (``num_batch_threads``) is free and either nothing else is running
(so a lone request never waits: batch-1 latency stays the model's), the queue holds
``max_batch_size`` rows, or the oldest request has waited ``batch_timeout_micros``. Under
load every slot is busy and requests pile up into large batches by themselves.

Length grouping: a model that pads each batch to its longest text (any TF Serving model)
costs about rows x tokens of its longest text, plus a fixed cost per batch. The batcher sorts the
queued requests by length, splits them into the batches of least estimated total cost (a
dynamic programme over the sorted order, within ``max_batch_size`` and ``max_batch_tokens``)
and runs the batch that holds the oldest request (no starvation). Texts of nearly equal
length share a batch, a long text does not pad many short ones, and a batch is not split
into small ones when the per-batch cost outweighs the padding saved. Our exports skip padding
(their model card says ``skips_padding``: the encoder runs on the batch's real tokens only), so
a batch of theirs costs the sum of its texts' tokens: their requests are batched in arrival
order, and costed by their own tokens.

A request larger than ``max_batch_size`` is split into chunks that are queued separately and
reassembled in order; every caller gets exactly its own rows.

Admission is deadline-aware. A cost model per model version, fitted by least squares over
the batches it has recently run, splits a batch's wall time into a fixed per-batch cost and a
cost per padded token (rows x tokens of the longest text, where a text's tokens are estimated
from its bytes and capped at the model's ``max_seq_length``: the model truncates there). A
request is refused at once with RESOURCE_EXHAUSTED when the work queued and running ahead of
it, shared over the slots, would not leave time to run it before its deadline; a request that
could not finish before its deadline even alone on an idle server is refused with
INVALID_ARGUMENT (retrying cannot help: fewer or shorter texts, or a longer deadline, can),
and a request whose own work fits its deadline is never refused by an idle server.
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
from collections.abc import Awaitable, Mapping
from typing import Any, NamedTuple, Protocol

import numpy as np

from serving.batch_cost_model import PRIOR_FIXED_TOKENS, BatchCostModel
from serving.errors import Code, ServingError
from serving.serving_metrics import ServingMetrics

_LOG = logging.getLogger("textserve.batcher")

Arrays = Mapping[str, np.ndarray]


class RunFn(Protocol):
    """Sends a batch to the worker when called (before the loop runs anything else); the
    awaitable it returns holds (outputs, seconds inside TF)."""

    def __call__(
        self,
        key: tuple[str, int],
        signature: str,
        inputs: dict[str, np.ndarray],
        *,
        count_tokens: bool,
    ) -> Awaitable[tuple[dict[str, np.ndarray], float]]: ...


# Weight of the newest measured/estimated queue-wait ratio: ~10 batches of memory.
_COST_SMOOTHING = 0.2
# Estimates are of a noisy machine: admit a request, or grow a batch, only when the estimated
# time fits its deadline this many times over. The cost: at saturation requests are refused
# once the estimated wait reaches 1/_HEADROOM of their deadline. Measured (2 cores, gRPC, 5 s
# deadlines, open loop at 2x / 3x capacity): 1.5 still let ~10% of admitted requests miss
# their deadline (the front, the load generator and longer-than-average batches share the
# CPU); 2.5 let none miss, and the answered rate at 2x stayed at the closed-loop capacity.
_HEADROOM = 2.5
# Admission under load, once enough requests have been answered: the raw estimate of a
# request's time to answer (wait + own cost) times this quantile of answered / estimated over
# the recent requests must fit its deadline. A request that expired counts with its deadline
# as its time (at least that). So about 1 - quantile of admitted requests can miss, whatever
# the estimates get wrong (a busy machine, the front's CPU, grouping letting texts overtake).
_FINISH_QUANTILE = 0.997
_FINISH_SAMPLES = 2000
_FINISH_MIN_SAMPLES = 200
# Estimates below this are timer noise: they do not calibrate anything.
_MIN_CALIBRATION_WAIT = 0.05
# A batch's fixed cost in padded tokens, for planning batches (see batch_cost_model.py).
_BATCH_COST_TOKENS = PRIOR_FIXED_TOKENS
# Length grouping plans over the oldest queued requests only (bounds its cost per batch).
_PLAN_WINDOW = 256


def estimated_tokens(length_bytes: int, max_tokens: int = 0) -> int:
    """Rough wordpiece count of a text of this many UTF-8 bytes, [CLS] and [SEP] included,
    capped at ``max_tokens`` (the model's max_seq_length: it truncates there; 0 = no cap).
    """
    tokens = length_bytes // 4 + 2
    return min(tokens, max_tokens) if max_tokens > 0 else tokens


class _QueueKey(NamedTuple):
    """Requests with equal keys may share a batch."""

    key: tuple[str, int]  # (model, version)
    signature: str
    shapes: tuple[Any, ...]  # (input name, dtype, inner shape) of every input
    count_tokens: bool  # the outputs also hold TOKEN_COUNTS
    skips_padding: bool  # the model costs real tokens only: no length grouping


@dataclasses.dataclass(eq=False)
class _Item:
    inputs: dict[str, np.ndarray]
    rows: int
    length: int  # estimated tokens of the longest text input (0 for non-text signatures)
    deadline: float  # time.monotonic()
    enqueued: float
    future: asyncio.Future[dict[str, np.ndarray]]
    solo: bool  # never merged with others (signature without a batch dimension, or batching off)
    predicted_wait: float = 0.0  # seconds, the raw estimate at admission
    predicted_finish: float = 0.0  # seconds, raw estimated wait + own cost at admission
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
        # model key -> fixed + per padded token cost of a batch (rows x estimated tokens of the
        # longest text): a batch's cost grows with its longest text, not only with its rows.
        self._costs: dict[tuple[str, int], BatchCostModel] = {}
        self._queued_tokens: dict[tuple[Any, ...], int] = collections.defaultdict(int)
        # Measured queue wait / estimated queue wait: what the cost model misses (gaps between
        # batches, a busy event loop, length grouping letting short texts overtake long ones).
        self._wait_scale = 1.0
        self._running_seconds = 0.0  # estimated cost of the batches running now
        # Answered (or expired) time / raw estimate at admission, of recent requests.
        self._finish_ratios: collections.deque[float] = collections.deque(maxlen=_FINISH_SAMPLES)
        self._finish_scale: float | None = None  # cached quantile, None: recompute

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
        max_tokens: int = 0,
        skips_padding: bool = False,
        count_tokens: bool = False,
    ) -> dict[str, np.ndarray]:
        """Run ``inputs`` (all with ``rows`` rows when ``batchable``) and return this request's
        outputs. ``text_length``: the longest text in UTF-8 bytes; ``max_tokens``: the model's
        max_seq_length (0 if unknown); ``skips_padding``: the model computes real tokens only
        (a batch costs its texts' tokens; no length grouping); ``count_tokens``: the outputs
        also hold the worker's ``TOKEN_COUNTS`` (such requests are batched only with each
        other).
        """
        s = self._s
        solo = not (s.enabled and batchable)
        tokens = estimated_tokens(text_length, max_tokens) if text_length else 0
        # The queue key: what can share a batch, and how the model costs one. skips_padding is
        # a fact of the model version, so it splits no queue.
        shapes = tuple((n, a.dtype.str, a.shape[1:]) for n, a in sorted(inputs.items()))
        qkey = _QueueKey(key, signature, shapes, count_tokens, skips_padding)
        if solo or rows <= s.max_batch_size:
            self._admit_size(key, rows, tokens, deadline, chunks=1)
            return await self._submit_one(qkey, inputs, rows, tokens, deadline, solo)
        # Too big for one batch: split, queue the chunks, reassemble in order.
        chunks_n = math.ceil(rows / s.max_batch_size)
        self._admit_size(key, rows, tokens, deadline, chunks=chunks_n)
        chunks = []
        for start in range(0, rows, s.max_batch_size):
            part = {k: v[start : start + s.max_batch_size] for k, v in inputs.items()}
            n = min(s.max_batch_size, rows - start)
            chunks.append(self._submit_one(qkey, part, n, tokens, deadline, False))
        results = await asyncio.gather(*chunks)
        return {name: np.concatenate([r[name] for r in results], axis=0) for name in results[0]}

    def _own_seconds(self, key: tuple[str, int], rows: int, tokens: int, batches: int) -> float:
        cost = self._costs.get(key)
        if cost is None:
            return 0.0
        return cost.seconds(padded_tokens=rows * tokens, batches=batches)

    def _admit_size(
        self,
        key: tuple[str, int],
        rows: int,
        tokens: int,
        deadline: float,
        *,
        chunks: int,
    ) -> None:
        """Refuse a request that could not be answered in time even by an idle server: its own
        size is the problem, so retrying is useless (INVALID_ARGUMENT, not overload).
        """
        # Chunks of a split request may run side by side, one per slot.
        own = self._own_seconds(key, rows, tokens, chunks) / min(chunks, self._s.slots)
        now = time.monotonic()
        left = deadline - now
        if own > left and (self._busy or self._queued_requests):
            # Under load the time it came with may have gone to waiting before it reached the
            # batcher (a saturated front): overload, unless an idle server says otherwise.
            raise ServingError(
                Code.RESOURCE_EXHAUSTED,
                f"the server is overloaded: this request reached the batcher with "
                f"{max(0.0, left) * 1e3:.0f} ms left of its deadline and needs about "
                f"{own * 1e3:.0f} ms ({rows} texts, ~{tokens} tokens each); back off and retry",
            )
        if own > left:
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f"this request alone needs about {own * 1e3:.0f} ms of model time ({rows} "
                f"texts, ~{tokens} tokens each), more than its deadline allows "
                f"({max(0.0, left) * 1e3:.0f} ms): send fewer or shorter texts per request, or "
                f"give it a longer deadline",
            )

    async def _submit_one(
        self,
        qkey: _QueueKey,
        inputs: dict[str, np.ndarray],
        rows: int,
        tokens: int,
        deadline: float,
        solo: bool,
    ) -> dict[str, np.ndarray]:
        s = self._s
        key = qkey.key
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
        own = self._own_seconds(key, rows, tokens, 1)
        finish = raw_wait * self._wait_scale + own
        margin = finish * _HEADROOM
        scale = self._measured_finish_scale()
        if scale is not None:
            margin = (raw_wait + own) * scale
            finish = margin
        # Nothing ahead of it: what fits its deadline runs (_admit_size refused what does not);
        # the headroom is for the uncertainty of the wait behind other work.
        if raw_wait > 0.0 and now + margin > deadline:
            raise ServingError(
                Code.RESOURCE_EXHAUSTED,
                f"the server is overloaded: this request would be answered in about "
                f"{finish * 1e3:.0f} ms, too close to or beyond its deadline "
                f"({max(0.0, deadline - now) * 1e3:.0f} ms); back off and retry",
            )
        item = _Item(
            inputs,
            rows,
            tokens,
            deadline,
            now,
            loop.create_future(),
            solo,
            raw_wait,
            raw_wait + own,
        )
        self._queues.setdefault(qkey, collections.deque()).append(item)
        self._queued_rows[qkey] += rows
        self._queued_tokens[qkey] += rows * tokens
        self._queued_requests += 1
        self._metrics.queue_depth.labels(key[0]).inc()
        # A timer instead of asyncio.wait_for: no extra task per request on the hot path.
        timer = loop.call_later(max(0.0, deadline - now), self._expire, qkey, item)
        self._schedule()
        try:
            return await item.future
        except asyncio.CancelledError:
            self._forget(qkey, item)
            # Mostly a gRPC deadline that passed before ours fired: count it as a miss.
            self._record_finish(item, max(time.monotonic(), item.deadline) - item.enqueued)
            raise
        finally:
            timer.cancel()

    def _measured_finish_scale(self) -> float | None:
        if len(self._finish_ratios) < _FINISH_MIN_SAMPLES:
            return None
        if self._finish_scale is None:
            q = float(np.quantile(np.fromiter(self._finish_ratios, float), _FINISH_QUANTILE))
            self._finish_scale = max(1.0, q)
        return self._finish_scale

    def _record_finish(self, item: _Item, seconds: float) -> None:
        if item.predicted_wait <= 0.0:
            return  # admitted onto an idle server: not what the ratio guards
        self._finish_ratios.append(seconds / max(item.predicted_finish, _MIN_CALIBRATION_WAIT))
        if len(self._finish_ratios) % 64 == 0:
            self._finish_scale = None

    def estimated_wait(self) -> float:
        """Seconds until a newly queued request would start: the queued and running work of
        every model at its fitted batch costs, shared over the slots, times the measured ratio
        of actual to estimated waits. 0 before any batch has run (nothing measured yet: only
        the fixed queue bounds apply).
        """
        return self._raw_wait() * self._wait_scale

    def _raw_wait(self) -> float:
        s = self._s
        work = self._running_seconds
        for qkey, q in self._queues.items():
            cost = self._costs.get(qkey[0])
            if cost is None or not q:
                continue
            rows, tokens = self._queued_rows[qkey], self._queued_tokens[qkey]
            if q[0].solo:
                batches = len(q)
            else:
                batches = math.ceil(rows / s.max_batch_size)
                if s.max_batch_tokens:
                    batches = max(batches, math.ceil(tokens / s.max_batch_tokens))
            work += cost.seconds(padded_tokens=tokens, batches=batches)
        return work / s.slots

    def _expire(self, qkey: tuple[Any, ...], item: _Item) -> None:
        if item.future.done():
            return
        where = "while queued" if self._forget(qkey, item) else "while running"
        self._record_finish(item, item.deadline - item.enqueued)
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
        self._queued_tokens[qkey] -= item.rows * item.length
        self._queued_requests -= 1
        self._metrics.queue_depth.labels(qkey[0][0]).dec()

    def _schedule(self) -> None:
        """Start batches while slots are free; arm a timer for partial batches still waiting."""
        now = time.monotonic()
        wake_at: float | None = None
        while self._busy < self._s.slots and self._queued_requests:
            qkey, wake_at = self._next_queue(now)
            if qkey is None:
                break
            items = self._form(qkey, now)
            if items:
                self._dispatch(qkey, items)
        for qkey in [k for k, q in self._queues.items() if not q]:
            del self._queues[qkey]
            self._queued_rows.pop(qkey, None)
            self._queued_tokens.pop(qkey, None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if wake_at is not None and self._busy < self._s.slots:
            self._timer = asyncio.get_running_loop().call_later(
                max(0.0, wake_at - now), self._schedule
            )

    def _next_queue(self, now: float) -> tuple[tuple[Any, ...] | None, float | None]:
        """The queue whose head is oldest among those ready to run a batch now, and when the
        first not-ready one will be (its batch timeout)."""
        s = self._s
        best: tuple[float, tuple[Any, ...]] | None = None
        wake_at: float | None = None
        # Nothing runs: a lone request does not wait for company.
        idle = self._busy == 0
        for qkey, q in self._queues.items():
            if not q:
                continue
            head = q[0]
            ready = (
                head.solo
                or idle
                or self._queued_rows[qkey] >= s.max_batch_size
                or now - head.enqueued >= s.batch_timeout_s
            )
            if not ready:
                due = head.enqueued + s.batch_timeout_s
                wake_at = due if wake_at is None else min(wake_at, due)
                continue
            if best is None or head.enqueued < best[0]:
                best = (head.enqueued, qkey)
        return (None if best is None else best[1]), wake_at

    def _form(self, qkey: _QueueKey, now: float) -> list[_Item]:
        q = self._queues[qkey]
        live: list[_Item] = []
        # Expired requests are answered here without running them.
        for item in list(q):
            if item.deadline <= now:
                q.remove(item)
                self._dequeued(qkey, item)
                item.cancelled = True
                if not item.future.done():
                    self._record_finish(item, item.deadline - item.enqueued)
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
            cost_model = self._costs.get(qkey[0])
            end_by, longest, own_tokens = head.deadline, head.length, 0
            token_cap = self._s.max_batch_tokens
            packed = qkey.skips_padding
            if self._s.length_grouping and not packed:
                batchable = [it for it in live[:_PLAN_WINDOW] if not it.solo]
                order = _plan_batch(batchable, head, budget, token_cap)
            else:
                order = live
            for it in order:
                if it.solo:
                    continue
                if packed:
                    tokens = own_tokens + it.rows * it.length
                else:
                    tokens = (used + it.rows) * max(longest, it.length)
                cost = cost_model.seconds(padded_tokens=tokens) if cost_model else 0.0
                fits_deadlines = not chosen or now + cost * _HEADROOM <= min(end_by, it.deadline)
                fits_tokens = not chosen or not token_cap or tokens <= token_cap
                if used + it.rows <= budget and fits_deadlines and fits_tokens:
                    chosen.append(it)
                    used += it.rows
                    own_tokens += it.rows * it.length
                    end_by, longest = min(end_by, it.deadline), max(longest, it.length)
                if used >= budget:
                    break
        for it in chosen:
            q.remove(it)
            self._dequeued(qkey, it)
        return chosen

    def _dispatch(self, qkey: tuple[Any, ...], items: list[_Item]) -> None:
        """Assemble the batch and send it to the worker now, before the loop runs anything
        else: the callers of the batch just answered are resumed (and their responses
        encoded) only after that, so the worker does not wait for them.
        """
        batch = self._assemble(qkey, items)
        self._busy += 1
        self._running_seconds += batch.estimate
        sent = time.monotonic()
        try:
            running = self._run(
                batch.key, batch.signature, batch.inputs, count_tokens=batch.count_tokens
            )
        except Exception as exc:  # a synchronous failure is answered like an async one
            failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            running = failed
        self._observe_start(batch, sent)
        task = asyncio.get_running_loop().create_task(self._execute(batch, running, sent))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _assemble(self, qkey: _QueueKey, items: list[_Item]) -> _Batch:
        """One input array per name (rows of every item, then TF Serving's padding rows)."""
        key, signature, _, count_tokens, packed = qkey
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
        longest = max(it.length for it in items)
        if packed:
            # Real tokens only (TF Serving's padding rows are copies of the last row).
            tokens = sum(it.rows * max(1, it.length) for it in items)
            tokens += (padded_rows - rows) * max(1, items[-1].length)
        else:
            tokens = padded_rows * max(1, longest)
        cost_model = self._costs.setdefault(key, BatchCostModel())
        return _Batch(
            key=key,
            signature=signature,
            count_tokens=count_tokens,
            items=items,
            inputs=inputs,
            padded_rows=padded_rows,
            longest=longest,
            tokens=tokens,
            cost_model=cost_model,
            estimate=cost_model.seconds(padded_tokens=tokens),
        )

    async def _execute(
        self, batch: _Batch, running: Awaitable[tuple[dict[str, np.ndarray], float]], sent: float
    ) -> None:
        released = False
        try:
            try:
                outputs, seconds = await running
            finally:
                self._running_seconds -= batch.estimate
            answered = time.monotonic()
            self._deliver(batch, outputs)
            # Before the bookkeeping: the next batch goes to the worker first.
            released = True
            self._release()
            self._learn(batch, sent=sent, answered=answered, seconds=seconds)
        except ServingError as exc:
            _fail(batch.items, exc)
        except Exception as exc:  # never leave a caller hanging on a bug here
            _LOG.exception("batch failed", extra={"event": "batch_failed"})
            _fail(batch.items, ServingError(Code.INTERNAL, f"batch failed: {exc}"))
        finally:
            if not released:
                self._release()

    def _release(self) -> None:
        """A slot is free again: start what waits for it."""
        self._busy -= 1
        self._schedule()

    def _deliver(self, batch: _Batch, outputs: dict[str, np.ndarray]) -> None:
        """Each caller's rows of the batch's outputs."""
        items = batch.items
        if len(items) == 1 and batch.padded_rows == items[0].rows:
            if not items[0].future.done():
                items[0].future.set_result(outputs)
            return
        bad = [n for n, a in outputs.items() if a.ndim == 0 or a.shape[0] != batch.padded_rows]
        if bad:
            _fail(
                items,
                ServingError(
                    Code.INTERNAL,
                    f"batched outputs {bad} have no batch dimension of {batch.padded_rows}",
                ),
            )
            return
        offset = 0
        for it in items:
            part = {n: a[offset : offset + it.rows] for n, a in outputs.items()}
            offset += it.rows
            if not it.future.done():
                it.future.set_result(part)

    def _observe_start(self, batch: _Batch, sent: float) -> None:
        """Metrics of a batch that just went to the worker, and the queue-wait calibration."""
        model = batch.key[0]
        m = self._metrics
        for it in batch.items:
            waited = sent - it.enqueued
            m.queue_wait.labels(model).observe(waited)
            if it.predicted_wait >= _MIN_CALIBRATION_WAIT:
                ratio = min(max(waited / it.predicted_wait, 0.5), 5.0)
                self._wait_scale += _COST_SMOOTHING * (ratio - self._wait_scale)
        m.batch_size.labels(model).observe(batch.padded_rows)
        if batch.longest:
            m.batch_tokens.labels(model).observe(batch.padded_rows * batch.longest)

    def _learn(self, batch: _Batch, *, sent: float, answered: float, seconds: float) -> None:
        """After the answer: the batch's cost, how long its callers waited in all."""
        for it in batch.items:
            if not it.cancelled:
                self._record_finish(it, answered - it.enqueued)
        self._metrics.inference_latency.labels(batch.key[0], str(batch.key[1])).observe(seconds)
        # Wall time, not the worker's TF time: the pipe and the loop are part of the cost.
        batch.cost_model.observe(padded_tokens=batch.tokens, seconds=answered - sent)


@dataclasses.dataclass(eq=False)
class _Batch:
    key: tuple[str, int]
    signature: str
    count_tokens: bool
    items: list[_Item]
    inputs: dict[str, np.ndarray]
    padded_rows: int
    longest: int  # estimated tokens of the longest text
    tokens: int  # the batch's tokens as costed: padded_rows x longest, or real tokens only
    cost_model: BatchCostModel
    estimate: float  # seconds, from the cost model when formed


def _fail(items: list[_Item], exc: ServingError) -> None:
    for it in items:
        if not it.future.done():
            it.future.set_exception(exc)


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
        per_row = max(1, ordered[j - 1].length)  # tokens of the longest text of the batch
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
