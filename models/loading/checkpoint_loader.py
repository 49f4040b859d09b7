"""Strict loading of Hugging Face BERT-family checkpoints into the Keras encoder and heads.

The classic silent failure this module exists to prevent: a model built from a config whose
pretrained weights were never loaded (or only partly, because the checkpoint's key names did not
match) exports fine and serves random numbers. Here every variable of the encoder and of the task
head must receive a checkpoint tensor of the right shape, or loading raises an error naming the
keys. Key spellings handled: old ``gamma``/``beta`` LayerNorm names, the family's prefix
(``bert.``, ``roberta.``, ``distilbert.``, ``electra.``, ``albert.``, ``mpnet.``) present or
absent, wrapper prefixes (``model.``, ``module.``), tied decoder biases as aliases of the head's
bias (``cls.predictions.decoder.bias``, ``lm_head.decoder.bias``...), a decoder weight absent
because it is tied to the word embeddings. The family comes from ``config.json``'s model_type
(:class:`models.family.Family`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models import contract
from models.errors import CheckpointError, MissingWeightsError, ShapeMismatchError

if TYPE_CHECKING:
    from models.bert.bert_config import BertConfig
    from models.family import Family

# Buffers a checkpoint may carry that no exported model needs, whatever the family and task.
_ALWAYS_HARMLESS = ("embeddings.position_ids", "embeddings.token_type_ids")
# Wrapper prefixes from training frameworks and sentence-transformers; stripped before matching.
_WRAPPER_PREFIXES = ("module.", "model.", "0.auto_model.", "auto_model.")
_ENCODER_PREFIXES = ("embeddings.", "encoder.", "pooler.")
_POOLING_MODES = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
}
_MAX_SEQ_LENGTH_CAP = 512
_ST_PREFIX = "sentence_transformers.models."


def canonical_key(key: str, family: Family | None = None) -> str:
    """The checkpoint key as the family's encoder and heads spell it (BERT if no family)."""
    from models.family import FAMILIES

    family = family or FAMILIES["bert"]
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    if key.startswith(family.checkpoint_prefix):
        key = key[len(family.checkpoint_prefix) :]
    # TF-converted and very old PyTorch BERT checkpoints name LayerNorm's scale/offset gamma/beta.
    if key.endswith(".gamma"):
        key = key[: -len(".gamma")] + ".weight"
    elif key.endswith(".beta"):
        key = key[: -len(".beta")] + ".bias"
    return family.aliases.get(key, key)


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """What :meth:`CheckpointLoader.assign` did: figures for the export report and model card.

    (Kept beside the loader: it is only ever produced by it.)
    """

    loaded: tuple[str, ...]
    unexpected_allowed: tuple[str, ...]
    tied_decoder: bool

    @property
    def num_loaded(self) -> int:
        return len(self.loaded)


class CheckpointLoader:
    """Reads a checkpoint directory (Hugging Face or sentence-transformers layout) once.

    Example::

        loader = CheckpointLoader(checkpoint_dir)
        encoder = loader.family.encoder_class(
            **loader.config.encoder_kwargs(use_pooler=loader.has_pooler)
        )
        report = loader.assign(encoder.checkpoint_variables(), task=loader.default_task())
    """

    def __init__(self, checkpoint_dir: str | Path) -> None:
        self.checkpoint_dir = Path(checkpoint_dir).expanduser().resolve()
        if not self.checkpoint_dir.is_dir():
            raise CheckpointError(f"checkpoint directory {self.checkpoint_dir} does not exist")
        self.pooling_mode = "mean"
        self.normalize = False
        self.sentence_transformers = False
        self.include_prompt = True
        self.model_dir = self.checkpoint_dir
        st_max_seq_length = self._read_modules_json()
        self.prompts, self.default_prompt_name = self._read_prompts()
        self.family, self.config = _read_config(self._require(self.model_dir / "config.json"))
        self.default_max_seq_length = min(
            st_max_seq_length or self.config.max_sequence_length,
            self.config.max_sequence_length,
            _MAX_SEQ_LENGTH_CAP,
        )
        self.weights_file, raw = self._read_tensors()
        self.tensors: dict[str, np.ndarray] = {}
        for key, value in raw.items():
            canon = canonical_key(key, self.family)
            if canon in self.tensors and not np.array_equal(self.tensors[canon], value):
                raise CheckpointError(
                    f"checkpoint holds two different tensors for {canon!r} (one is {key!r})"
                )
            self.tensors[canon] = np.asarray(value, dtype=np.float32)

    # --- reading ------------------------------------------------------------------------
    def _require(self, path: Path) -> Path:
        if not path.is_file():
            raise CheckpointError(f"{path.name} not found in {path.parent}")
        return path

    def _read_modules_json(self) -> int | None:
        """Honour a sentence-transformers pipeline; returns its max_seq_length, if any."""
        modules_file = self.checkpoint_dir / "modules.json"
        if not modules_file.is_file():
            return None
        try:
            modules = json.loads(modules_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"cannot parse {modules_file}: {exc}") from exc
        self.sentence_transformers = True
        max_seq_length = None
        found_transformer = found_pooling = False
        for module in sorted(modules, key=lambda m: int(m.get("idx", 0))):
            kind = str(module.get("type", "")).removeprefix(_ST_PREFIX)
            path = self.checkpoint_dir / module.get("path", "")
            if kind == "Transformer":
                found_transformer = True
                self.model_dir = path
                st_config = path / "sentence_bert_config.json"
                if st_config.is_file():
                    max_seq_length = json.loads(st_config.read_text("utf-8")).get("max_seq_length")
            elif kind == "Pooling":
                found_pooling = True
                self.pooling_mode, self.include_prompt = self._read_pooling(path / "config.json")
            elif kind == "Normalize":
                self.normalize = True
            else:
                raise CheckpointError(
                    f"sentence-transformers module {module.get('type')!r} is not supported "
                    "(supported: Transformer, Pooling, Normalize)"
                )
        if not (found_transformer and found_pooling):
            raise CheckpointError(f"{modules_file} lacks a Transformer or a Pooling module")
        return int(max_seq_length) if max_seq_length else None

    def _read_prompts(self) -> tuple[dict[str, str], str | None]:
        """sentence-transformers' ``prompts`` / ``default_prompt_name`` (encode() prepends them)."""
        st_config = self.checkpoint_dir / "config_sentence_transformers.json"
        if not self.sentence_transformers or not st_config.is_file():
            return {}, None
        try:
            config = json.loads(st_config.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"cannot parse {st_config}: {exc}") from exc
        prompts = {str(k): str(v) for k, v in (config.get("prompts") or {}).items()}
        default = config.get("default_prompt_name") or None
        if default is not None and default not in prompts:
            raise CheckpointError(
                f"default_prompt_name {default!r} is not among the prompts {sorted(prompts)}"
            )
        # Pooling with include_prompt=False masks the prompt's tokens out of the mean; the
        # export prepends the prompt to the text and pools every token, so it would differ.
        if prompts and not self.include_prompt:
            raise CheckpointError(
                "Pooling with include_prompt=false (prompt tokens excluded from pooling) "
                "is not supported"
            )
        return prompts, default

    @staticmethod
    def _read_pooling(path: Path) -> tuple[str, bool]:
        """The pooling mode and ``include_prompt`` (False: prompt tokens are not pooled)."""
        try:
            pooling = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"cannot read pooling config {path}: {exc}") from exc
        modes = [mode for flag, mode in _POOLING_MODES.items() if pooling.get(flag)]
        others = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v]
        if len(modes) != 1 or len(others) != 1:
            raise CheckpointError(
                f"pooling config {path} enables {others}; exactly one of "
                f"{sorted(_POOLING_MODES)} is supported"
            )
        return modes[0], bool(pooling.get("include_prompt", True))

    def _read_tensors(self) -> tuple[Path, Mapping[str, Any]]:
        single = self.model_dir / "model.safetensors"
        index = self.model_dir / "model.safetensors.index.json"
        torch_bin = self.model_dir / "pytorch_model.bin"
        if single.is_file():
            return single, _read_safetensors([single])
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text("utf-8"))["weight_map"].values()))
            return index, _read_safetensors([self.model_dir / s for s in shards])
        if torch_bin.is_file():
            return torch_bin, _read_torch_bin(torch_bin)
        raise CheckpointError(
            f"no model.safetensors or pytorch_model.bin in {self.model_dir} "
            "(TF/Flax-only checkpoints are not supported)"
        )

    # --- what the checkpoint holds ----------------------------------------------------------
    @property
    def has_pooler(self) -> bool:
        return self.family.pooler_key is not None and self.family.pooler_key in self.tensors

    @property
    def has_mlm_head(self) -> bool:
        return self.family.mlm_transform_key in self.tensors

    @property
    def has_classifier(self) -> bool:
        return any(
            k.startswith(self.family.head_prefixes(contract.TASK_CLASSIFICATION))
            for k in self.tensors
        )

    @property
    def decoder_is_tied(self) -> bool:
        """True when the MLM decoder is (or must be) the word-embedding matrix."""
        decoder = self.tensors.get(self.family.mlm_decoder_key)
        embeddings = self.tensors.get("embeddings.word_embeddings.weight")
        return decoder is None or (embeddings is not None and np.array_equal(decoder, embeddings))

    def default_task(self) -> str:
        """The task implied by the checkpoint: sentence-transformers and ``*Model`` ->
        embedding; refuses task classes nothing exports (question answering, pre-training...)."""
        if self.sentence_transformers:
            return contract.TASK_EMBEDDING
        return self.family.default_task(self.config.architectures)

    # --- assigning ------------------------------------------------------------------------
    def assign(self, targets: Mapping[str, tuple[Any, bool]], *, task: str) -> LoadReport:
        """Copy checkpoint tensors into ``targets`` (canonical key -> (variable, transpose?)).

        Raises :class:`MissingWeightsError` naming every target the checkpoint lacks (nothing is
        assigned then), :class:`ShapeMismatchError` naming the key and both shapes, and
        :class:`CheckpointError` for checkpoint tensors that would be silently ignored.
        """
        missing = sorted(k for k in targets if k not in self.tensors)
        if missing:
            raise MissingWeightsError(missing, context=f"{self.weights_file} (task {task})")
        for key, (variable, transpose) in targets.items():
            value = self.tensors[key].T if transpose else self.tensors[key]
            expected = tuple(int(d) for d in variable.shape)
            if value.shape != expected:
                shown = tuple(reversed(expected)) if transpose else expected
                raise ShapeMismatchError(key, self.tensors[key].shape, shown)
        for key, (variable, transpose) in targets.items():
            value = self.tensors[key].T if transpose else self.tensors[key]
            variable.assign(np.ascontiguousarray(value))
        unexpected = sorted(k for k in self.tensors if k not in targets)
        refused = [k for k in unexpected if not self._harmless(k, task)]
        if refused:
            raise CheckpointError(
                f"checkpoint weights the {task} model would ignore: {', '.join(refused[:20])}"
            )
        return LoadReport(
            loaded=tuple(sorted(targets)),
            unexpected_allowed=tuple(unexpected),
            tied_decoder=(
                task == contract.TASK_FILL_MASK and self.family.mlm_decoder_key not in targets
            ),
        )

    def _harmless(self, key: str, task: str) -> bool:
        if key.startswith(_ALWAYS_HARMLESS + self.family.unexported_heads):
            return True
        if key == self.family.mlm_decoder_key and self.decoder_is_tied:
            return True  # the tied decoder the MLM head reads from the embeddings
        # Another task's head: exporting a checkpoint's encoder under another task is explicit.
        for other in (contract.TASK_FILL_MASK, contract.TASK_CLASSIFICATION):
            if other != task and key.startswith(self.family.head_prefixes(other)):
                return True
        return False


def _read_config(path: Path) -> tuple[Family, BertConfig]:
    from models.family import Family

    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    family = Family.for_model_type(str(raw.get("model_type", "bert")))
    return family, family.config_class.from_dict(raw)


def _read_safetensors(files: list[Path]) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    tensors: dict[str, Any] = {}
    for path in files:
        try:
            tensors.update(load_file(str(path)))
        except (SafetensorError, TypeError) as exc:
            # numpy has no bfloat16: such checkpoints need torch to widen them.
            if "bf16" not in str(exc).lower() and "bfloat16" not in str(exc).lower():
                raise CheckpointError(f"cannot read {path}: {exc}") from exc
            from safetensors.torch import load_file as load_torch

            tensors.update({k: v.float().numpy() for k, v in load_torch(str(path)).items()})
        except OSError as exc:
            raise CheckpointError(f"cannot read {path}: {exc}") from exc
    return tensors


def _read_torch_bin(path: Path) -> dict[str, Any]:
    try:
        import torch
    except ImportError as exc:
        raise CheckpointError(f"{path.name} needs PyTorch installed to be read") from exc
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or unsafe pickle
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    return {k: v.float().numpy() for k, v in state.items() if hasattr(v, "numpy")}
