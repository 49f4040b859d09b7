"""MaskedLMHead: transform + LayerNorm + decoder tied to the word embeddings (or its own)."""

from __future__ import annotations

import keras
import numpy as np
from scipy.special import erf

from models.layers.masked_lm_head import MaskedLMHead


def _expected(head: MaskedLMHead, hidden: np.ndarray, decoder: np.ndarray) -> np.ndarray:
    kernel = np.asarray(head.transform.kernel)
    x = hidden @ kernel + np.asarray(head.transform.bias)
    x = 0.5 * x * (1 + erf(x / np.sqrt(2)))
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    x = (x - mean) / np.sqrt(var + 1e-12)
    x = x * np.asarray(head.transform_layer_norm.gamma) + np.asarray(head.transform_layer_norm.beta)
    return x @ decoder.T + np.asarray(head.decoder_bias)


def test_tied_decoder_reads_the_embedding_matrix() -> None:
    embedding = keras.layers.Embedding(11, 8)
    embedding.build((None, None))
    head = MaskedLMHead(vocab_size=11, hidden_size=8, token_embedding=embedding)
    keys = set(head.checkpoint_variables())
    assert "cls.predictions.decoder.weight" not in keys and "cls.predictions.bias" in keys
    head.decoder_bias.assign(np.arange(11, dtype=np.float32))
    hidden = np.random.default_rng(0).normal(size=(2, 3, 8)).astype(np.float32)
    expected = _expected(head, hidden, np.asarray(embedding.embeddings))
    np.testing.assert_allclose(np.asarray(head(hidden)), expected, atol=1e-5)
    # Tied means shared: changing the embeddings changes the decoder.
    embedding.embeddings.assign(np.asarray(embedding.embeddings) * 2)
    expected = _expected(head, hidden, np.asarray(embedding.embeddings))
    np.testing.assert_allclose(np.asarray(head(hidden)), expected, atol=1e-5)


def test_untied_decoder_has_its_own_kernel() -> None:
    head = MaskedLMHead(vocab_size=11, hidden_size=8, hidden_act="gelu")
    keys = head.checkpoint_variables()
    assert "cls.predictions.decoder.weight" in keys
    assert tuple(head.decoder_kernel.shape) == (11, 8)
    hidden = np.random.default_rng(0).normal(size=(1, 2, 8)).astype(np.float32)
    expected = _expected(head, hidden, np.asarray(head.decoder_kernel))
    np.testing.assert_allclose(np.asarray(head(hidden)), expected, atol=1e-5)
    config = head.get_config()
    assert "token_embedding" not in config and config["vocab_size"] == 11
