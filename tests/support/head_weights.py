"""``assign_random_classifier``: random weights, in PyTorch's layout, for a one-layer head."""

from __future__ import annotations

from typing import Any

import numpy as np


def assign_random_classifier(
    head: Any, rng: np.random.Generator, *, num_labels: int, hidden_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Load a random ``weight`` [labels, hidden] (torch layout) and ``bias`` into ``head``'s
    one dense layer the way the checkpoint loader does; returns them for the expected math."""
    weight = rng.normal(size=(num_labels, hidden_size)).astype(np.float32)
    bias = rng.normal(size=(num_labels,)).astype(np.float32)
    for key, (variable, transpose) in head.checkpoint_variables().items():
        value = weight if key.endswith("weight") else bias
        variable.assign(value.T if transpose else value)
    return weight, bias
