"""A Hugging Face checkpoint directory, behind the same small interface as a TF one."""

from __future__ import annotations

from pathlib import Path


class HfCheckpoint:
    """A Hugging Face (or sentence-transformers) directory: used in place, nothing to convert.

    Example::

        with HfCheckpoint(path) as ckpt:
            loader = CheckpointLoader(ckpt.model_dir)
    """

    layout = "huggingface"

    def __init__(self, path: str | Path) -> None:
        self.source = Path(path).expanduser().absolute()
        self.model_dir = self.source

    def __enter__(self) -> HfCheckpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing was staged."""

    def check_task(self, task: str) -> None:
        """The strict loader checks a Hugging Face checkpoint's head weights by itself."""

    def card_fields(self) -> dict[str, str]:
        return {"layout": self.layout}
