"""TF Hub exports of tiny checkpoints, made once per test session and shared by the test modules
that read them (exports are only read: loading a SavedModel never writes to it)."""

from __future__ import annotations

from pathlib import Path

_EXPORTS: dict[tuple[Path, str], Path] = {}


def tfhub_export(*, checkpoint: Path, export_type: str, root: Path) -> Path:
    """``BASE/1`` holding ``export_type`` of ``checkpoint`` (verified), exported on first use."""
    from models.export.exporter import export_model

    key = (checkpoint, export_type)
    if key not in _EXPORTS:
        output = root / f"tfhub-{checkpoint.name}-{export_type}" / "1"
        export_model(checkpoint=checkpoint, output=output, export_type=export_type, progress=False)
        _EXPORTS[key] = output
    return _EXPORTS[key]
