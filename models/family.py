"""The BERT-family registry: ``config.json`` model_type -> config, encoder and head layout.

A :class:`Family` says everything the loader and exporter need to know about one family:
which config and encoder classes read it, the prefix its task classes put before the encoder's
keys, how its classification and fill-mask heads are shaped and named, and which heads of
tasks nothing exports (pre-training heads) a checkpoint may carry. The heads emit BERT's
(or, for the two-layer classifier, RoBERTa's) key names; ``*_renames`` spell them the
family's way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from models import contract
from models.albert.albert_config import AlbertConfig
from models.albert.albert_encoder import AlbertEncoder
from models.bert.bert_config import BertConfig
from models.bert.bert_encoder import BertEncoder
from models.distilbert.distilbert_config import DistilBertConfig
from models.distilbert.distilbert_encoder import DistilBertEncoder
from models.electra.electra_config import ElectraConfig
from models.electra.electra_encoder import ElectraEncoder
from models.errors import CheckpointError
from models.mpnet.mpnet_config import MPNetConfig
from models.mpnet.mpnet_encoder import MPNetEncoder
from models.roberta.roberta_config import RobertaConfig
from models.roberta.roberta_encoder import RobertaEncoder

_BERT_MLM = {
    "transform": "cls.predictions.transform.dense.",
    "layer_norm": "cls.predictions.transform.LayerNorm.",
    "bias": "cls.predictions.bias",
    "decoder": "cls.predictions.decoder.weight",
}


def _mlm_renames(*, transform: str, layer_norm: str, bias: str, decoder: str) -> dict[str, str]:
    return {
        _BERT_MLM["transform"]: transform,
        _BERT_MLM["layer_norm"]: layer_norm,
        _BERT_MLM["bias"]: bias,
        _BERT_MLM["decoder"]: decoder,
    }


@dataclasses.dataclass(frozen=True)
class Family:
    """One BERT-family architecture as its Hugging Face checkpoints lay it out.

    Example::

        family = Family.for_model_type("roberta")
        config = family.config_class.from_dict(raw_config)
        encoder = family.encoder_class(**config.encoder_kwargs(use_pooler=False))
    """

    name: str
    config_class: type[BertConfig]
    encoder_class: type[BertEncoder]
    #: base_model_prefix of the family's task classes (``roberta.`` for RobertaForMaskedLM).
    checkpoint_prefix: str
    #: Key of the pooler's weight, if the family has one.
    pooler_key: str | None
    #: None: BERT's pooler + one ``classifier``; else dense + this activation + out_proj on
    #: the first token (the encoder is then built without a pooler).
    classifier_activation: str | None
    #: Activation of the fill-mask transform; None means the config's hidden_act.
    mlm_activation: str | None
    #: Whether the fill-mask transform narrows to the config's embedding_size.
    mlm_to_embedding_size: bool = False
    classifier_renames: Mapping[str, str] = dataclasses.field(default_factory=dict)
    mlm_renames: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: Checkpoint keys that are another spelling of a canonical key (tied biases).
    aliases: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: Prefixes of heads no export serves (pre-training objectives) that checkpoints carry.
    unexported_heads: tuple[str, ...] = ()
    #: Whether ``*ForPreTraining`` holds this family's fill-mask head (BERT's does).
    pretraining_is_fill_mask: bool = False

    @staticmethod
    def for_model_type(model_type: str) -> Family:
        """The family of a ``config.json`` model_type; one-line CheckpointError if unknown."""
        family = FAMILIES.get(model_type)
        if family is None:
            raise CheckpointError(
                f"model_type {model_type!r} is not supported "
                f"(supported: {', '.join(sorted(FAMILIES))})"
            )
        return family

    def rename(self, variables: Mapping[str, Any], renames: Mapping[str, str]) -> dict[str, Any]:
        """``variables`` with each key's longest matching prefix in ``renames`` replaced."""
        ordered = sorted(renames, key=len, reverse=True)
        renamed = {}
        for key, value in variables.items():
            prefix = next((p for p in ordered if key.startswith(p)), None)
            renamed[key if prefix is None else renames[prefix] + key[len(prefix) :]] = value
        return renamed

    @property
    def mlm_decoder_key(self) -> str:
        return self.mlm_renames.get(_BERT_MLM["decoder"], _BERT_MLM["decoder"])

    @property
    def mlm_transform_key(self) -> str:
        prefix = self.mlm_renames.get(_BERT_MLM["transform"], _BERT_MLM["transform"])
        return f"{prefix}weight"

    def head_prefixes(self, task: str) -> tuple[str, ...]:
        """Key prefixes of ``task``'s head in this family's checkpoints."""
        if task == contract.TASK_FILL_MASK:
            return tuple(self.mlm_renames.get(k, k) for k in _BERT_MLM.values())
        if task == contract.TASK_CLASSIFICATION:
            return ("classifier.", *self.classifier_renames.values())
        if task == contract.TASK_TOKEN_CLASSIFICATION:
            return ("classifier.",)
        return ()

    def default_task(self, architectures: tuple[str, ...]) -> str:
        """The task a checkpoint's ``architectures`` name; refuses the ones nothing exports."""
        for arch in architectures:
            if arch.endswith("ForSequenceClassification"):
                return contract.TASK_CLASSIFICATION
            if arch.endswith("ForTokenClassification"):
                return contract.TASK_TOKEN_CLASSIFICATION
            if arch.endswith("ForMaskedLM") or (
                arch.endswith("ForPreTraining") and self.pretraining_is_fill_mask
            ):
                return contract.TASK_FILL_MASK
            if arch == f"{self.name}Model":
                return contract.TASK_EMBEDDING
            raise CheckpointError(
                f"{arch} is not exportable (supported: {self.name}Model -> embedding, "
                "*ForSequenceClassification, *ForTokenClassification, *ForMaskedLM); pass a task "
                "explicitly to export its encoder with another head"
            )
        return contract.TASK_EMBEDDING


# RoBERTa's task heads: dense + tanh + out_proj on the first token; fill-mask as lm_head.*.
_ROBERTA = Family(
    name="Roberta",
    config_class=RobertaConfig,
    encoder_class=RobertaEncoder,
    checkpoint_prefix="roberta.",
    pooler_key="pooler.dense.weight",
    classifier_activation="tanh",
    mlm_activation="gelu",
    mlm_renames=_mlm_renames(
        transform="lm_head.dense.",
        layer_norm="lm_head.layer_norm.",
        bias="lm_head.bias",
        decoder="lm_head.decoder.weight",
    ),
    aliases={"lm_head.decoder.bias": "lm_head.bias"},
)

FAMILIES: dict[str, Family] = {
    "bert": Family(
        name="Bert",
        config_class=BertConfig,
        encoder_class=BertEncoder,
        checkpoint_prefix="bert.",
        pooler_key="pooler.dense.weight",
        classifier_activation=None,
        mlm_activation=None,
        aliases={"cls.predictions.decoder.bias": "cls.predictions.bias"},
        unexported_heads=("cls.seq_relationship.",),
        pretraining_is_fill_mask=True,
    ),
    "distilbert": Family(
        name="DistilBert",
        config_class=DistilBertConfig,
        encoder_class=DistilBertEncoder,
        checkpoint_prefix="distilbert.",
        pooler_key=None,
        classifier_activation="relu",
        mlm_activation=None,
        classifier_renames={
            "classifier.dense.": "pre_classifier.",
            "classifier.out_proj.": "classifier.",
        },
        mlm_renames=_mlm_renames(
            transform="vocab_transform.",
            layer_norm="vocab_layer_norm.",
            bias="vocab_projector.bias",
            decoder="vocab_projector.weight",
        ),
    ),
    "electra": Family(
        name="Electra",
        config_class=ElectraConfig,
        encoder_class=ElectraEncoder,
        checkpoint_prefix="electra.",
        pooler_key=None,
        classifier_activation="gelu",
        mlm_activation="gelu",
        mlm_to_embedding_size=True,
        mlm_renames=_mlm_renames(
            transform="generator_predictions.dense.",
            layer_norm="generator_predictions.LayerNorm.",
            bias="generator_lm_head.bias",
            decoder="generator_lm_head.weight",
        ),
        unexported_heads=("discriminator_predictions.",),
    ),
    "albert": Family(
        name="Albert",
        config_class=AlbertConfig,
        encoder_class=AlbertEncoder,
        checkpoint_prefix="albert.",
        pooler_key="pooler.weight",
        classifier_activation=None,
        mlm_activation=None,
        mlm_to_embedding_size=True,
        mlm_renames=_mlm_renames(
            transform="predictions.dense.",
            layer_norm="predictions.LayerNorm.",
            bias="predictions.bias",
            decoder="predictions.decoder.weight",
        ),
        aliases={"predictions.decoder.bias": "predictions.bias"},
        unexported_heads=("sop_classifier.",),
    ),
    # MPNet's task heads are RoBERTa's, key for key; only its encoder differs.
    "mpnet": dataclasses.replace(
        _ROBERTA,
        name="MPNet",
        config_class=MPNetConfig,
        encoder_class=MPNetEncoder,
        checkpoint_prefix="mpnet.",
    ),
    "roberta": _ROBERTA,
    # XLM-RoBERTa is RoBERTa's architecture under RoBERTa's key prefix.
    "xlm-roberta": dataclasses.replace(_ROBERTA, name="XLMRoberta"),
}
