"""SentenceEmbeddingHead against sentence-transformers' pooling formulas."""

from __future__ import annotations

import numpy as np
import pytest

from models.layers.sentence_embedding_head import SentenceEmbeddingHead


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(3, 5, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=np.int32)
    hidden[1, 2:] = 100.0  # padding garbage must not leak into the pooled vector
    return hidden, mask


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("mode", ["mean", "cls", "max"])
def test_pooling(mode: str, normalize: bool) -> None:
    hidden, mask = _inputs()
    head = SentenceEmbeddingHead(pooling_mode=mode, normalize=normalize)
    ours = np.asarray(head(hidden, mask))
    expected = []
    for row in range(3):
        real = hidden[row, : mask[row].sum()]
        vector = {"mean": real.mean(0), "cls": hidden[row, 0], "max": real.max(0)}[mode]
        expected.append(vector / np.linalg.norm(vector) if normalize else vector)
    np.testing.assert_allclose(ours, np.stack(expected), rtol=1e-5, atol=1e-6)


def test_config_round_trip_and_validation() -> None:
    head = SentenceEmbeddingHead(pooling_mode="cls", normalize=True)
    clone = SentenceEmbeddingHead.from_config(head.get_config())
    assert (clone.pooling_mode, clone.normalize) == ("cls", True)
    with pytest.raises(ValueError, match="pooling_mode"):
        SentenceEmbeddingHead(pooling_mode="mean_sqrt_len")
