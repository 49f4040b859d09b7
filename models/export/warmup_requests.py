"""TF Serving warmup requests (``assets.extra/tf_serving_warmup_requests``) for an export:
one ``Predict`` per padded length and batch size, so a server allocates and traces every shape
before the version answers traffic."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from models import contract
from models.errors import ModelError
from models.export.model_assembly import DEFAULT_LENGTH_BUCKETS

if TYPE_CHECKING:
    from models.tokenizers.text_tokenizer import TextTokenizer

#: Batch sizes of the warmup requests written for every length bucket.
WARMUP_BATCH_SIZES = (1, 8, 32)
# Words tried, in order, for one that every tokenizer kind (WordPiece "the", BPE "the"/"Ġthe",
# SentencePiece "▁the") keeps as one token each time it repeats.
_WARMUP_WORDS = ("the", "a", "de", "la", "x", "0", *"abcdefghijklmnopqrstuvwxyz123456789")


def warmup_lengths(tokenizer: TextTokenizer) -> tuple[int, ...]:
    """Padded lengths the warmup requests cover: every bucket, or, for an export that pads to
    the longest row, the default buckets' lengths (a spread of shapes to allocate and warm)."""
    if tokenizer.length_buckets:
        return tuple(tokenizer.length_buckets)
    lengths = [b for b in DEFAULT_LENGTH_BUCKETS if b < tokenizer.max_seq_length]
    return (*lengths, tokenizer.max_seq_length)


def warmup_texts(tokenizer: TextTokenizer, *, bucket: int, batch_size: int) -> list[str]:
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


def write_warmup_requests(version_dir: Path, tokenizer: TextTokenizer) -> int:
    """Write the warmup file under ``version_dir``; returns how many requests it holds."""
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


def _one_token_word(tokenizer: TextTokenizer) -> str:
    import tensorflow as tf

    repeats = 4
    candidates = [" ".join([word] * repeats) for word in _WARMUP_WORDS]
    lengths = tokenizer.tokenize(tf.constant(candidates)).row_lengths().numpy()
    for word, length in zip(_WARMUP_WORDS, lengths, strict=True):
        if length == repeats:
            return str(word)
    raise ModelError("no warmup word is a single token of this tokenizer's vocabulary")
