"""Admission never refuses what an idle server can serve (issue 12, defect 1).

The stand-in model costs what a real one does, a fixed cost per batch plus a cost per padded
token of the tokens the model really runs (capped at its max_seq_length), so the cost model
has to learn the two terms apart to admit long texts after a run of one-word requests.
"""

from __future__ import annotations

import asyncio
import gc
import time

import numpy as np
import pytest

from serving.batch_cost_model import BatchCostModel
from serving.batcher import Batcher, estimated_tokens
from serving.errors import Code, ServingError
from serving.serving_metrics import ServingMetrics
from tests.support.batcher_settings import batcher_settings

KEY = ("m", 1)
MAX_SEQ = 256
FIXED_S = 0.010
TOKEN_S = 0.00005


class CostedModel:
    """``out = byte length of each text``, after sleeping fixed + per padded token."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    async def __call__(
        self,
        key: tuple[str, int],
        signature: str,
        inputs: dict[str, np.ndarray],
        *,
        count_tokens: bool = False,
    ) -> tuple[dict[str, np.ndarray], float]:
        texts = list(inputs["text"])
        longest = max(estimated_tokens(len(t), MAX_SEQ) for t in texts)
        self.batches.append(len(texts))
        await asyncio.sleep(FIXED_S + TOKEN_S * len(texts) * longest)
        return {"length": np.array([len(t) for t in texts], dtype=np.int64)}, 0.0


def _batcher(model: CostedModel) -> Batcher:
    return Batcher(
        run=model, settings=batcher_settings(max_batch_size=32), metrics=ServingMetrics()
    )


async def _submit(b: Batcher, texts: list[bytes], deadline_s: float) -> dict[str, np.ndarray]:
    return await b.submit(
        key=KEY,
        signature="s",
        inputs={"text": np.array(texts, dtype=object)},
        rows=len(texts),
        text_length=max(len(t) for t in texts),
        deadline=time.monotonic() + deadline_s,
        batchable=True,
        max_tokens=MAX_SEQ,
    )


@pytest.mark.parametrize("chars", [2_000, 8_000, 20_000])
def test_idle_server_admits_a_long_text_after_many_one_word_requests(chars: int) -> None:
    async def main() -> None:
        b = _batcher(CostedModel())
        for _ in range(10):
            await _submit(b, [b"a"], deadline_s=5.0)
        # Really runs in ~10 + 0.05 x 256 = 23 ms; it was refused as "about 15054 ms" (2,000
        # chars) because one-row batches of "a" taught ~25x the real per-token cost.
        out = await _submit(b, [b"x" * chars], deadline_s=0.5)
        assert list(out["length"]) == [chars]

    asyncio.run(main())


def test_idle_server_admits_64_long_texts_within_the_default_deadline() -> None:
    async def main() -> None:
        b = _batcher(CostedModel())
        for _ in range(10):
            await _submit(b, [b"a"], deadline_s=5.0)
        texts = [b"word " * 600] * 64  # ~3,000 chars each, truncated to 256 tokens by the model
        out = await _submit(b, texts, deadline_s=30.0)
        assert list(out["length"]) == [3000] * 64

    asyncio.run(main())


def test_a_request_too_big_for_its_own_deadline_is_invalid_argument_not_overload() -> None:
    async def main() -> None:
        model = CostedModel()
        b = _batcher(model)
        for n in (1, 4, 16, 32):  # batches of different sizes: both cost terms are fitted
            await _submit(b, [b"y" * 1000] * n, deadline_s=5.0)
        ran = len(model.batches)
        # 64 texts x 256 tokens: ~0.84 s of model time, with a 0.2 s deadline.
        with pytest.raises(ServingError) as err:
            await _submit(b, [b"z" * 3000] * 64, deadline_s=0.2)
        assert err.value.code is Code.INVALID_ARGUMENT
        assert "fewer or shorter texts" in err.value.message
        assert len(model.batches) == ran  # refused before running anything

    asyncio.run(main())


def test_token_estimate_is_capped_at_max_seq_length() -> None:
    assert estimated_tokens(20_000) == 5_002
    assert estimated_tokens(20_000, 256) == 256
    assert estimated_tokens(40, 256) == 12


def test_cost_model_separates_fixed_and_per_token_costs() -> None:
    cost = BatchCostModel()
    rng = np.random.default_rng(0)
    for tokens in rng.integers(3, 2048, size=64):
        noise = rng.normal(0.0, 0.001)  # a millisecond of jitter
        cost.observe(padded_tokens=int(tokens), seconds=0.012 + 0.0002 * tokens + noise)
    assert cost.fixed_seconds == pytest.approx(0.012, rel=0.3)
    assert cost.token_seconds == pytest.approx(0.0002, rel=0.05)


def test_cost_model_without_spread_keeps_the_per_token_cost_of_tiny_batches_small() -> None:
    cost = BatchCostModel()
    for _ in range(10):
        cost.observe(padded_tokens=3, seconds=0.012)  # one-row batches of "a"
    # The old running ratio taught 0.004 s per token (2 s for 512 tokens).
    assert cost.seconds(padded_tokens=512) < 0.2
    assert cost.seconds(padded_tokens=3) == pytest.approx(0.012, rel=0.01)


def test_at_3x_load_almost_no_admitted_request_misses_its_deadline() -> None:
    """Defect 8: 3.6% of admitted requests missed 2 s deadlines at 3x load.

    What the batch costs do not show (here: the event loop busy ~40% of the time in bursts,
    as a front decoding a flood of requests is) made the fixed 2.5x headroom too small. The
    admission now scales its estimates by a high quantile of answered / estimated times.
    Thresholds are loose on purpose (a shared machine): the fixed headroom missed ~18%.
    """
    import random

    rng = random.Random(0)

    async def model(
        key: tuple[str, int],
        signature: str,
        inputs: dict[str, np.ndarray],
        *,
        count_tokens: bool = False,
    ) -> tuple[dict[str, np.ndarray], float]:
        texts = list(inputs["text"])
        longest = max(estimated_tokens(len(t)) for t in texts)
        cost = 0.004 + 0.00002 * len(texts) * longest
        await asyncio.sleep(cost * rng.uniform(0.7, 1.6))
        return {"length": np.array([len(t) for t in texts], dtype=np.int64)}, 0.0

    async def main() -> dict[str, int]:
        settings = batcher_settings(
            max_batch_size=32,
            max_enqueued_batches=1000,
            max_queued_requests=100_000,
            max_batch_tokens=4096,
        )
        b = Batcher(run=model, settings=settings, metrics=ServingMetrics())
        texts = [b"x" * rng.randrange(20, 400) for _ in range(1000)]

        async def busy_loop() -> None:
            while True:
                time.sleep(0.004 * rng.uniform(0.5, 3.0))  # noqa: ASYNC251 - the point
                await asyncio.sleep(0.006)

        async def one(text: bytes, deadline_s: float) -> str:
            try:
                await _submit_raw(b, text, deadline_s)
            except ServingError as exc:
                return exc.code.name
            return "OK"

        hog = asyncio.ensure_future(busy_loop())
        done, stop = 0, time.monotonic() + 2.0

        async def closed(i: int) -> None:
            nonlocal done
            while time.monotonic() < stop:
                ok = await one(texts[(7 * i + done) % len(texts)], 30.0) == "OK"
                done += ok

        t0 = time.monotonic()
        await asyncio.gather(*(closed(i) for i in range(32)))
        rate = 3 * done / (time.monotonic() - t0)
        tasks, n, t0 = [], 0, time.monotonic()
        while (now := time.monotonic()) < t0 + 5.0:
            due = t0 + n / rate
            if due > now:
                await asyncio.sleep(due - now)
            tasks.append(asyncio.ensure_future(one(texts[n % len(texts)], 0.5)))
            n += 1
        codes: dict[str, int] = {}
        for code in await asyncio.gather(*tasks):
            codes[code] = codes.get(code, 0) + 1
        hog.cancel()
        return codes

    # The test process holds TensorFlow, PyTorch and every test module (~0.5M objects): a full
    # garbage collection here stalls the loop for far longer than in the server's front, which
    # imports neither. Freeze what exists, so only the run's own objects are collected.
    gc.collect()
    gc.freeze()
    try:
        codes = asyncio.run(main())
    finally:
        gc.unfreeze()
    admitted = codes.get("OK", 0) + codes.get("DEADLINE_EXCEEDED", 0)
    assert set(codes) <= {"OK", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"}, codes
    assert codes.get("RESOURCE_EXHAUSTED", 0) > 0  # it was overloaded: the excess is refused
    # None missed on an idle machine (4 runs, 2,529-2,710 admitted); the fixed headroom missed
    # ~18%. 5% leaves room for a busy host (a full run once saw 74 of 2,080 = 3.6%, with the
    # loop slower throughout: fewer admitted) and still fails that defect.
    assert admitted > 0 and codes.get("DEADLINE_EXCEEDED", 0) <= 0.05 * admitted, codes


async def _submit_raw(b: Batcher, text: bytes, deadline_s: float) -> dict[str, np.ndarray]:
    return await b.submit(
        key=KEY,
        signature="s",
        inputs={"text": np.array([text], dtype=object)},
        rows=1,
        text_length=len(text),
        deadline=time.monotonic() + deadline_s,
        batchable=True,
    )
