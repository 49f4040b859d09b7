"""ClassificationHead: softmax for single-label, sigmoid for multi-label checkpoints."""

from __future__ import annotations

import numpy as np

from models import contract
from models.layers.classification_head import ClassificationHead
from tests.support.head_weights import assign_random_classifier


def _head(multi_label: bool) -> tuple[ClassificationHead, np.ndarray, np.ndarray]:
    head = ClassificationHead(num_labels=3, hidden_size=4, multi_label=multi_label)
    weight, bias = assign_random_classifier(
        head, np.random.default_rng(0), num_labels=3, hidden_size=4
    )
    return head, weight, bias


def test_softmax_probabilities() -> None:
    head, weight, bias = _head(multi_label=False)
    pooled = np.random.default_rng(1).normal(size=(2, 4)).astype(np.float32)
    out = head(pooled)
    logits = pooled @ weight.T + bias
    np.testing.assert_allclose(np.asarray(out[contract.LOGITS]), logits, atol=1e-6)
    softmax = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(np.asarray(out[contract.PROBABILITIES]), softmax, atol=1e-6)


def test_sigmoid_probabilities_for_multi_label() -> None:
    head, weight, bias = _head(multi_label=True)
    pooled = np.random.default_rng(1).normal(size=(2, 4)).astype(np.float32)
    logits = pooled @ weight.T + bias
    np.testing.assert_allclose(
        np.asarray(head(pooled)[contract.PROBABILITIES]), 1 / (1 + np.exp(-logits)), atol=1e-6
    )
    assert ClassificationHead.from_config(head.get_config()).multi_label is True
