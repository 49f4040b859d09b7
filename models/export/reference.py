"""Reference outputs from PyTorch transformers, the ground truth export verification compares to.

Imported lazily by the verifier and the tests only: serving never needs torch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models import contract

# Never reach for the model hub: every checkpoint is a local directory.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
# torch's OpenMP threads spin while idle, which starves TensorFlow running beside them in the
# same export (only effective when torch was not loaded yet).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


class TorchReference:
    """The Hugging Face tokenizer + PyTorch model a checkpoint was trained with.

    For the embedding task the sentence-transformers Pooling/Normalize modules are re-applied
    here in torch (``pooling_mode``, ``normalize``), so sentence-transformers itself is not needed.

    Example::

        ref = TorchReference(model_dir, task="embedding", max_seq_length=256,
                             pooling_mode="mean", normalize=True)
        ids = ref.token_ids(["hello world"])
        emb = ref.outputs(["hello world"])["embedding"]
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        task: str,
        max_seq_length: int,
        pooling_mode: str = "mean",
        normalize: bool = False,
    ) -> None:
        import torch
        import transformers

        self.task = task
        self.max_seq_length = max_seq_length
        self.pooling_mode = pooling_mode
        self.normalize = normalize
        self._torch = torch
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir))
        model_class = {
            contract.TASK_EMBEDDING: transformers.AutoModel,
            contract.TASK_CLASSIFICATION: transformers.AutoModelForSequenceClassification,
            contract.TASK_FILL_MASK: transformers.AutoModelForMaskedLM,
            contract.TASK_TOKEN_CLASSIFICATION: transformers.AutoModelForTokenClassification,
        }[task]
        self.model = model_class.from_pretrained(str(model_dir)).eval()

    def encode_batch(
        self, texts: Sequence[str], pairs: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """The reference tokenizer's torch tensors (padded to the longest text)."""
        return dict(
            self.tokenizer(
                list(texts),
                list(pairs) if pairs is not None else None,
                truncation=True,
                max_length=self.max_seq_length,
                padding=True,
                return_tensors="pt",
            )
        )

    def token_ids(
        self, texts: Sequence[str], pairs: Sequence[str] | None = None
    ) -> list[tuple[list[int], list[int]]]:
        """Per text: (input ids, token type ids), unpadded, specials included."""
        encoded = self.tokenizer(
            list(texts),
            list(pairs) if pairs is not None else None,
            truncation=True,
            max_length=self.max_seq_length,
        )
        # RoBERTa's, DistilBERT's and MPNet's tokenizers emit no type ids: their models see
        # segment 0 everywhere, which is what an exported tokenizer must then emit.
        types = encoded.get("token_type_ids") or [[0] * len(ids) for ids in encoded["input_ids"]]
        return [(list(i), list(t)) for i, t in zip(encoded["input_ids"], types, strict=True)]

    def outputs(
        self, texts: Sequence[str], pairs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """``embedding``; ``logits``; ``token_logits`` [batch, seq, labels] and the mask; or
        ``mlm_logits`` [batch, seq, vocab] and the inputs."""
        torch = self._torch
        batch = self.encode_batch(texts, pairs)
        with torch.inference_mode():
            result = self.model(**batch)
        if self.task == contract.TASK_CLASSIFICATION:
            return {contract.LOGITS: result.logits.numpy()}
        if self.task == contract.TASK_TOKEN_CLASSIFICATION:
            return {
                contract.TOKEN_LOGITS: result.logits.numpy(),
                contract.INPUT_MASK: batch["attention_mask"].numpy(),
            }
        if self.task == contract.TASK_FILL_MASK:
            return {
                contract.MLM_LOGITS: result.logits.numpy(),
                contract.INPUT_WORD_IDS: batch["input_ids"].numpy(),
                contract.INPUT_MASK: batch["attention_mask"].numpy(),
                contract.INPUT_TYPE_IDS: batch.get(
                    "token_type_ids", torch.zeros_like(batch["input_ids"])
                ).numpy(),
            }
        hidden = result.last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        if self.pooling_mode == "cls":
            pooled = hidden[:, 0]
        elif self.pooling_mode == "max":
            pooled = torch.where(mask > 0, hidden, torch.full_like(hidden, -1e9)).max(dim=1).values
        else:
            pooled = (hidden * mask).sum(1) / torch.clamp(mask.sum(1), min=1e-9)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return {contract.EMBEDDING: pooled.numpy()}
