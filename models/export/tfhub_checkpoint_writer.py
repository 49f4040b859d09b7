"""Write a fine-tuned TF Hub encoder (+ classifier) back as a Hugging Face checkpoint directory.

``textserve-export`` then exports it end-to-end with its strict loader (every weight must be
used) and verifies it against PyTorch, so a fine-tuned model is served exactly like any other.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models import contract
from models.errors import ExportConfigError

# Tokenizer files travel with the checkpoint: the export derives its in-graph tokenizer from them.
_TOKENIZER_FILES = (
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "merges.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
)


class TfHubCheckpointWriter:
    """Writes ``config.json``, ``model.safetensors`` (Hugging Face key names) and the source's
    tokenizer files for a ``*ForSequenceClassification`` model.

    Example::

        writer = TfHubCheckpointWriter(source_checkpoint="bert-dir")
        writer.write_classifier(encoder=layer.saved_model, kernel=dense.kernel.numpy(),
                                bias=dense.bias.numpy(), labels=["no", "yes"],
                                output="finetuned")
    """

    def __init__(self, *, source_checkpoint: str | os.PathLike[str]) -> None:
        from models.loading.checkpoint_loader import CheckpointLoader

        # The loader resolves sentence-transformers layouts to the directory with config.json.
        self.model_dir = CheckpointLoader(os.fspath(source_checkpoint)).model_dir

    def write_classifier(
        self,
        *,
        encoder: Any,
        kernel: np.ndarray,
        bias: np.ndarray,
        labels: Sequence[str],
        output: str | os.PathLike[str],
    ) -> Path:
        """``encoder``: a loaded TF Hub encoder export (its current variable values are
        written); ``kernel`` ``[hidden, labels]`` and ``bias`` ``[labels]``: a Dense head on
        ``pooled_output``, which is BertForSequenceClassification's layout."""
        from safetensors.numpy import save_file

        config = json.loads((self.model_dir / "config.json").read_text(encoding="utf-8"))
        if config.get("model_type", "bert") != "bert":
            # Other families' classifiers are laid out differently (RoBERTa: dense + out_proj
            # on the first token); only BERT's is written here.
            raise ExportConfigError(
                f"writing a fine-tuned classifier back supports BERT checkpoints only, not "
                f"model_type {config['model_type']!r}"
            )
        state = self._encoder_state(encoder)
        if "bert.pooler.dense.weight" not in state:
            raise ExportConfigError(
                "the encoder has no pooler, which BertForSequenceClassification applies before "
                "its classifier; export a checkpoint with pooler weights"
            )
        if kernel.shape != (state["bert.pooler.dense.weight"].shape[0], len(labels)):
            raise ExportConfigError(
                f"classifier kernel {kernel.shape} does not map the hidden size to "
                f"{len(labels)} labels"
            )
        state["classifier.weight"] = np.ascontiguousarray(kernel.T, np.float32)
        state["classifier.bias"] = np.ascontiguousarray(bias, np.float32)
        config["architectures"] = ["BertForSequenceClassification"]
        config["id2label"] = {str(i): label for i, label in enumerate(labels)}
        config["label2id"] = {label: i for i, label in enumerate(labels)}
        config.pop("problem_type", None)
        out = Path(output)
        out.mkdir(parents=True, exist_ok=True)
        save_file(state, str(out / "model.safetensors"))
        (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        for name in _TOKENIZER_FILES:
            if (self.model_dir / name).is_file():
                shutil.copy(self.model_dir / name, out / name)
        return out

    @staticmethod
    def _encoder_state(encoder: Any) -> dict[str, np.ndarray]:
        keys = getattr(encoder, contract.ATTR_CHECKPOINT_KEYS)()
        variables = getattr(encoder, contract.ATTR_VARIABLES)
        state = {}
        for key, transposed, variable in zip(
            keys["keys"].numpy(), keys["transposed"].numpy(), variables, strict=True
        ):
            name = key.decode()
            if name.startswith("cls."):
                continue  # the MLM head of an encoder-with-mlm export: not part of a classifier
            value = variable.numpy()
            state[f"bert.{name}"] = np.ascontiguousarray(value.T if transposed else value)
        return state
