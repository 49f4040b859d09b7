"""``BatchCostModel``: what a batch costs, learned from the batches a model version has run.

A batch's wall time is modelled as ``fixed + per_token x padded_tokens`` (padded tokens = rows x
tokens of the batch's longest text). Both terms are fitted by least squares over the most
recent batches, so a burst of one-row batches of one-word texts (almost all fixed cost) does
not teach a per-token cost 25x the real one, and a long text is costed at what a long text
really costs.

Example::

    cost = BatchCostModel()
    cost.observe(padded_tokens=3, seconds=0.012)
    cost.observe(padded_tokens=8192, seconds=2.1)
    cost.seconds(padded_tokens=512)  # fixed + per-token cost of one batch of 512 padded tokens
"""

from __future__ import annotations

import collections

# Batches remembered for the fit: enough to average the noise of a shared machine, few enough
# to follow a change of the traffic mix (or of the machine's load) within a few seconds.
_WINDOW = 64
# Until the batches seen differ enough in size to separate the two terms, the fixed cost is
# taken as this many padded tokens of encoder work. Measured on the 2-core machine (MiniLM,
# bench_serving.py): served batch-1 latency 12.6-14.1 ms for a ~14-token text, ~0.24 ms per
# token in length-sorted batches of 32, i.e. ~40-45 tokens of fixed cost; rounded up to 64 for
# the front's share of the CPU, which the worker-side figures do not see.
PRIOR_FIXED_TOKENS = 64
# The fit needs batch sizes spread over at least this ratio (largest / smallest padded tokens).
_MIN_SPREAD = 2.0


class BatchCostModel:
    """Fixed + per-token cost of a batch, least-squares fitted over the last batches run."""

    def __init__(self) -> None:
        self._seen: collections.deque[tuple[float, float]] = collections.deque(maxlen=_WINDOW)
        self._fixed = 0.0
        self._per_token = 0.0

    @property
    def measured(self) -> bool:
        """False until a batch has run: nothing is known, only the fixed queue bounds apply."""
        return bool(self._seen)

    @property
    def fixed_seconds(self) -> float:
        return self._fixed

    @property
    def token_seconds(self) -> float:
        return self._per_token

    def seconds(self, *, padded_tokens: float, batches: float = 1.0) -> float:
        """Estimated wall time of ``batches`` batches holding ``padded_tokens`` in all."""
        return self._fixed * batches + self._per_token * padded_tokens

    def observe(self, *, padded_tokens: int, seconds: float) -> None:
        """Record one batch run (its wall time as the batcher saw it) and refit."""
        self._seen.append((float(max(1, padded_tokens)), max(0.0, seconds)))
        fit = self._least_squares(self._seen)
        if fit is None:
            # Too little spread to tell the terms apart: split the mean by the prior ratio.
            n = len(self._seen)
            mean_x = sum(t for t, _ in self._seen) / n
            mean_y = sum(s for _, s in self._seen) / n
            per_token = mean_y / (mean_x + PRIOR_FIXED_TOKENS)
            fit = (per_token * PRIOR_FIXED_TOKENS, per_token)
        self._fixed, self._per_token = fit

    @staticmethod
    def _least_squares(seen: collections.deque[tuple[float, float]]) -> tuple[float, float] | None:
        # Closed form over the window in plain Python: this runs once per batch on the event
        # loop, and numpy's polyfit took ~57 us of it (this: ~15 us for 64 batches).
        n = len(seen)
        if n < 3:
            return None
        xs = [t for t, _ in seen]
        if max(xs) < _MIN_SPREAD * min(xs):
            return None
        mean_x = sum(xs) / n
        mean_y = sum(s for _, s in seen) / n
        sxx = sum((t - mean_x) ** 2 for t in xs)
        sxy = sum((t - mean_x) * (s - mean_y) for t, s in seen)
        slope = sxy / sxx
        if slope <= 0.0:
            return None  # noise swamped the size effect: fall back to the prior split
        intercept = mean_y - slope * mean_x
        if intercept < 0.0:
            # A negative fixed cost is noise too: refit through the origin (no fixed cost).
            return 0.0, sum(t * s for t, s in seen) / sum(t * t for t in xs)
        return intercept, slope
