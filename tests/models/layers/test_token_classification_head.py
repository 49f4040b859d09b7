"""TokenClassificationHead: a classifier on every token, softmax over the labels."""

from __future__ import annotations

import numpy as np

from models import contract
from models.layers.token_classification_head import TokenClassificationHead
from tests.support.head_weights import assign_random_classifier


def test_every_token_is_classified() -> None:
    head = TokenClassificationHead(num_labels=3, hidden_size=4)
    rng = np.random.default_rng(0)
    weight, bias = assign_random_classifier(head, rng, num_labels=3, hidden_size=4)
    hidden = rng.normal(size=(2, 5, 4)).astype(np.float32)
    out = head(hidden)
    logits = hidden @ weight.T + bias
    np.testing.assert_allclose(np.asarray(out[contract.TOKEN_LOGITS]), logits, atol=1e-6)
    softmax = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(np.asarray(out[contract.TOKEN_PROBABILITIES]), softmax, atol=1e-6)


def test_config_round_trip() -> None:
    head = TokenClassificationHead(num_labels=9, hidden_size=8)
    again = TokenClassificationHead.from_config(head.get_config())
    assert (again.num_labels, again.hidden_size) == (9, 8)
    assert sorted(again.checkpoint_variables()) == ["classifier.bias", "classifier.weight"]
