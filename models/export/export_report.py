"""``ExportReport``: what one export produced (every export type returns one)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from models import contract


@dataclasses.dataclass(frozen=True)
class ExportReport:
    """What :func:`models.export.exporter.export_model` produced."""

    output: Path
    checkpoint: Path
    task: str
    max_seq_length: int
    length_buckets: tuple[int, ...]
    output_dim: int
    labels: tuple[str, ...]
    weights_loaded: int
    unexpected_keys_allowed: tuple[str, ...]
    tied_decoder: bool
    warmup_records: int
    verified: bool
    max_abs_diff: float | None
    tf_text_ops: dict[str, str]
    seconds: float
    export_type: str = contract.EXPORT_END_TO_END
    precision: str = contract.PRECISION_FLOAT32
