"""Export a BERT-family checkpoint as one end-to-end SavedModel (raw text in), verified.

The library behind ``textserve-export`` (see :func:`export_model`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from models import contract
from models.errors import ExportConfigError, ModelError

#: Padded lengths of ``length_buckets="default"`` and of ``jit_compile`` exports (capped at
#: max_seq_length, which is always the last bucket). Steps of 1.5x rather than 2x: padding a
#: 17-token text to 32 would waste ~45% of the encoder's work. Without XLA an export pads each
#: batch to its longest row instead: a dynamic length costs nothing there, and on length-sorted
#: STS-B batches these buckets still meant 37% more tokens and ~30% fewer sentences/s on CPU.
DEFAULT_LENGTH_BUCKETS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384)
#: Batch sizes of the warmup requests written for every length bucket.
WARMUP_BATCH_SIZES = (1, 8, 32)
# Output parity on pairs runs on this many of them (every pair gets token parity): pairs add
# the type-id path, which a few dozen long and short pairs exercise fully.
_OUTPUT_PAIRS = 64
_LABELLED_TASKS = (contract.TASK_CLASSIFICATION, contract.TASK_TOKEN_CLASSIFICATION)


@dataclasses.dataclass(frozen=True)
class ExportReport:
    """What :func:`export_model` produced."""

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


def export_model(
    *,
    checkpoint: str | Path | None,
    output: str | Path,
    task: str | None = None,
    max_seq_length: int | None = None,
    length_buckets: Sequence[int] | Literal["default"] | None = None,
    jit_compile: bool = False,
    top_k: int = 5,
    verify: bool = True,
    overwrite: bool = False,
    progress: bool = True,
    do_lower_case: bool | None = None,
    export_type: str = contract.EXPORT_END_TO_END,
) -> ExportReport:
    """Export ``checkpoint`` to ``output`` (``BASE/VERSION``, TF Serving's layout).

    ``export_type``: ``end-to-end`` (the default: raw text -> task outputs, what TF Serving
    serves) or one half of TF Hub's Common SavedModel API for text: ``preprocessing``,
    ``encoder``, ``encoder-with-mlm`` (see :func:`models.export.tfhub_exporter.export_tfhub`;
    ``max_seq_length`` is then the preprocessor's ``seq_length``, default 128, and the
    end-to-end options ``task``, ``length_buckets``, ``jit_compile`` and ``top_k`` are refused).

    ``checkpoint=None`` exports the bundled sentence-transformers/all-MiniLM-L6-v2. A Google
    TF1 BERT or TF Model Garden TF2 checkpoint is converted first (see
    :mod:`models.loading.tf_checkpoint`); ``do_lower_case`` is its tokenizer's lowercasing when
    the checkpoint cannot tell. ``task``
    defaults to the checkpoint's own (sentence-transformers and BertModel -> embedding,
    ``*ForSequenceClassification`` -> classification, ``*ForMaskedLM`` -> fill-mask).
    ``max_seq_length`` defaults to sentence_bert_config.json's, else the config's
    max_position_embeddings capped at 512. ``length_buckets`` are the padded lengths the graph
    runs at: ``"default"`` means :data:`DEFAULT_LENGTH_BUCKETS` below max_seq_length, then
    max_seq_length; ``None`` (the default) pads each batch to its longest row, except with
    ``jit_compile`` (XLA compiles once per shape), which gets the default buckets. Export with
    buckets for XLA, including TF Serving's ``--tf_xla_auto_jit`` on GPU.

    The SavedModel is written to a temporary directory beside ``output``, verified there
    (``verify=False`` skips token/output parity, which is unsafe: a tokenizer or weight mismatch
    then ships silently; the op audit always runs), and renamed into place, so a server polling
    BASE never sees a half-written version. An existing non-empty version is kept unless
    ``overwrite=True``. Raises a :class:`models.errors.ModelError` on any failure.

    Example::

        report = export_model(checkpoint=None, output="exported/minilm/1")
    """
    if export_type != contract.EXPORT_END_TO_END:
        if export_type not in contract.EXPORT_TYPES:
            raise ExportConfigError(
                f"--export-type must be one of {', '.join(contract.EXPORT_TYPES)}, not "
                f"{export_type!r}"
            )
        if task is not None or length_buckets is not None or jit_compile or top_k != 5:
            raise ExportConfigError(
                f"--task, --length-buckets, --jit-compile and --top-k apply to end-to-end "
                f"exports only, not to --export-type {export_type}"
            )
        from models.export.tfhub_exporter import export_tfhub

        return export_tfhub(
            checkpoint=checkpoint,
            output=output,
            export_type=export_type,
            max_seq_length=max_seq_length,
            verify=verify,
            overwrite=overwrite,
            progress=progress,
            do_lower_case=do_lower_case,
        )
    started = time.monotonic()
    output = Path(output).expanduser().absolute()
    _check_output(output, overwrite=overwrite)
    if task is not None and task not in contract.TASKS:
        raise ExportConfigError(f"--task must be one of {', '.join(contract.TASKS)}, not {task!r}")
    if top_k < 1:
        raise ExportConfigError(f"--top-k must be at least 1, not {top_k}")

    from models.bundled import bundled_checkpoint
    from models.loading import open_checkpoint
    from models.loading.checkpoint_loader import CheckpointLoader
    from models.loading.task_guard import checkpoint_task

    with _Steps(progress) as steps, contextlib.ExitStack() as stack:
        steps.start("reading checkpoint")
        opened = stack.enter_context(
            open_checkpoint(
                bundled_checkpoint() if checkpoint is None else checkpoint,
                do_lower_case=do_lower_case,
            )
        )
        loader = CheckpointLoader(opened.model_dir)
        task = checkpoint_task(loader, task)
        opened.check_task(task)
        seq_length = _max_seq_length(loader, max_seq_length)
        if task in _LABELLED_TASKS and not loader.config.id2label:
            raise ExportConfigError(f"a {task} export needs num_labels/id2label in config")

        steps.start("building model and loading weights")
        model, load_report = _build(
            loader,
            task=task,
            max_seq_length=seq_length,
            length_buckets=length_buckets,
            top_k=top_k,
            jit_compile=jit_compile,
        )

        with staging_dir(output) as staging:
            steps.start("saving SavedModel")
            import tensorflow as tf

            tf.saved_model.save(model, str(staging), signatures=model.signatures())
            steps.start("writing warmup requests")
            warmup_records = _write_warmup(staging, model.tokenizer)

            steps.start("auditing ops")
            from models.export.export_verification import audit_ops

            ops, tf_text_ops = audit_ops(staging)
            verification: dict[str, Any] | None = None
            if verify:
                verification = _verify(staging, loader, model, task, seq_length, steps)

            card = _model_card(
                loader=loader,
                model=model,
                task=task,
                load_report=load_report,
                tf_text_ops=tf_text_ops,
                ops=ops,
                verification=verification,
                jit_compile=jit_compile,
            )
            card["source"].update(opened.card_fields())
            (staging / contract.MODEL_CARD_FILE).write_text(
                json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
            )
            steps.start("publishing")
            _publish(staging, output, overwrite=overwrite)

    return ExportReport(
        output=output,
        checkpoint=opened.source,
        task=task,
        max_seq_length=seq_length,
        length_buckets=tuple(model.tokenizer.length_buckets),
        output_dim=card["output_dim"],
        labels=tuple(model.id2label),
        weights_loaded=load_report.num_loaded,
        unexpected_keys_allowed=load_report.unexpected_allowed,
        tied_decoder=load_report.tied_decoder,
        warmup_records=warmup_records,
        verified=verification is not None,
        max_abs_diff=None if verification is None else verification["max_abs_diff"],
        tf_text_ops=tf_text_ops,
        seconds=time.monotonic() - started,
    )


# --- steps ------------------------------------------------------------------------------------
@contextlib.contextmanager
def staging_dir(output: Path) -> Iterator[Path]:
    """A hidden temp dir beside ``output`` (same filesystem, so :func:`_publish` is a rename),
    removed if anything fails before it is published; every export type writes through it."""
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _check_output(output: Path, *, overwrite: bool) -> None:
    if not output.name.isdigit() or int(output.name) <= 0:
        raise ExportConfigError(
            f"--output must be BASE/VERSION with a positive integer VERSION (TF Serving's "
            f"layout), e.g. exported/minilm/1; got {output}"
        )
    if output.exists() and not output.is_dir():
        raise ExportConfigError(f"{output} exists and is not a directory")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise ExportConfigError(
            f"{output} exists and is not empty (pass --overwrite to replace it)"
        )


def _max_seq_length(loader: Any, requested: int | None) -> int:
    if requested is None:
        return int(loader.default_max_seq_length)
    limit = loader.config.max_sequence_length
    if not 3 <= requested <= limit:
        raise ExportConfigError(
            f"--max-seq-length must lie in [3, {limit}] (the model's positions), not {requested}"
        )
    return int(requested)


def build_encoder_and_head(
    loader: Any, *, task: str, skip_padding: bool = True
) -> tuple[Any, Any, Any]:
    """(encoder, task head, load report) for ``loader``'s family, weights loaded strictly.

    The heads follow each family's Hugging Face task classes (see :mod:`models.family`).
    ``skip_padding``: see :class:`models.bert.bert_encoder.BertEncoder`.
    """
    from models.layers.classification_head import ClassificationHead
    from models.layers.masked_lm_head import MaskedLMHead
    from models.layers.sentence_embedding_head import SentenceEmbeddingHead
    from models.layers.token_classification_head import TokenClassificationHead

    config, family = loader.config, loader.family
    # RoBERTa & co. classify the first token's state, which the encoder's pooled_output is
    # when it has no pooler.
    first_token_classifier = (
        task == contract.TASK_CLASSIFICATION and family.classifier_activation is not None
    )
    encoder = family.encoder_class(
        **config.encoder_kwargs(use_pooler=loader.has_pooler and not first_token_classifier),
        skip_padding=skip_padding,
    )
    targets = dict(encoder.checkpoint_variables())
    head: Any
    if task == contract.TASK_EMBEDDING:
        head = SentenceEmbeddingHead(pooling_mode=loader.pooling_mode, normalize=loader.normalize)
    elif task == contract.TASK_CLASSIFICATION:
        head = ClassificationHead(
            num_labels=len(config.id2label),
            hidden_size=config.hidden_size,
            multi_label=_sigmoid_probabilities(config),
            inner_activation=family.classifier_activation,
        )
        targets.update(family.rename(head.checkpoint_variables(), family.classifier_renames))
    elif task == contract.TASK_TOKEN_CLASSIFICATION:
        # Every family's *ForTokenClassification: one `classifier` on every token's state.
        head = TokenClassificationHead(
            num_labels=len(config.id2label), hidden_size=config.hidden_size
        )
        targets.update(head.checkpoint_variables())
    else:
        head = MaskedLMHead(
            vocab_size=config.vocab_size,
            hidden_size=config.hidden_size,
            hidden_act=family.mlm_activation or config.hidden_act,
            layer_norm_epsilon=config.layer_norm_eps,
            token_embedding=encoder.word_embeddings if loader.decoder_is_tied else None,
            embedding_size=getattr(config, "embedding_size", None)
            if family.mlm_to_embedding_size
            else None,
        )
        targets.update(family.rename(head.checkpoint_variables(), family.mlm_renames))
    return encoder, head, loader.assign(targets, task=task)


def _build(
    loader: Any,
    *,
    task: str,
    max_seq_length: int,
    length_buckets: Sequence[int] | Literal["default"] | None,
    top_k: int,
    jit_compile: bool,
) -> tuple[Any, Any]:
    from models.export.text_model import TextModel
    from models.tokenizers import text_tokenizer_from_checkpoint
    from models.tokenizers.errors import UnsupportedTokenizerError

    config = loader.config
    encoder, head, load_report = build_encoder_and_head(loader, task=task)
    # The tokenizer takes seconds to derive; a checkpoint that cannot load fails before that.
    try:
        pad_to_longest = length_buckets is None and not jit_compile
        if length_buckets == "default" or (length_buckets is None and jit_compile):
            length_buckets = [b for b in DEFAULT_LENGTH_BUCKETS if b < max_seq_length]
            length_buckets.append(max_seq_length)
        tokenizer = text_tokenizer_from_checkpoint(
            loader.model_dir,
            max_seq_length=max_seq_length,
            length_buckets=None if pad_to_longest else length_buckets,
            pad_to_longest=pad_to_longest,
        )
    except ModelError:
        raise
    except (ValueError, OSError) as exc:
        raise ExportConfigError(f"cannot build the tokenizer: {exc}") from exc
    if task == contract.TASK_TOKEN_CLASSIFICATION and not hasattr(
        tokenizer, "tokenize_with_offsets"
    ):
        # Entity spans come from the in-graph tokenizer's character offsets; exporting without
        # them would drop the spans the task promises, so refuse rather than export less.
        raise UnsupportedTokenizerError(
            f"token-classification needs character offsets, which the in-graph "
            f"{type(tokenizer).__name__} does not produce yet (WordPiece and byte-level BPE do)"
        )
    if tokenizer.vocab_size > config.vocab_size:
        raise ExportConfigError(
            f"the tokenizer's vocabulary ({tokenizer.vocab_size}) is larger than the model's "
            f"embedding table ({config.vocab_size})"
        )
    try:
        model = TextModel(
            tokenizer=tokenizer,
            encoder=encoder,
            task=task,
            head=head,
            id2label=config.id2label if task in _LABELLED_TASKS else (),
            top_k=top_k,
            jit_compile=jit_compile,
            prompts=loader.prompts if task == contract.TASK_EMBEDDING else None,
            default_prompt_name=(
                loader.default_prompt_name if task == contract.TASK_EMBEDDING else None
            ),
        )
    except ValueError as exc:
        raise ExportConfigError(str(exc)) from exc
    return model, load_report


def warmup_lengths(tokenizer: Any) -> tuple[int, ...]:
    """Padded lengths the warmup requests cover: every bucket, or, for an export that pads to
    the longest row, the default buckets' lengths (a spread of shapes to allocate and warm)."""
    if tokenizer.length_buckets:
        return tuple(tokenizer.length_buckets)
    lengths = [b for b in DEFAULT_LENGTH_BUCKETS if b < tokenizer.max_seq_length]
    return (*lengths, tokenizer.max_seq_length)


def warmup_texts(tokenizer: Any, *, bucket: int, batch_size: int) -> list[str]:
    """Texts padded to ``bucket`` (one of :func:`warmup_lengths`): the first fills it, the rest
    are shorter, down to the previous length."""
    import tensorflow as tf

    buckets = list(warmup_lengths(tokenizer))
    lower = buckets[buckets.index(bucket) - 1] if buckets.index(bucket) > 0 else 0
    word = _one_token_word(tokenizer)
    # Room for the family's specials ([CLS] [SEP], <s> </s>...) around the one-token word.
    specials = int(tokenizer(tf.constant([word]))[contract.INPUT_MASK].numpy().sum()) - 1
    longest = bucket - specials
    texts = []
    for row in range(batch_size):
        words = max(1, longest - (row * (longest - lower)) // max(batch_size, 1))
        texts.append(" ".join([word] * words))
    lengths = tokenizer(tf.constant(texts))[contract.INPUT_WORD_IDS].shape[1]
    if lengths != bucket:
        raise ModelError(f"warmup texts for bucket {bucket} landed in {lengths}")
    return texts


# Words tried, in order, for one that every tokenizer kind (WordPiece "the", BPE "the"/"Ġthe",
# SentencePiece "▁the") keeps as one token each time it repeats.
_WARMUP_WORDS = ("the", "a", "de", "la", "x", "0", *"abcdefghijklmnopqrstuvwxyz123456789")


def _one_token_word(tokenizer: Any) -> str:
    import tensorflow as tf

    repeats = 4
    candidates = [" ".join([word] * repeats) for word in _WARMUP_WORDS]
    lengths = tokenizer.tokenize(tf.constant(candidates)).row_lengths().numpy()
    for word, length in zip(_WARMUP_WORDS, lengths, strict=True):
        if length == repeats:
            return word
    raise ModelError("no warmup word is a single token of this tokenizer's vocabulary")


def _write_warmup(version_dir: Path, tokenizer: Any) -> int:
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    path = version_dir / contract.WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    records = 0
    with tf.io.TFRecordWriter(str(path)) as writer:
        for bucket in warmup_lengths(tokenizer):
            for batch_size in WARMUP_BATCH_SIZES:
                if records >= contract.MAX_WARMUP_RECORDS:
                    break
                texts = warmup_texts(tokenizer, bucket=bucket, batch_size=batch_size)
                request = predict_pb2.PredictRequest(
                    model_spec=model_pb2.ModelSpec(signature_name=contract.SERVING_DEFAULT)
                )
                request.inputs[contract.TEXT].CopyFrom(tf.make_tensor_proto(texts, tf.string))
                log = prediction_log_pb2.PredictionLog(
                    predict_log=prediction_log_pb2.PredictLog(request=request)
                )
                writer.write(log.SerializeToString())
                records += 1
    return records


def _verify(
    staging: Path, loader: Any, model: Any, task: str, seq_length: int, steps: _Steps
) -> dict[str, Any]:
    import tensorflow as tf

    from models.export.export_verification import (
        TOLERANCES,
        check_entity_parity,
        check_output_parity,
        check_token_parity,
        probe_pairs,
    )
    from models.export.reference import TorchReference
    from models.probe_texts import PROBE_TEXTS

    steps.start("loading the SavedModel back")
    loaded = tf.saved_model.load(str(staging))
    steps.start("loading the PyTorch reference")
    reference = TorchReference(
        loader.model_dir,
        task=task,
        max_seq_length=seq_length,
        pooling_mode=loader.pooling_mode,
        normalize=loader.normalize,
    )
    texts = list(PROBE_TEXTS)
    firsts, seconds = probe_pairs(texts)
    steps.start("verifying token parity")
    token_texts = check_token_parity(loaded, reference, texts)
    token_pairs = check_token_parity(loaded, reference, firsts, pairs=seconds)
    if task == contract.TASK_FILL_MASK:
        # Fill-mask needs masks: one inside every probe text, a second in every other one
        # (written the family's way: [MASK], <mask>).
        mask = reference.tokenizer.mask_token
        texts = [
            f"{t[: len(t) // 2]} {mask} {t[len(t) // 2 :]}" + (f" {mask}." if i % 2 else "")
            for i, t in enumerate(texts)
        ]
    steps.start(
        "verifying outputs against PyTorch",
        total=len(texts) * (1 + len(model.prompts)) + _OUTPUT_PAIRS,
    )
    common = {
        "task": task,
        "mask_id": model.tokenizer.mask_id,
        "id2label": model.id2label,
        "progress": steps.advance,
    }
    default_prompt = model.prompts.get(model.default_prompt_name or "", "")
    single_diff, single_worst = check_output_parity(
        loaded, reference, texts=texts, prompt=default_prompt, **common
    )
    for name, prompt in model.prompts.items():
        prompt_diff, prompt_worst = check_output_parity(
            loaded,
            reference,
            texts=texts,
            signature_name=contract.SERVING_PROMPT_PREFIX + name,
            prompt=prompt,
            **common,
        )
        single_diff, single_worst = max((single_diff, single_worst), (prompt_diff, prompt_worst))
    pair_diff, pair_worst = check_output_parity(
        loaded, reference, texts=firsts[:_OUTPUT_PAIRS], pairs=seconds[:_OUTPUT_PAIRS], **common
    )
    worst_diff, worst_text = max((single_diff, single_worst), (pair_diff, pair_worst))
    entity_texts = None
    if task == contract.TASK_TOKEN_CLASSIFICATION:
        steps.start("verifying entities against the transformers pipeline")
        entity_texts = check_entity_parity(loaded, reference, texts=texts)
    return {
        "entity_texts": entity_texts,
        "token_texts": token_texts,
        "token_pairs": token_pairs,
        "output_texts": len(texts) + min(len(firsts), _OUTPUT_PAIRS),
        "max_abs_diff": worst_diff,
        "tolerance": TOLERANCES[task],
        "worst_text": worst_text,
    }


def _model_card(
    *,
    loader: Any,
    model: Any,
    task: str,
    load_report: Any,
    tf_text_ops: dict[str, str],
    ops: Sequence[str],
    verification: dict[str, Any] | None,
    jit_compile: bool,
) -> dict[str, Any]:
    import tensorflow as tf
    import tensorflow_text

    config = loader.config
    if task == contract.TASK_EMBEDDING:
        output_dim = config.hidden_size
    elif task in _LABELLED_TASKS:
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
        "embedding_dim": config.hidden_size if task == contract.TASK_EMBEDDING else None,
        "pooling_mode": loader.pooling_mode if task == contract.TASK_EMBEDDING else None,
        "normalize": loader.normalize if task == contract.TASK_EMBEDDING else None,
        "prompts": dict(model.prompts),
        "default_prompt_name": model.default_prompt_name,
        "labels": list(model.id2label),
        "multi_label": _sigmoid_probabilities(config),
        "top_k": model.top_k if task == contract.TASK_FILL_MASK else None,
        "max_seq_length": model.tokenizer.max_seq_length,
        "length_buckets": list(model.tokenizer.length_buckets),
        "padding": "longest" if model.tokenizer.pad_to_longest else "bucket",
        "do_lower_case": bool(model.tokenizer.do_lower_case),
        "vocab_size": model.tokenizer.vocab_size,
        "signatures": signatures,
        "jit_compile_encoder": jit_compile,
        "source": {
            "checkpoint": str(loader.checkpoint_dir),
            "weights_file": str(loader.weights_file),
            "architectures": list(config.architectures),
            "num_layers": config.num_hidden_layers,
            "hidden_size": config.hidden_size,
            "weights_loaded": load_report.num_loaded,
            "unexpected_keys_allowed": list(load_report.unexpected_allowed),
            "decoder_tied_to_word_embeddings": load_report.tied_decoder,
            "pooler_in_checkpoint": loader.has_pooler,
        },
        "versions": {
            "textserve": _version("textserve"),
            "tensorflow": tf.__version__,
            "tensorflow_text": tensorflow_text.__version__,
            "python": sys.version.split()[0],
        },
        "tf_text_ops": tf_text_ops,
        "op_count": len(ops),
        "verification": verification,
    }


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def _publish(staging: Path, output: Path, *, overwrite: bool) -> None:
    """Move the finished version into place with renames (atomic on one file system)."""
    os.chmod(staging, 0o755)  # mkdtemp makes it 0700; a server may run as another user
    if output.exists():
        if not overwrite and any(output.iterdir()):
            raise ExportConfigError(f"{output} appeared while exporting; not replacing it")
        retired = output.with_name(f".{output.name}.old-{os.getpid()}")
        os.rename(output, retired)
        os.rename(staging, output)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.rename(staging, output)


class _Steps:
    """Progress on stderr (tqdm): one bar per long step, counting items where known."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None
        self._started = 0.0

    def __enter__(self) -> _Steps:
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()

    def start(self, description: str, total: int | None = None) -> None:
        self._close()
        if not self.enabled:
            return
        from tqdm import tqdm

        self._bar = tqdm(
            total=total,
            desc=description,
            file=sys.stderr,
            bar_format="{desc}: {n_fmt}/{total_fmt} [{elapsed}]" if total else "{desc} [{elapsed}]",
            leave=True,
        )

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _sigmoid_probabilities(config: Any) -> bool:
    """Independent sigmoids for multi-label checkpoints and for a single logit: a softmax over
    one logit is always 1, and sigmoid is what sentence-transformers' CrossEncoder applies to
    one-logit (reranker) checkpoints."""
    return config.problem_type == "multi_label_classification" or len(config.id2label) == 1
