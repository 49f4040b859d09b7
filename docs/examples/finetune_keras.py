"""Fine-tune an exported TF Hub encoder in Keras 3, write it back as a Hugging Face checkpoint,
then export and serve it like any other (docs/tfhub.md walks through it).

    textserve-export --checkpoint BERT_DIR --output hub/preprocessing/1 --export-type preprocessing
    textserve-export --checkpoint BERT_DIR --output hub/encoder/1 --export-type encoder
    python docs/examples/finetune_keras.py --checkpoint BERT_DIR \\
        --preprocessor hub/preprocessing/1 --encoder hub/encoder/1 \\
        --train tests/data/stsb/stsb-en-test.csv --output finetuned
    textserve-export --checkpoint finetuned --output exported/paraphrase/1
    textserve-server --model_name paraphrase --model_base_path exported/paraphrase

The task: STS-B sentence pairs, binarised (similarity score >= 2.5 -> "similar").
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the preprocessor's tokenizer ops)

from models.export.tfhub_checkpoint_writer import TfHubCheckpointWriter
from models.export.tfhub_encoder_layer import TfHubEncoderLayer

LABELS = ("dissimilar", "similar")


def load_pairs(path: Path, *, limit: int) -> tuple[list[str], list[str], np.ndarray]:
    """The first ``limit`` rows of an STS-B CSV (sentence, sentence, score 0-5), binarised."""
    firsts, seconds, labels = [], [], []
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.reader(f):
            firsts.append(row[0])
            seconds.append(row[1])
            labels.append(int(float(row[2]) >= 2.5))
            if len(labels) == limit:
                break
    return firsts, seconds, np.array(labels, np.int32)


def pair_dataset(
    preprocessor: Any,
    firsts: list[str],
    seconds: list[str],
    labels: np.ndarray,
    *,
    seq_length: int,
    batch_size: int,
) -> tf.data.Dataset:
    """Batches of (encoder inputs, label): the preprocessor runs inside tf.data."""

    def pack(first: tf.Tensor, second: tf.Tensor) -> dict[str, tf.Tensor]:
        segments = [preprocessor.tokenize(first), preprocessor.tokenize(second)]
        return preprocessor.bert_pack_inputs(segments, seq_length=seq_length)

    return (
        tf.data.Dataset.from_tensor_slices(((firsts, seconds), labels))
        .shuffle(len(labels), seed=0, reshuffle_each_iteration=True)
        .batch(batch_size)
        .map(lambda pair, label: (pack(*pair), label))
    )


def build_classifier(encoder_dir: Path, *, num_labels: int) -> tuple[keras.Model, Any, Any]:
    """Encoder inputs -> logits: the exported encoder (trainable) + a Dense head on
    ``pooled_output``, BertForSequenceClassification's layout."""
    encoder = TfHubEncoderLayer(filepath=encoder_dir, name="encoder")
    inputs = {
        name: keras.Input([None], dtype="int32", name=name)
        for name in ("input_word_ids", "input_mask", "input_type_ids")
    }
    head = keras.layers.Dense(num_labels, name="classifier")
    logits = head(encoder(inputs)["pooled_output"])
    return keras.Model(inputs, logits), encoder, head


def finetune(
    *,
    checkpoint: Path,
    preprocessor_dir: Path,
    encoder_dir: Path,
    train: Path,
    output: Path,
    examples: int = 256,
    epochs: int = 8,
    seq_length: int = 64,
    batch_size: int = 32,
    learning_rate: float = 3e-3,
    seed: int = 0,
) -> dict[str, Any]:
    """Fine-tune, write ``output`` (a Hugging Face checkpoint) and return what happened."""
    keras.utils.set_random_seed(seed)
    preprocessor = tf.saved_model.load(str(preprocessor_dir))
    firsts, seconds, labels = load_pairs(train, limit=examples)
    dataset = pair_dataset(
        preprocessor, firsts, seconds, labels, seq_length=seq_length, batch_size=batch_size
    )
    model, encoder, head = build_classifier(encoder_dir, num_labels=len(LABELS))
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    before = [w.numpy().copy() for w in encoder.trainable_weights]
    loss_before = model.evaluate(dataset, verbose=0)[0]
    # The dataset shuffles itself (Keras ignores fit's shuffle for datasets).
    model.fit(dataset, epochs=epochs, shuffle=False, verbose=2)
    loss_after = model.evaluate(dataset, verbose=0)[0]
    unchanged = [
        w.name
        for old, w in zip(before, encoder.trainable_weights, strict=True)
        if np.array_equal(old, w.numpy())
    ]
    TfHubCheckpointWriter(source_checkpoint=checkpoint).write_classifier(
        encoder=encoder.saved_model,
        kernel=head.kernel.numpy(),
        bias=head.bias.numpy(),
        labels=LABELS,
        output=output,
    )
    return {
        "model": model,
        "preprocessor": preprocessor,
        "loss_before": loss_before,
        "loss_after": loss_after,
        "encoder_weights_unchanged": unchanged,
        "encoder_weights": len(before),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="the source checkpoint")
    parser.add_argument("--preprocessor", type=Path, required=True, help="preprocessing export")
    parser.add_argument("--encoder", type=Path, required=True, help="encoder export")
    parser.add_argument("--train", type=Path, required=True, help="STS-B CSV")
    parser.add_argument("--output", type=Path, required=True, help="checkpoint dir to write")
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seq-length", type=int, default=64)
    args = parser.parse_args(argv)
    result = finetune(
        checkpoint=args.checkpoint,
        preprocessor_dir=args.preprocessor,
        encoder_dir=args.encoder,
        train=args.train,
        output=args.output,
        examples=args.examples,
        epochs=args.epochs,
        seq_length=args.seq_length,
    )
    changed = result["encoder_weights"] - len(result["encoder_weights_unchanged"])
    print(
        f"training loss {result['loss_before']:.4f} -> {result['loss_after']:.4f}; "
        f"{changed}/{result['encoder_weights']} encoder weights changed; wrote {args.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
