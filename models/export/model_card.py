"""The model card of an end-to-end export (``assets.extra/textserve_model.json``): what the
server reads to describe a version (task, dimensions, labels, buckets) and where it came from."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from models import contract
from models.export.model_assembly import LABELLED_TASKS, sigmoid_probabilities

if TYPE_CHECKING:
    from models.export.end_to_end_verification import VerificationSummary
    from models.export.text_model import TextModel
    from models.loading.checkpoint_loader import CheckpointLoader, LoadReport


class ModelCardSource(TypedDict):
    """The card's ``source``: the checkpoint and what loading it did."""

    checkpoint: str
    weights_file: str
    architectures: list[str]
    num_layers: int
    hidden_size: int
    weights_loaded: int
    unexpected_keys_allowed: list[str]
    decoder_tied_to_word_embeddings: bool
    pooler_in_checkpoint: bool
    #: How the checkpoint was laid out (Hugging Face, sentence-transformers, TF1/TF2).
    layout: str


class ModelCard(TypedDict):
    """The JSON document written to :data:`models.contract.MODEL_CARD_FILE`."""

    task: str
    output_dim: int
    embedding_dim: int | None
    pooling_mode: str | None
    normalize: bool | None
    prompts: dict[str, str]
    default_prompt_name: str | None
    labels: list[str]
    multi_label: bool
    top_k: int | None
    max_seq_length: int
    length_buckets: list[int]
    padding: str
    # The encoder computes the batch's real tokens only (packed): a batch costs its tokens, not
    # rows x its longest text, so a server need not group texts by length.
    skips_padding: bool
    do_lower_case: bool
    vocab_size: int
    signatures: list[str]
    jit_compile_encoder: bool
    #: The transformer layers' weights and matmuls (contract.PRECISIONS); outputs are float32.
    precision: str
    source: ModelCardSource
    versions: dict[str, str]
    tf_text_ops: dict[str, str]
    op_count: int
    verification: VerificationSummary | None


def build_model_card(
    *,
    loader: CheckpointLoader,
    checkpoint_fields: Mapping[str, str],
    model: TextModel,
    task: str,
    load_report: LoadReport,
    tf_text_ops: dict[str, str],
    ops: Sequence[str],
    verification: VerificationSummary | None,
    jit_compile: bool,
    precision: str = contract.PRECISION_FLOAT32,
) -> ModelCard:
    """The card of ``model`` built from ``loader``; ``checkpoint_fields`` (the opened
    checkpoint's ``card_fields()``: its layout, and for a converted TF checkpoint the original
    path and prefix) override the loader's view of the source."""
    import tensorflow as tf
    import tensorflow_text

    config = loader.config
    embedding = task == contract.TASK_EMBEDDING
    if embedding:
        output_dim = config.hidden_size
    elif task in LABELLED_TASKS:
        output_dim = len(config.id2label)
    else:
        output_dim = config.vocab_size
    signatures = [
        contract.SERVING_DEFAULT,
        contract.SERVING_PAIR,
        contract.PREPROCESS,
        contract.ENCODE,
    ] + ([contract.MLM] if task == contract.TASK_FILL_MASK else [])
    return {
        "task": task,
        "output_dim": output_dim,
        "embedding_dim": config.hidden_size if embedding else None,
        "pooling_mode": loader.pooling_mode if embedding else None,
        "normalize": loader.normalize if embedding else None,
        "prompts": dict(model.prompts),
        "default_prompt_name": model.default_prompt_name,
        "labels": list(model.id2label),
        "multi_label": sigmoid_probabilities(config),
        "top_k": model.top_k if task == contract.TASK_FILL_MASK else None,
        "max_seq_length": model.tokenizer.max_seq_length,
        "length_buckets": list(model.tokenizer.length_buckets),
        "padding": "longest" if model.tokenizer.pad_to_longest else "bucket",
        "skips_padding": model.encoder.skip_padding,
        "do_lower_case": bool(model.tokenizer.do_lower_case),
        "vocab_size": model.tokenizer.vocab_size,
        "signatures": signatures,
        "jit_compile_encoder": jit_compile,
        "precision": precision,
        "source": {
            "checkpoint": checkpoint_fields.get("checkpoint", str(loader.checkpoint_dir)),
            "weights_file": checkpoint_fields.get("weights_file", str(loader.weights_file)),
            "architectures": list(config.architectures),
            "num_layers": config.num_hidden_layers,
            "hidden_size": config.hidden_size,
            "weights_loaded": load_report.num_loaded,
            "unexpected_keys_allowed": list(load_report.unexpected_allowed),
            "decoder_tied_to_word_embeddings": load_report.tied_decoder,
            "pooler_in_checkpoint": loader.has_pooler,
            "layout": checkpoint_fields["layout"],
        },
        "versions": {
            "textserve": package_version("textserve"),
            "tensorflow": tf.__version__,
            "tensorflow_text": tensorflow_text.__version__,
            "python": sys.version.split()[0],
        },
        "tf_text_ops": tf_text_ops,
        "op_count": len(ops),
        "verification": verification,
    }


def write_model_card(version_dir: Path, card: Mapping[str, object]) -> None:
    """Write ``card`` as :data:`models.contract.MODEL_CARD_FILE` of ``version_dir`` (every
    export type has one: the server reads the end-to-end card, people read the TF Hub one)."""
    path = version_dir / contract.MODEL_CARD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def package_version(package: str) -> str:
    """``package``'s installed version, or ``unknown`` (a source checkout)."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"
