"""The architecture hyper-parameters of a BERT-family encoder, read from a Hugging Face config."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

from models.errors import CheckpointError

#: Activations the encoder implements, keyed by the names Hugging Face configs use.
SUPPORTED_ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu")


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """Hyper-parameters of a BERT encoder (the subset of ``config.json`` that shapes weights).

    Example::

        config = BertConfig.from_json_file(checkpoint_dir / "config.json")
        encoder = BertEncoder(**config.encoder_kwargs())
    """

    #: ``config.json`` model_type values this class reads (subclasses: the other families).
    MODEL_TYPES: ClassVar[tuple[str, ...]] = ("bert",)

    vocab_size: int
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    architectures: tuple[str, ...] = ()
    id2label: tuple[str, ...] = ()
    problem_type: str | None = None

    def __post_init__(self) -> None:
        if self.hidden_act not in SUPPORTED_ACTIVATIONS:
            raise CheckpointError(
                f"hidden_act {self.hidden_act!r} is not supported "
                f"(supported: {', '.join(SUPPORTED_ACTIVATIONS)})"
            )
        if self.hidden_size % self.num_attention_heads:
            raise CheckpointError(
                f"hidden_size {self.hidden_size} is not a multiple of "
                f"num_attention_heads {self.num_attention_heads}"
            )

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BertConfig:
        model_type = raw.get("model_type", cls.MODEL_TYPES[0])
        if model_type not in cls.MODEL_TYPES:
            # Each family lays out weights and position ids its own way; loading one as another
            # would "work" with wrong numbers, which is exactly what this package refuses.
            raise CheckpointError(
                f"model_type {model_type!r} is not read by {cls.__name__} "
                f"(it reads {', '.join(cls.MODEL_TYPES)})"
            )
        raw = cls._bert_spelling(raw)
        if raw.get("position_embedding_type", "absolute") != "absolute":
            raise CheckpointError(
                f"position_embedding_type {raw['position_embedding_type']!r} is not supported"
            )
        id2label_raw = raw.get("id2label") or {}
        id2label = tuple(str(id2label_raw[k]) for k in sorted(id2label_raw, key=int))
        num_labels = raw.get("num_labels")
        if num_labels is not None and not id2label:
            id2label = tuple(f"LABEL_{i}" for i in range(int(num_labels)))
        try:
            return cls(
                vocab_size=int(raw["vocab_size"]),
                hidden_size=int(raw.get("hidden_size", 768)),
                num_hidden_layers=int(raw.get("num_hidden_layers", 12)),
                num_attention_heads=int(raw.get("num_attention_heads", 12)),
                intermediate_size=int(raw.get("intermediate_size", 3072)),
                hidden_act=str(raw.get("hidden_act", "gelu")),
                max_position_embeddings=int(raw.get("max_position_embeddings", 512)),
                type_vocab_size=int(raw.get("type_vocab_size", 2)),
                layer_norm_eps=float(raw.get("layer_norm_eps", 1e-12)),
                pad_token_id=int(raw.get("pad_token_id") or 0),
                architectures=tuple(raw.get("architectures") or ()),
                id2label=id2label,
                problem_type=raw.get("problem_type"),
                **cls._family_fields(raw),
            )
        except KeyError as exc:
            raise CheckpointError(f"config.json lacks {exc.args[0]!r}") from exc

    @classmethod
    def _bert_spelling(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """``raw`` with the family's own key names renamed to BERT's (DistilBERT's differ)."""
        return raw

    @classmethod
    def _family_fields(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """The subclass's own fields, read from ``raw``."""
        return {}

    @classmethod
    def from_json_file(cls, path: str | Path) -> BertConfig:
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"cannot read {path}: {exc}") from exc
        return cls.from_dict(raw)

    @property
    def max_sequence_length(self) -> int:
        """The most tokens one text may have: the position table's size, less the positions
        a family never uses (RoBERTa and MPNet count from the padding index + 1)."""
        return self.max_position_embeddings

    def encoder_kwargs(self, *, use_pooler: bool = True) -> dict[str, Any]:
        """Constructor arguments of :class:`models.bert.bert_encoder.BertEncoder`."""
        return {
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_hidden_layers,
            "num_heads": self.num_attention_heads,
            "intermediate_size": self.intermediate_size,
            "hidden_act": self.hidden_act,
            "max_position_embeddings": self.max_position_embeddings,
            "type_vocab_size": self.type_vocab_size,
            "layer_norm_epsilon": self.layer_norm_eps,
            "use_pooler": use_pooler,
        }
