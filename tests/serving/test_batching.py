"""The batcher in-process, with a deterministic stand-in for the worker's run call.

The stand-in is a real function of its inputs (row i -> f(row i)), not a mock: these tests
check which rows go where, which is independent of TensorFlow. Batching against the real
model under 64 concurrent callers is in test_serving_parity.py.
"""

from __future__ import annotations

import asyncio
import random
import time

import numpy as np
import pytest

from serving.batcher import Batcher
from serving.errors import Code, ServingError
from serving.serving_metrics import ServingMetrics
from tests.support.batcher_settings import batcher_settings as settings

KEY = ("m", 1)


class RecordingModel:
    """``out = length of each text``; records each executed batch's rows."""

    def __init__(
        self, delay: float = 0.0, gate: asyncio.Event | None = None, row_delay: float = 0.0
    ) -> None:
        self.batches: list[list[bytes]] = []
        self.delay = delay
        self.gate = gate
        self.row_delay = row_delay  # a cost per row, as a real model has

    async def __call__(
        self,
        key: tuple[str, int],
        signature: str,
        inputs: dict[str, np.ndarray],
        *,
        count_tokens: bool = False,
    ) -> tuple[dict[str, np.ndarray], float]:
        texts = list(inputs["text"])
        self.batches.append(texts)
        if self.gate is not None:
            await self.gate.wait()
        if self.delay or self.row_delay:
            await asyncio.sleep(self.delay + self.row_delay * len(texts))
        lengths = np.array([len(t) for t in texts], dtype=np.int64)
        return {"length": lengths, "echo": np.array(texts, dtype=object)}, 0.0


async def submit(
    b: Batcher,
    texts: list[bytes],
    deadline_s: float = 30.0,
    batchable: bool = True,
    skips_padding: bool = False,
) -> dict[str, np.ndarray]:
    arr = np.array(texts, dtype=object)
    return await b.submit(
        key=KEY,
        signature="s",
        inputs={"text": arr},
        rows=len(texts),
        text_length=max(len(t) for t in texts),
        deadline=time.monotonic() + deadline_s,
        batchable=batchable,
        skips_padding=skips_padding,
    )


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_every_caller_gets_exactly_its_rows_under_64_concurrent_callers() -> None:
    async def main() -> None:
        model = RecordingModel(delay=0.002)
        b = Batcher(
            run=model, settings=settings(max_batch_size=16, slots=2), metrics=ServingMetrics()
        )
        rng = random.Random(0)
        requests = [
            [
                f"r{i}-{j}-".encode() + b"x" * rng.randrange(0, 900)
                for j in range(rng.randrange(1, 5))
            ]
            for i in range(64)
        ]
        results = await asyncio.gather(*(submit(b, texts) for texts in requests))
        for texts, out in zip(requests, results, strict=True):
            assert list(out["echo"]) == texts
            assert list(out["length"]) == [len(t) for t in texts]
        assert len(model.batches) < 64  # requests were merged
        assert max(len(batch) for batch in model.batches) <= 16

    run(main())


def test_request_larger_than_max_batch_size_is_split_and_reassembled() -> None:
    async def main() -> None:
        model = RecordingModel()
        b = Batcher(run=model, settings=settings(max_batch_size=4), metrics=ServingMetrics())
        texts = [f"t{i}".encode() * (i + 1) for i in range(11)]
        out = await submit(b, texts)
        assert list(out["echo"]) == texts
        assert all(len(batch) <= 4 for batch in model.batches)
        assert sum(len(batch) for batch in model.batches) == 11

    run(main())


def test_lone_request_does_not_wait_for_the_batch_timeout() -> None:
    async def main() -> None:
        b = Batcher(
            run=RecordingModel(), settings=settings(batch_timeout_s=120.0), metrics=ServingMetrics()
        )
        # Nothing else is running: the request must go at once, not after 120 s.
        out = await asyncio.wait_for(submit(b, [b"alone"]), timeout=10.0)
        assert list(out["length"]) == [5]

    run(main())


def test_full_queue_is_refused_immediately_with_resource_exhausted() -> None:
    async def main() -> None:
        gate = asyncio.Event()
        model = RecordingModel(gate=gate)
        b = Batcher(
            run=model, settings=settings(max_queued_requests=3, slots=1), metrics=ServingMetrics()
        )
        running = asyncio.ensure_future(submit(b, [b"first"]))
        await asyncio.sleep(0.01)  # "first" occupies the only slot
        queued = [asyncio.ensure_future(submit(b, [b"q%d" % i])) for i in range(3)]
        await asyncio.sleep(0.01)
        with pytest.raises(ServingError) as err:
            await submit(b, [b"one too many"])
        assert err.value.code is Code.RESOURCE_EXHAUSTED
        gate.set()
        assert [list((await f)["echo"]) for f in queued] == [[b"q0"], [b"q1"], [b"q2"]]
        await running

    run(main())


def test_batch_queue_row_limit_is_max_enqueued_batches_times_max_batch_size() -> None:
    async def main() -> None:
        gate = asyncio.Event()
        b = Batcher(
            run=RecordingModel(gate=gate),
            settings=settings(max_batch_size=2, max_enqueued_batches=2),
            metrics=ServingMetrics(),
        )
        running = asyncio.ensure_future(submit(b, [b"a"]))
        await asyncio.sleep(0.01)
        queued = asyncio.ensure_future(submit(b, [b"b", b"c", b"d", b"e"]))  # 4 rows = the limit
        await asyncio.sleep(0.01)
        with pytest.raises(ServingError) as err:
            await submit(b, [b"f"])
        assert err.value.code is Code.RESOURCE_EXHAUSTED
        gate.set()
        await running
        assert list((await queued)["echo"]) == [b"b", b"c", b"d", b"e"]

    run(main())


def test_deadline_passed_while_queued_is_answered_without_running() -> None:
    async def main() -> None:
        gate = asyncio.Event()
        model = RecordingModel(gate=gate)
        b = Batcher(run=model, settings=settings(slots=1), metrics=ServingMetrics())
        running = asyncio.ensure_future(submit(b, [b"slow"]))
        await asyncio.sleep(0.01)
        with pytest.raises(ServingError) as err:
            await submit(b, [b"late"], deadline_s=0.05)
        assert err.value.code is Code.DEADLINE_EXCEEDED
        gate.set()
        await running
        await asyncio.sleep(0.01)
        assert all(b"late" not in batch for batch in model.batches)
        assert b.queued_requests == 0

    run(main())


def test_request_that_cannot_meet_its_deadline_is_refused_at_once() -> None:
    async def main() -> None:
        model = RecordingModel(row_delay=0.02)  # 20 ms per row, batches of up to 8
        b = Batcher(run=model, settings=settings(slots=1), metrics=ServingMetrics())
        await submit(b, [b"measure"] * 8)  # one batch teaches the batcher the cost per row
        backlog = [asyncio.ensure_future(submit(b, [b"queued %d" % i])) for i in range(40)]
        await asyncio.sleep(0.01)  # ~40 rows ahead = ~0.8-1.1 s of work
        assert 0.6 < b.estimated_wait() < 1.4, b.estimated_wait()  # longer texts cost more
        started = time.monotonic()
        with pytest.raises(ServingError) as err:
            await submit(b, [b"hurried"], deadline_s=0.3)
        assert time.monotonic() - started < 0.05  # answered at once, not after the wait
        assert err.value.code is Code.RESOURCE_EXHAUSTED
        assert "deadline" in err.value.message and "back off" in err.value.message
        patient = await submit(b, [b"patient"], deadline_s=5.0)
        assert list(patient["echo"]) == [b"patient"]
        assert all(
            list(r["echo"]) == [b"queued %d" % i]
            for i, r in enumerate(await asyncio.gather(*backlog))
        )
        assert all(b"hurried" not in batch for batch in model.batches)  # never ran
        assert b.queued_requests == 0 and b.estimated_wait() == 0.0

    run(main())


def test_a_batch_is_capped_so_it_ends_before_its_earliest_deadline() -> None:
    async def main() -> None:
        model = RecordingModel(row_delay=0.02)
        b = Batcher(
            run=model, settings=settings(slots=1, max_batch_size=100), metrics=ServingMetrics()
        )
        await submit(b, [b"measure"] * 8)  # 20 ms per row
        model.gate = asyncio.Event()
        blocker = asyncio.ensure_future(submit(b, [b"blocker"]))
        await asyncio.sleep(0.01)
        hurried = asyncio.ensure_future(submit(b, [b"hurried"], deadline_s=0.8))
        patient = [
            asyncio.ensure_future(submit(b, [b"p%d" % i], deadline_s=10.0)) for i in range(30)
        ]
        await asyncio.sleep(0.5)  # the running batch takes far longer than estimated
        model.gate.set()
        # 31 rows x 20 ms would end after "hurried"'s deadline: its batch is cut short instead.
        assert list((await hurried)["echo"]) == [b"hurried"]
        await blocker
        assert [list(r["echo"]) for r in await asyncio.gather(*patient)] == [
            [b"p%d" % i] for i in range(30)
        ]
        first = model.batches[2]
        assert first[0] == b"hurried" and len(first) <= 12, first
        assert sum(len(batch) for batch in model.batches[2:]) == 31

    run(main())


def test_max_batch_tokens_caps_batches_of_long_texts_not_of_short_ones() -> None:
    async def main() -> None:
        gate = asyncio.Event()
        model = RecordingModel(gate=gate)
        b = Batcher(
            run=model,
            settings=settings(slots=1, max_batch_size=100, max_batch_tokens=400),
            metrics=ServingMetrics(),
        )
        blocker = asyncio.ensure_future(submit(b, [b"blocker"]))
        await asyncio.sleep(0.01)
        long_text = b"x" * 396  # ~101 estimated tokens: 3 rows fit in 400 padded tokens
        short_text = b"y" * 36  # ~11 tokens: 36 rows fit
        calls = [submit(b, [long_text]) for _ in range(7)] + [
            submit(b, [short_text]) for _ in range(40)
        ]
        pending = asyncio.gather(*calls)
        await asyncio.sleep(0.01)
        gate.set()
        await pending
        await blocker
        sizes = [(len(batch), len(batch[0])) for batch in model.batches[1:]]
        assert all(n <= 3 for n, length in sizes if length == 396), sizes
        assert max(n for n, length in sizes if length == 36) > 30, sizes  # short texts batch big
        assert sum(n for n, _ in sizes) == 47

    run(main())


def test_before_any_batch_has_run_only_the_fixed_bounds_apply() -> None:
    async def main() -> None:
        model = RecordingModel(row_delay=0.02)
        b = Batcher(run=model, settings=settings(slots=1), metrics=ServingMetrics())
        assert b.estimated_wait() == 0.0
        answers = await asyncio.gather(
            *(submit(b, [b"x%d" % i], deadline_s=5.0) for i in range(20))
        )
        assert [list(a["echo"]) for a in answers] == [[b"x%d" % i] for i in range(20)]

    run(main())


def batched_while_busy(
    requests: list[bytes], max_batch_size: int, skips_padding: bool = False
) -> list[list[bytes]]:
    """The batches ``requests`` (one text each, queued in this order while another batch runs)
    are run in; checks that each caller got its own row."""

    async def main() -> list[list[bytes]]:
        gate = asyncio.Event()
        model = RecordingModel(gate=gate)
        b = Batcher(
            run=model,
            settings=settings(max_batch_size=max_batch_size, slots=1),
            metrics=ServingMetrics(),
        )
        blocker = asyncio.ensure_future(submit(b, [b"block"], skips_padding=skips_padding))
        await asyncio.sleep(0.01)
        futures = []
        for text in requests:
            futures.append(asyncio.ensure_future(submit(b, [text], skips_padding=skips_padding)))
            await asyncio.sleep(0)  # queued in this order
        await asyncio.sleep(0.01)
        gate.set()
        answers = await asyncio.gather(blocker, *futures)
        assert [list(a["echo"]) for a in answers[1:]] == [[t] for t in requests]
        return model.batches[1:]

    return run(main())  # type: ignore[return-value]


def test_length_grouping_keeps_long_texts_out_of_short_batches() -> None:
    short = [b"s%d" % i for i in range(4)]
    long = [b"L%d" % i + b"y" * 2000 for i in range(4)]
    mixed = [x for pair in zip(short, long, strict=True) for x in pair]  # s, L, s, L ...
    batches = batched_while_busy(mixed, max_batch_size=8)
    # Everything fits in one batch of 8, but short and long texts were batched apart.
    assert sorted(sorted(batch) for batch in batches) == [sorted(long), sorted(short)]


def test_a_model_that_skips_padding_is_batched_in_arrival_order_whatever_the_lengths() -> None:
    # The same mix length grouping splits in two (above): an encoder that runs on real tokens
    # only pays nothing for the mix, so one full batch, oldest first, is the cheapest.
    short = [b"s%d" % i for i in range(4)]
    long = [b"L%d" % i + b"y" * 2000 for i in range(4)]
    mixed = [x for pair in zip(short, long, strict=True) for x in pair]
    assert batched_while_busy(mixed, max_batch_size=8, skips_padding=True) == [mixed]
    assert batched_while_busy(mixed, max_batch_size=4, skips_padding=True) == [
        mixed[:4],
        mixed[4:],
    ]


@pytest.mark.parametrize(
    ("short_bytes", "long_bytes", "together"),
    [
        # ~17 vs ~19 tokens: padding 16 rows by 2 tokens costs less than a second batch.
        (60, 70, True),
        # ~19 vs ~32 tokens: 16 rows padded by 13 tokens cost more than a second batch.
        (70, 120, False),
    ],
)
def test_length_grouping_weighs_padding_against_the_cost_of_another_batch(
    short_bytes: int, long_bytes: int, together: bool
) -> None:
    # No fixed length boundaries: what decides is the estimated cost of the batches.
    short = [b"s%02d" % i + b"x" * (short_bytes - 3) for i in range(16)]
    long = [b"L%02d" % i + b"y" * (long_bytes - 3) for i in range(16)]
    mixed = [x for pair in zip(short, long, strict=True) for x in pair]
    batches = batched_while_busy(mixed, max_batch_size=32)
    if together:
        assert [len(batch) for batch in batches] == [32]
    else:
        assert sorted(sorted(batch) for batch in batches) == [sorted(long), sorted(short)]


def test_length_grouping_runs_the_oldest_request_first_and_pads_no_one_to_it() -> None:
    # A long request that arrived first runs in the very next batch, alone: the short ones
    # behind it batch better without it.
    long = b"L" * 3000
    batches = batched_while_busy([long] + [b"s%d" % i for i in range(12)], max_batch_size=4)
    assert batches[0] == [long]
    assert all(len(batch) == 4 for batch in batches[1:])


def test_allowed_batch_sizes_pad_with_real_rows_and_drop_their_outputs() -> None:
    async def main() -> None:
        model = RecordingModel()
        b = Batcher(
            run=model,
            settings=settings(max_batch_size=8, allowed_batch_sizes=(4, 8)),
            metrics=ServingMetrics(),
        )
        out = await submit(b, [b"a", b"bb", b"ccc"])
        assert list(out["length"]) == [1, 2, 3]
        assert model.batches == [[b"a", b"bb", b"ccc", b"ccc"]]

    run(main())


def test_without_batching_each_request_runs_alone_and_whole() -> None:
    async def main() -> None:
        model = RecordingModel(delay=0.001)
        b = Batcher(
            run=model,
            settings=settings(enabled=False, max_batch_size=2, slots=2),
            metrics=ServingMetrics(),
        )
        requests = [[b"x%d-%d" % (i, j) for j in range(i % 5 + 1)] for i in range(20)]
        results = await asyncio.gather(*(submit(b, texts) for texts in requests))
        for texts, out in zip(requests, results, strict=True):
            assert list(out["echo"]) == texts
        assert sorted(map(tuple, model.batches)) == sorted(map(tuple, requests))

    run(main())


def test_worker_failure_reaches_every_caller_of_the_batch() -> None:
    async def failing(
        key: tuple[str, int],
        signature: str,
        inputs: dict[str, np.ndarray],
        *,
        count_tokens: bool = False,
    ) -> tuple[dict[str, np.ndarray], float]:
        raise ServingError(Code.UNAVAILABLE, "worker died")

    async def main() -> None:
        b = Batcher(run=failing, settings=settings(), metrics=ServingMetrics())
        results = await asyncio.gather(
            *(submit(b, [b"t%d" % i]) for i in range(5)), return_exceptions=True
        )
        assert all(isinstance(r, ServingError) and r.code is Code.UNAVAILABLE for r in results)
        assert b.busy == 0 and b.queued_requests == 0

    run(main())
