"""TensorFlow BERT checkpoints (Google's TF1 release, TF Model Garden TF2) as Hugging Face ones.

A TF checkpoint is read with ``tf.train.load_checkpoint`` (no torch), every variable is mapped by
name to its Hugging Face key (transposes, gamma/beta, reshaped attention kernels), and the
result is written to a staging directory in the Hugging Face layout (``config.json`` with
``model_type`` bert, ``model.safetensors``, tokenizer files from ``vocab.txt``). The exporter
then loads that directory like any other checkpoint: the same strict loader, the same export,
and a PyTorch reference built from the same weights.

The name maps are strict: a weight the architecture needs and the checkpoint lacks, or a
checkpoint weight no exported model would read, is refused with its TF name. What is never
refused: optimizer state (TF1 ``*/adam_m``, ``*/adam_v``; TF2 ``optimizer/...`` and slot
variables), step counters (``global_step``, ``save_counter``), and the next-sentence-prediction
head (TF1 ``cls/seq_relationship/*``, Model Garden ``next_sentence*``), which no served task
reads: it only exists for pretraining.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from models import contract
from models.errors import CheckpointError, Keyword, MissingWeightsError, ShapeMismatchError

LAYOUT_TF1 = "tf1"
LAYOUT_MODEL_GARDEN = "model_garden"
CONFIG_FILE = "bert_config.json"
VOCAB_FILE = "vocab.txt"

# Google's tokenization.validate_case_matches_checkpoint knows the case of its releases by
# their directory names; the same rule, written as prefixes so L-2 ... L-24 sizes all match.
_UNCASED_NAMES = re.compile(r"^(uncased|wwm_uncased|multilingual|chinese)_L-\d+_H-\d+_A-\d+$")
_CASED_NAMES = re.compile(r"^(cased|wwm_cased|multi_cased)_L-\d+_H-\d+_A-\d+$")

_TF1_HARMLESS = re.compile(r"(^global_step$|/adam_[mv]$)")
_TF2_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
_TF2_HARMLESS = re.compile(
    r"(^_CHECKPOINTABLE_OBJECT_GRAPH$|^save_counter/|^global_step/|^optimizer/|/.OPTIMIZER_SLOT/"
    r"|^next_sentence|^model/next_sentence|^model/classification/)"
)
# Roots a Model Garden checkpoint keeps the encoder under: BertPretrainerV2.checkpoint_items
# names it ``encoder`` (official/nlp/modeling/models/bert_pretrainer.py); older trainers saved
# ``tf.train.Checkpoint(model=...)``. The MLM head sits beside it as ``masked_lm``.
_MODEL_GARDEN_ROOTS = (("encoder/", "masked_lm/"), ("model/", "model/masked_lm/"))

# (TF array, config) -> Hugging Face array
_Transform = Callable[[np.ndarray, Mapping[str, Any]], np.ndarray]


def _same(value: np.ndarray, config: Mapping[str, Any]) -> np.ndarray:
    return value


def _transpose(value: np.ndarray, config: Mapping[str, Any]) -> np.ndarray:
    return value.T


def _heads_in(value: np.ndarray, config: Mapping[str, Any]) -> np.ndarray:
    # Model Garden's EinsumDense query/key/value kernel is [hidden, heads, head_dim].
    hidden = int(config["hidden_size"])
    return value.reshape(hidden, -1).T


def _heads_bias(value: np.ndarray, config: Mapping[str, Any]) -> np.ndarray:
    return value.reshape(-1)


def _heads_out(value: np.ndarray, config: Mapping[str, Any]) -> np.ndarray:
    # ... and the attention output kernel is [heads, head_dim, hidden].
    hidden = int(config["hidden_size"])
    return value.reshape(-1, hidden).T


class _NameMap:
    """TF name -> (Hugging Face key, transform), grouped into what is required and optional."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[str, _Transform]] = {}
        self.groups: dict[str, list[str]] = {}

    def add(self, group: str, tf_name: str, hf_key: str, transform: _Transform) -> None:
        self.entries[tf_name] = (hf_key, transform)
        self.groups.setdefault(group, []).append(tf_name)


def _tf1_names(config: Mapping[str, Any]) -> _NameMap:
    names = _NameMap()

    def dense(group: str, tf_prefix: str, hf_prefix: str) -> None:
        names.add(group, f"{tf_prefix}/kernel", f"{hf_prefix}.weight", _transpose)
        names.add(group, f"{tf_prefix}/bias", f"{hf_prefix}.bias", _same)

    def norm(group: str, tf_prefix: str, hf_prefix: str) -> None:
        names.add(group, f"{tf_prefix}/gamma", f"{hf_prefix}.weight", _same)
        names.add(group, f"{tf_prefix}/beta", f"{hf_prefix}.bias", _same)

    for table in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        names.add("encoder", f"bert/embeddings/{table}", f"bert.embeddings.{table}.weight", _same)
    norm("encoder", "bert/embeddings/LayerNorm", "bert.embeddings.LayerNorm")
    for i in range(int(config["num_hidden_layers"])):
        tf_layer, hf_layer = f"bert/encoder/layer_{i}", f"bert.encoder.layer.{i}"
        for part in ("query", "key", "value"):
            dense(
                "encoder",
                f"{tf_layer}/attention/self/{part}",
                f"{hf_layer}.attention.self.{part}",
            )
        dense("encoder", f"{tf_layer}/attention/output/dense", f"{hf_layer}.attention.output.dense")
        norm(
            "encoder",
            f"{tf_layer}/attention/output/LayerNorm",
            f"{hf_layer}.attention.output.LayerNorm",
        )
        dense("encoder", f"{tf_layer}/intermediate/dense", f"{hf_layer}.intermediate.dense")
        dense("encoder", f"{tf_layer}/output/dense", f"{hf_layer}.output.dense")
        norm("encoder", f"{tf_layer}/output/LayerNorm", f"{hf_layer}.output.LayerNorm")
    dense("pooler", "bert/pooler/dense", "bert.pooler.dense")
    dense("mlm", "cls/predictions/transform/dense", "cls.predictions.transform.dense")
    norm("mlm", "cls/predictions/transform/LayerNorm", "cls.predictions.transform.LayerNorm")
    names.add("mlm", "cls/predictions/output_bias", "cls.predictions.bias", _same)
    # TF1's NSP weights are [2, hidden] already (it multiplies with transpose_b=True).
    names.add("nsp", "cls/seq_relationship/output_weights", "cls.seq_relationship.weight", _same)
    names.add("nsp", "cls/seq_relationship/output_bias", "cls.seq_relationship.bias", _same)
    return names


def _model_garden_names(config: Mapping[str, Any], root: str, mlm_root: str) -> _NameMap:
    """Keys of official/nlp/modeling/networks/bert_encoder.py's functional encoder: Keras names
    the layers that hold weights ``layer_with_weights-N`` in creation order (word, position,
    type embeddings, embedding LayerNorm, the transformer blocks, the pooler)."""
    names = _NameMap()
    layers = int(config["num_hidden_layers"])

    def var(path: str) -> str:
        return path + _TF2_SUFFIX

    def layer(n: int) -> str:
        return f"{root}layer_with_weights-{n}"

    def norm(group: str, tf_prefix: str, hf_prefix: str) -> None:
        names.add(group, var(f"{tf_prefix}/gamma"), f"{hf_prefix}.weight", _same)
        names.add(group, var(f"{tf_prefix}/beta"), f"{hf_prefix}.bias", _same)

    def dense(
        group: str, tf_prefix: str, hf_prefix: str, kernel: _Transform, bias: _Transform
    ) -> None:
        names.add(group, var(f"{tf_prefix}/kernel"), f"{hf_prefix}.weight", kernel)
        names.add(group, var(f"{tf_prefix}/bias"), f"{hf_prefix}.bias", bias)

    for n, table in enumerate(("word_embeddings", "position_embeddings", "token_type_embeddings")):
        names.add(
            "encoder", var(f"{layer(n)}/embeddings"), f"bert.embeddings.{table}.weight", _same
        )
    norm("encoder", layer(3), "bert.embeddings.LayerNorm")
    for i in range(layers):
        # official/nlp/modeling/layers/transformer_encoder_block.py's attribute names.
        block, hf_layer = layer(4 + i), f"bert.encoder.layer.{i}"
        attention = f"{block}/_attention_layer"
        for part in ("query", "key", "value"):
            dense(
                "encoder",
                f"{attention}/_{part}_dense",
                f"{hf_layer}.attention.self.{part}",
                _heads_in,
                _heads_bias,
            )
        dense(
            "encoder",
            f"{attention}/_output_dense",
            f"{hf_layer}.attention.output.dense",
            _heads_out,
            _same,
        )
        norm("encoder", f"{block}/_attention_layer_norm", f"{hf_layer}.attention.output.LayerNorm")
        dense(
            "encoder",
            f"{block}/_intermediate_dense",
            f"{hf_layer}.intermediate.dense",
            _transpose,
            _same,
        )
        dense("encoder", f"{block}/_output_dense", f"{hf_layer}.output.dense", _transpose, _same)
        norm("encoder", f"{block}/_output_layer_norm", f"{hf_layer}.output.LayerNorm")
    dense("pooler", layer(4 + layers), "bert.pooler.dense", _transpose, _same)
    # official/nlp/modeling/layers/masked_lm.py: attributes dense, layer_norm and a weight
    # named "output_bias/bias" (object checkpoints escape "/" in a name as ".S").
    dense("mlm", f"{mlm_root}dense", "cls.predictions.transform.dense", _transpose, _same)
    norm("mlm", f"{mlm_root}layer_norm", "cls.predictions.transform.LayerNorm")
    names.add("mlm", var(f"{mlm_root}output_bias.Sbias"), "cls.predictions.bias", _same)
    return names


class TfCheckpoint:
    """A TF1 or Model Garden BERT checkpoint, converted to a Hugging Face staging directory.

    Use as a context manager (the staging directory is removed on exit)::

        with TfCheckpoint(path, do_lower_case=True) as ckpt:
            loader = CheckpointLoader(ckpt.model_dir)
            ckpt.check_task("fill-mask")

    ``path`` is the checkpoint directory (holding ``bert_config.json``, ``vocab.txt`` and one
    checkpoint) or a checkpoint prefix such as ``dir/bert_model.ckpt``. ``do_lower_case``
    decides the tokenizer's lowercasing; ``None`` infers it from Google's release directory
    names (``uncased_L-12_H-768_A-12`` ...) and refuses when that says nothing.
    """

    def __init__(self, path: str | Path, *, do_lower_case: bool | None = None) -> None:
        self.source = Path(path).expanduser().absolute()
        prefix = find_checkpoint_prefix(self.source)
        if prefix is None:
            raise CheckpointError(f"no TensorFlow checkpoint (*.index) found at {self.source}")
        self.prefix: str = prefix
        self.directory = Path(self.prefix).parent
        self.config = self._read_config()
        self.do_lower_case = self._lower_case(do_lower_case)
        self.layout, self.names, self.present = self._read_names()
        self.model_dir = Path(tempfile.mkdtemp(prefix="textserve-tf-checkpoint-"))
        try:
            self._stage()
        except BaseException:
            self.close()
            raise

    # --- context manager ----------------------------------------------------------------------
    def __enter__(self) -> TfCheckpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        shutil.rmtree(self.model_dir, ignore_errors=True)

    # --- reading ------------------------------------------------------------------------------
    def _read_config(self) -> dict[str, Any]:
        path = self.directory / CONFIG_FILE
        if not path.is_file():
            raise CheckpointError(
                f"{CONFIG_FILE} not found beside the TF checkpoint in {self.directory}"
            )
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"cannot read {path}: {exc}") from exc
        if not isinstance(config, dict) or "vocab_size" not in config:
            raise CheckpointError(f"{path} is not a BERT config (no vocab_size)")
        embedding_size = config.get("embedding_size", config.get("hidden_size"))
        if embedding_size != config.get("hidden_size"):
            raise CheckpointError(
                f"{path}: embedding_size {embedding_size} != hidden_size (ALBERT-style factorized"
                " embeddings are not supported)"
            )
        return config

    def _lower_case(self, requested: bool | None) -> bool:
        name = self.directory.name
        known = True if _UNCASED_NAMES.match(name) else False if _CASED_NAMES.match(name) else None
        if requested is None:
            if known is None:
                raise CheckpointError(
                    f"cannot tell whether {self.directory} is a cased or uncased model: pass ",
                    Keyword("do_lower_case"),
                    " true|false (what the checkpoint was trained with)",
                )
            return known
        if known is not None and known != requested:
            raise CheckpointError(
                Keyword("do_lower_case"),
                f" {str(requested).lower()} contradicts the checkpoint directory name {name!r} "
                f"(Google's {'uncased' if known else 'cased'} release)",
            )
        return requested

    def _read_names(self) -> tuple[str, _NameMap, dict[str, tuple[int, ...]]]:
        import tensorflow as tf

        try:
            reader = tf.train.load_checkpoint(self.prefix)
        except (tf.errors.OpError, ValueError) as exc:
            raise CheckpointError(f"cannot read TF checkpoint {self.prefix}: {exc}") from exc
        self._reader = reader
        present = {k: tuple(v) for k, v in reader.get_variable_to_shape_map().items()}
        if any(key.endswith(_TF2_SUFFIX) for key in present):
            for root, mlm_root in _MODEL_GARDEN_ROOTS:
                if f"{root}layer_with_weights-0/embeddings{_TF2_SUFFIX}" in present:
                    return (
                        LAYOUT_MODEL_GARDEN,
                        _model_garden_names(self.config, root, mlm_root),
                        present,
                    )
            raise CheckpointError(
                f"{self.prefix} is an object-based (TF2) checkpoint without a Model Garden BERT "
                "encoder (no encoder/layer_with_weights-0/embeddings or model/...): "
                f"{', '.join(sorted(present)[:8])}"
            )
        if "bert/embeddings/word_embeddings" in present:
            return LAYOUT_TF1, _tf1_names(self.config), present
        raise CheckpointError(
            f"{self.prefix} is neither a Google TF1 BERT checkpoint (no "
            f"bert/embeddings/word_embeddings) nor a Model Garden one: "
            f"{', '.join(sorted(present)[:8])}"
        )

    def _harmless(self, key: str) -> bool:
        pattern = _TF1_HARMLESS if self.layout == LAYOUT_TF1 else _TF2_HARMLESS
        return bool(pattern.search(key))

    # --- converting ---------------------------------------------------------------------------
    def _stage(self) -> None:
        from safetensors.numpy import save_file

        unused = sorted(
            k for k in self.present if k not in self.names.entries and not self._harmless(k)
        )
        if unused:
            raise CheckpointError(
                f"{self.prefix}: checkpoint weights no exported model would read: "
                f"{', '.join(unused[:20])}"
                + (f" (+{len(unused) - 20} more)" if len(unused) > 20 else "")
            )
        missing = [k for k in self.names.groups["encoder"] if k not in self.present]
        if missing:
            raise MissingWeightsError(missing, context=str(self.prefix))
        for group in ("pooler", "nsp"):
            found = [k for k in self.names.groups.get(group, []) if k in self.present]
            lacking = [k for k in self.names.groups.get(group, []) if k not in self.present]
            if found and lacking:
                raise MissingWeightsError(lacking, context=f"{self.prefix} ({group} head)")
        tensors: dict[str, np.ndarray] = {}
        for tf_name, (hf_key, transform) in self.names.entries.items():
            if tf_name not in self.present:
                continue
            value = np.asarray(self._reader.get_tensor(tf_name), dtype=np.float32)
            try:
                tensors[hf_key] = np.ascontiguousarray(transform(value, self.config))
            except ValueError as exc:
                raise ShapeMismatchError(tf_name, value.shape, ()) from exc
        has_mlm = "cls.predictions.transform.dense.weight" in tensors
        has_nsp = "cls.seq_relationship.weight" in tensors
        architecture = (
            "BertForPreTraining"
            if has_mlm and has_nsp
            else "BertForMaskedLM"
            if has_mlm
            else "BertModel"
        )
        hf_config = {
            **self.config,
            "model_type": "bert",
            "architectures": [architecture],
            "layer_norm_eps": self.config.get("layer_norm_eps", 1e-12),
        }
        (self.model_dir / "config.json").write_text(json.dumps(hf_config, indent=2) + "\n")
        save_file(tensors, str(self.model_dir / "model.safetensors"))
        self._stage_tokenizer()

    def _stage_tokenizer(self) -> None:
        vocab = self.directory / VOCAB_FILE
        if not vocab.is_file():
            raise CheckpointError(
                f"{VOCAB_FILE} not found beside the TF checkpoint in {self.directory}"
            )
        shutil.copy(vocab, self.model_dir / VOCAB_FILE)
        # BertTokenizer strips accents exactly when it lowercases, as Google's tokenizer does.
        tokenizer_config = {
            "tokenizer_class": "BertTokenizer",
            "do_lower_case": self.do_lower_case,
            "model_max_length": int(self.config.get("max_position_embeddings", 512)),
        }
        (self.model_dir / "tokenizer_config.json").write_text(json.dumps(tokenizer_config) + "\n")
        from transformers import BertTokenizer

        BertTokenizer.from_pretrained(str(self.model_dir)).save_pretrained(str(self.model_dir))

    # --- what the exporter asks -----------------------------------------------------------------
    def check_task(self, task: str) -> None:
        """Refuse, by TF name, a task whose head weights the checkpoint lacks: a fill-mask export
        of a checkpoint without ``cls/predictions/output_bias`` would serve a zero bias."""
        if task != contract.TASK_FILL_MASK:
            return
        missing = [k for k in self.names.groups["mlm"] if k not in self.present]
        if missing:
            raise MissingWeightsError(missing, context=f"{self.prefix} (task {task})")

    def card_fields(self) -> dict[str, str]:
        """What the model card's ``source`` says about the original checkpoint."""
        return {"checkpoint": str(self.source), "weights_file": self.prefix, "layout": self.layout}


def find_checkpoint_prefix(path: Path) -> str | None:
    """The checkpoint prefix at ``path`` (a directory holding one checkpoint, or a prefix)."""
    import tensorflow as tf

    if Path(f"{path}.index").is_file():
        return str(path)
    if not path.is_dir():
        return None
    latest = tf.train.latest_checkpoint(str(path))
    if latest is not None:
        return str(latest)
    indexes = sorted(path.glob("*.index"))
    if len(indexes) > 1:
        raise CheckpointError(
            f"{path} holds several TF checkpoints ({', '.join(p.stem for p in indexes)}); "
            "pass one prefix, e.g. --checkpoint " + str(indexes[0].with_suffix(""))
        )
    return str(indexes[0].with_suffix("")) if indexes else None
