"""Checks an exported SavedModel, loaded back from disk, against the reference before release.

Three checks, all on the SAVED directory (what TF Serving will load, not the Python objects):

- token parity: the ``preprocess`` signature (and the saved pair tokenizer) against the
  checkpoint's Hugging Face tokenizer, on a hard probe corpus and sentence pairs;
- output parity: task outputs against PyTorch transformers (+ sentence-transformers pooling);
- op audit: every op in the graph and its function library is TF core or tensorflow-text; no
  PyFunc/EagerPyFunc (TF Serving cannot run Python).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from models import contract
from models.errors import VerificationError

#: Max abs difference allowed against the reference: embeddings are unit-scale, logits larger.
TOLERANCES = {
    contract.TASK_EMBEDDING: 1e-5,
    contract.TASK_CLASSIFICATION: 1e-4,
    contract.TASK_FILL_MASK: 1e-4,
    contract.TASK_TOKEN_CLASSIFICATION: 1e-4,
}
#: tensorflow-text ops and the tf-text release that introduced them (a TF Serving build must link
#: at least that release). Ops not listed here are reported as "<= installed version".
TF_TEXT_OP_SINCE = {
    "FastWordpieceTokenizeWithOffsets": "2.10",
    "FastBertNormalize": "2.12",
    "RoundRobinTrim": "2.20",
}
#: The same for bfloat16 exports (8-bit mantissa: ~3 significant digits per matmul). Measured
#: on the bundled MiniLM (embeddings) and the tiny random test models (logits); see
#: docs/precision.md.
BFLOAT16_TOLERANCES = {
    contract.TASK_EMBEDDING: 1e-2,
    contract.TASK_CLASSIFICATION: 1e-1,
    contract.TASK_FILL_MASK: 2e-1,
}
#: Reference logits closer than this (or twice the tolerance) may rank either label first.
_LABEL_TIE = 1e-3
_PYTHON_OPS = {"PyFunc", "PyFuncStateless", "EagerPyFunc"}
_BATCH = 32


def output_tolerance(task: str, precision: str) -> float:
    """The max abs difference allowed for ``task``'s outputs at ``precision``."""
    if precision == contract.PRECISION_FLOAT32:
        return TOLERANCES[task]
    return BFLOAT16_TOLERANCES[task]


def probe_pairs(texts: Sequence[str]) -> tuple[list[str], list[str]]:
    """Sentence pairs from a probe corpus: neighbours, so long texts meet short ones."""
    firsts = list(texts)
    seconds = list(texts[1:]) + list(texts[:1])
    return firsts, seconds


def _batches(texts: Sequence[str], pairs: Sequence[str] | None) -> Iterable[list[int]]:
    # Length-sorted batches keep padding (and the reference's run time) small.
    order = sorted(
        range(len(texts)),
        key=lambda i: len(texts[i]) + (len(pairs[i]) if pairs is not None else 0),
    )
    for start in range(0, len(order), _BATCH):
        yield order[start : start + _BATCH]


def check_token_parity(
    loaded: Any,
    reference: Any,
    texts: Sequence[str],
    *,
    pairs: Sequence[str] | None = None,
) -> int:
    """Raises :class:`VerificationError` on the first text whose ids or type ids differ."""
    preprocess = loaded.signatures[contract.PREPROCESS]
    checked = 0
    for index in _batches(texts, pairs):
        batch = [texts[i] for i in index]
        if pairs is None:
            ours = preprocess(text=tf.constant(batch))
            expected = reference.token_ids(batch)
        else:
            second = [pairs[i] for i in index]
            ours = loaded.preprocess_pair(tf.constant(batch), tf.constant(second))
            expected = reference.token_ids(batch, second)
        ids = ours[contract.INPUT_WORD_IDS].numpy()
        mask = ours[contract.INPUT_MASK].numpy()
        types = ours[contract.INPUT_TYPE_IDS].numpy()
        for row, (ref_ids, ref_types) in enumerate(expected):
            n = int(mask[row].sum())
            if ids[row, :n].tolist() != ref_ids or types[row, :n].tolist() != ref_types:
                where = f" / {second[row]!r}" if pairs is not None else ""
                raise VerificationError(
                    f"token parity failed on {batch[row]!r}{where}: exported ids "
                    f"{ids[row, :n].tolist()[:40]} vs reference {ref_ids[:40]}"
                )
        checked += len(batch)
    return checked


def check_output_parity(
    loaded: Any,
    reference: Any,
    *,
    task: str,
    mask_id: int,
    id2label: Sequence[str] = (),
    texts: Sequence[str],
    pairs: Sequence[str] | None = None,
    tolerance: float | None = None,
    progress: Callable[[int], None] | None = None,
    signature_name: str | None = None,
    prompt: str = "",
) -> tuple[float, str]:
    """Max abs difference of the task outputs vs the reference, and the worst text.

    ``signature_name`` (default: serving_default, or serving_pair with ``pairs``) is fed the
    raw texts; the reference sees ``prompt + text`` (what a prompt signature computes).
    Raises :class:`VerificationError` (worst text, max abs diff, tolerance) above tolerance.
    """
    tolerance = TOLERANCES[task] if tolerance is None else tolerance
    if signature_name is None:
        signature_name = contract.SERVING_DEFAULT if pairs is None else contract.SERVING_PAIR
    signature = loaded.signatures[signature_name]
    worst, worst_text = 0.0, ""
    label_error: VerificationError | None = None
    for index in _batches(texts, pairs):
        batch = [texts[i] for i in index]
        second = [pairs[i] for i in index] if pairs is not None else None
        expected = reference.outputs([prompt + text for text in batch], second)
        if task == contract.TASK_FILL_MASK:
            diffs = _fill_mask_diffs(loaded, expected, mask_id)
        else:
            feed = {contract.TEXT: tf.constant(batch)}
            if second is not None:
                feed[contract.TEXT_PAIR] = tf.constant(second)
            ours = signature(**feed)
            if task == contract.TASK_TOKEN_CLASSIFICATION:
                diffs = _token_diffs(ours, expected)
            else:
                key = contract.EMBEDDING if task == contract.TASK_EMBEDDING else contract.LOGITS
                diffs = np.abs(ours[key].numpy() - expected[key]).max(axis=1)
            if task == contract.TASK_CLASSIFICATION and label_error is None:
                try:
                    _check_labels(
                        ours,
                        expected[contract.LOGITS],
                        id2label,
                        tie=max(_LABEL_TIE, 2 * tolerance),
                    )
                except VerificationError as exc:
                    label_error = exc  # reported after the (more telling) max abs diff
        row = int(np.argmax(diffs))
        if diffs[row] > worst:
            worst = float(diffs[row])
            worst_text = batch[row] + (f" ||| {second[row]}" if second is not None else "")
        if progress is not None:
            progress(len(batch))
    if not worst <= tolerance:
        raise VerificationError(
            f"output parity failed for the {task} task: max abs diff {worst:.3g} > tolerance "
            f"{tolerance:g} on {worst_text!r}"
        )
    if label_error is not None:
        raise label_error
    return worst, worst_text


def check_entity_parity(loaded: Any, reference: Any, *, texts: Sequence[str]) -> int:
    """The served ``entity_*`` outputs equal transformers' token-classification pipeline
    (``aggregation_strategy="simple"``) on every text that fits max_seq_length (the pipeline
    splits longer ones into chunks; the export truncates). Returns how many texts were checked.

    Groups, words and offsets must be equal; scores within 1e-5. Raises
    :class:`VerificationError` naming the first text that differs.
    """
    fitting = [t for t in texts if reference.fits(t)]
    signature = loaded.signatures[contract.SERVING_DEFAULT]
    for index in _batches(fitting, None):
        batch = [fitting[i] for i in index]
        ours = {k: v.numpy() for k, v in signature(text=tf.constant(batch)).items()}
        for row, text in enumerate(batch):
            expected = reference.entities(text)
            got = [
                {
                    "entity_group": ours[contract.ENTITY_GROUPS][row, i].decode(),
                    "word": ours[contract.ENTITY_WORDS][row, i].decode(),
                    "start": int(ours[contract.ENTITY_STARTS][row, i]),
                    "end": int(ours[contract.ENTITY_ENDS][row, i]),
                    "score": float(ours[contract.ENTITY_SCORES][row, i]),
                }
                for i in range(ours[contract.ENTITY_GROUPS].shape[1])
                if int(ours[contract.ENTITY_STARTS][row, i]) >= 0
            ]
            same = len(got) == len(expected) and all(
                {k: g[k] for k in ("entity_group", "word", "start", "end")}
                == {k: e[k] for k in ("entity_group", "word", "start", "end")}
                and abs(g["score"] - float(e["score"])) <= 1e-5
                for g, e in zip(got, expected, strict=False)
            )
            if not same:
                raise VerificationError(
                    f"entity parity failed on {text!r}: exported {got[:5]} vs pipeline "
                    f"{expected[:5]}"
                )
    return len(fitting)


def _token_diffs(ours: dict[str, Any], expected: dict[str, np.ndarray]) -> np.ndarray:
    """Per text: max abs difference of the token logits over its real (unpadded) tokens."""
    theirs = expected[contract.TOKEN_LOGITS]
    logits = ours[contract.TOKEN_LOGITS].numpy()
    mask = expected[contract.INPUT_MASK].astype(bool)
    rows = []
    for row in range(theirs.shape[0]):
        n = int(mask[row].sum())
        if logits.shape[1] < n:
            return np.full(theirs.shape[0], np.inf)  # fewer tokens than the reference
        rows.append(float(np.abs(logits[row, :n] - theirs[row, :n]).max()))
    return np.asarray(rows)


def _fill_mask_diffs(loaded: Any, expected: dict[str, np.ndarray], mask_id: int) -> np.ndarray:
    """MLM logits at every [MASK] (plus position 1 of every text) through the ``mlm`` signature."""
    ref_ids = expected[contract.INPUT_WORD_IDS]
    ref_logits = expected[contract.MLM_LOGITS]
    rows = []
    for row in range(ref_ids.shape[0]):
        rows.append([1, *np.flatnonzero(ref_ids[row] == mask_id).tolist()])
    width = max(len(r) for r in rows)
    positions = np.array([r + [r[0]] * (width - len(r)) for r in rows], dtype=np.int32)
    # The reference tokenizer's ids are reused here: token parity is checked separately.
    ours = loaded.signatures[contract.MLM](
        input_word_ids=tf.constant(ref_ids, tf.int32),
        input_mask=tf.constant(expected[contract.INPUT_MASK], tf.int32),
        input_type_ids=tf.constant(expected[contract.INPUT_TYPE_IDS], tf.int32),
        masked_lm_positions=tf.constant(positions),
    )[contract.MLM_LOGITS].numpy()
    theirs = np.take_along_axis(ref_logits, positions[:, :, None], axis=1)
    return np.abs(ours - theirs).max(axis=(1, 2))


def _check_labels(
    ours: dict[str, Any], ref_logits: np.ndarray, id2label: Sequence[str], *, tie: float
) -> None:
    labels = [label.decode() for label in ours[contract.LABELS].numpy()]
    for row, label in enumerate(labels):
        ranked = np.sort(ref_logits[row])
        if len(ranked) > 1 and ranked[-1] - ranked[-2] < tie:
            continue  # a near tie: either label is right
        expected = id2label[int(np.argmax(ref_logits[row]))]
        if label != expected:
            raise VerificationError(
                f"label {label!r} differs from the reference's {expected!r} in row {row}"
            )


@functools.cache
def _tf_text_binaries() -> tuple[bytes, ...]:
    import tensorflow_text

    root = Path(tensorflow_text.__file__).parent
    return tuple(path.read_bytes() for path in sorted(root.rglob("*.so")))


def graph_ops(saved_dir: str | Path) -> set[str]:
    """Every op type in a SavedModel: its graphs and every function in their libraries."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((Path(saved_dir) / "saved_model.pb").read_bytes())
    ops: set[str] = set()
    for meta_graph in proto.meta_graphs:
        ops.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
    return ops


def audit_ops(saved_dir: str | Path) -> tuple[tuple[str, ...], dict[str, str]]:
    """(all op types, {tf-text op: release that introduced it}); raises on a forbidden op."""
    import tensorflow_text

    ops = graph_ops(saved_dir)
    python_ops = sorted(ops & _PYTHON_OPS)
    if python_ops:
        raise VerificationError(f"the graph calls Python ({python_ops}); TF Serving cannot run it")
    core = set(dir(tf.raw_ops))
    tf_text_ops: dict[str, str] = {}
    unknown = []
    for op in sorted(ops - core):
        # An op registered by one of tensorflow-text's libraries names itself in that binary.
        needle = op.encode()
        if any(needle in binary for binary in _tf_text_binaries()):
            tf_text_ops[op] = TF_TEXT_OP_SINCE.get(op, f"<= {tensorflow_text.__version__}")
        else:
            unknown.append(op)
    if unknown:
        raise VerificationError(
            f"ops that are neither TensorFlow core nor tensorflow-text: {', '.join(unknown)}"
        )
    return tuple(sorted(ops)), tf_text_ops
