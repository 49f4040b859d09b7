"""``reference_grouper_inputs``: an ``EntityGrouper``'s arguments, computed by the reference
tokenizer and PyTorch model (to test the grouper alone against transformers' pipeline)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import torch


def reference_grouper_inputs(
    tokenizer: Any, model: Any, texts: Sequence[str]
) -> tuple[tf.Tensor, ...]:
    """(text, word_ids, special, starts, ends, probabilities) for ``texts``, batched and padded
    as the reference tokenizer does, with its offsets and special-tokens mask."""
    batch = tokenizer(
        list(texts),
        padding=True,
        return_tensors="pt",
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    offsets = batch.pop("offset_mapping").numpy().astype(np.int32)
    special = batch.pop("special_tokens_mask").numpy().astype(bool)
    with torch.no_grad():
        probabilities = torch.softmax(model.eval()(**batch).logits, -1).numpy()
    return (
        tf.constant(list(texts)),
        tf.constant(batch["input_ids"].numpy(), tf.int32),
        tf.constant(special),
        tf.constant(offsets[:, :, 0]),
        tf.constant(offsets[:, :, 1]),
        tf.constant(probabilities),
    )
