"""The exported bundled MiniLM: layout, signatures, root attributes, warmup, model card, ops."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer's ops for loading)

from models import contract
from models.errors import ExportConfigError
from models.export.export_verification import audit_ops, graph_ops
from models.export.exporter import export_model

# Without jit_compile the export pads each batch to its longest row; the warmup requests still
# cover the default buckets' lengths.
WARMUP_LENGTHS = [16, 24, 32, 48, 64, 96, 128, 192, 256]


@pytest.fixture(scope="module")
def loaded(exported_minilm: Path) -> object:
    return tf.saved_model.load(str(exported_minilm / "1"))


def test_layout_is_tf_serving_base_version(exported_minilm: Path) -> None:
    assert [p.name for p in exported_minilm.iterdir()] == ["1"]
    version = exported_minilm / "1"
    assert (version / "saved_model.pb").is_file()
    assert (version / "variables").is_dir()
    assert (version / contract.WARMUP_FILE).is_file()
    assert (version / contract.MODEL_CARD_FILE).is_file()


def test_signatures_and_their_tensors(loaded: object) -> None:
    signatures = loaded.signatures  # type: ignore[attr-defined]
    assert set(signatures) == {
        contract.SERVING_DEFAULT,
        contract.SERVING_PAIR,
        contract.PREPROCESS,
        contract.ENCODE,
    }
    default = signatures[contract.SERVING_DEFAULT]
    assert set(default.structured_input_signature[1]) == {contract.TEXT}
    assert default.structured_outputs[contract.EMBEDDING].dtype == tf.float32
    assert set(signatures[contract.SERVING_PAIR].structured_input_signature[1]) == {
        contract.TEXT,
        contract.TEXT_PAIR,
    }
    ids = signatures[contract.PREPROCESS](text=tf.constant(["hello world", "a b c d"]))
    assert set(ids) == {contract.INPUT_WORD_IDS, contract.INPUT_MASK, contract.INPUT_TYPE_IDS}
    assert ids[contract.INPUT_WORD_IDS].dtype == tf.int32
    assert ids[contract.INPUT_WORD_IDS].numpy()[0, :4].tolist() == [101, 7592, 2088, 102]
    assert ids[contract.INPUT_WORD_IDS].shape == (2, 6)  # padded to the longest row
    encoded = signatures[contract.ENCODE](**ids)
    assert encoded[contract.SEQUENCE_OUTPUT].shape == (2, 6, 384)
    assert encoded[contract.ENCODER_OUTPUTS].shape == (6, 2, 6, 384)
    np.testing.assert_array_equal(
        encoded[contract.DEFAULT_OUTPUT].numpy(), encoded[contract.POOLED_OUTPUT].numpy()
    )
    np.testing.assert_array_equal(
        encoded[contract.ENCODER_OUTPUTS].numpy()[-1], encoded[contract.SEQUENCE_OUTPUT].numpy()
    )
    embedding = default(text=tf.constant(["hello world", "a b c d"]))[contract.EMBEDDING].numpy()
    assert embedding.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1.0, atol=1e-6)
    pair = signatures[contract.SERVING_PAIR](
        text=tf.constant(["hello world"]), text_pair=tf.constant(["a b c d"])
    )[contract.EMBEDDING].numpy()
    assert pair.shape == (1, 384) and np.abs(pair[0] - embedding[0]).max() > 1e-2


def test_root_attributes(loaded: object, minilm_checkpoint: Path) -> None:
    vocab_file = getattr(loaded, contract.ATTR_VOCAB_FILE).asset_path.numpy().decode()
    assert Path(vocab_file).read_bytes() == (minilm_checkpoint / "vocab.txt").read_bytes()
    assert bool(getattr(loaded, contract.ATTR_DO_LOWER_CASE).numpy()) is True
    assert int(getattr(loaded, contract.ATTR_MAX_SEQ_LENGTH).numpy()) == 256
    assert getattr(loaded, contract.ATTR_LENGTH_BUCKETS).numpy().tolist() == []


def test_warmup_records_cover_the_default_lengths(exported_minilm: Path, loaded: object) -> None:
    from tensorflow_serving.apis import prediction_log_pb2

    records = list(tf.data.TFRecordDataset(str(exported_minilm / "1" / contract.WARMUP_FILE)))
    assert 0 < len(records) <= contract.MAX_WARMUP_RECORDS
    preprocess = loaded.signatures[contract.PREPROCESS]  # type: ignore[attr-defined]
    lengths, batch_sizes = set(), set()
    for record in records:
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        assert request.model_spec.signature_name == contract.SERVING_DEFAULT
        assert set(request.inputs) == {contract.TEXT}
        texts = tf.make_ndarray(request.inputs[contract.TEXT])
        batch_sizes.add(len(texts))
        lengths.add(int(preprocess(text=tf.constant(texts))[contract.INPUT_WORD_IDS].shape[1]))
    assert lengths == set(WARMUP_LENGTHS)
    assert batch_sizes == {1, 8, 32}


def test_model_card(exported_minilm: Path) -> None:
    card = json.loads((exported_minilm / "1" / contract.MODEL_CARD_FILE).read_text())
    assert card["task"] == contract.TASK_EMBEDDING
    assert card["embedding_dim"] == 384 and card["output_dim"] == 384
    assert (card["pooling_mode"], card["normalize"]) == ("mean", True)
    assert card["max_seq_length"] == 256
    assert (card["length_buckets"], card["padding"]) == ([], "longest")
    assert card["skips_padding"] is True  # the server batches it without length grouping
    assert card["versions"]["tensorflow"].startswith("2.21.")
    assert card["versions"]["tensorflow_text"].startswith("2.21.")
    assert card["tf_text_ops"]["FastWordpieceTokenizeWithOffsets"] == "2.10"
    assert card["source"]["weights_loaded"] == 103  # 5 embeddings + 6 x 16 + 2 pooler
    verification = card["verification"]
    assert verification["max_abs_diff"] <= 1e-5 == verification["tolerance"]
    assert verification["token_texts"] >= 200 and verification["token_pairs"] >= 200


def test_op_audit_passes_and_lists_only_core_and_tf_text(exported_minilm: Path) -> None:
    ops, tf_text_ops = audit_ops(exported_minilm / "1")
    assert "FastWordpieceTokenizeWithOffsets" in ops
    assert not {"PyFunc", "EagerPyFunc", "PyFuncStateless"} & set(ops)
    assert set(ops) - set(dir(tf.raw_ops)) == set(tf_text_ops)
    assert set(ops) == graph_ops(exported_minilm / "1")


def test_refuses_to_overwrite_an_existing_version(exported_minilm: Path) -> None:
    before = sorted(p.name for p in (exported_minilm / "1").rglob("*"))
    with pytest.raises(ExportConfigError, match="exists and is not empty"):
        export_model(checkpoint=None, output=exported_minilm / "1")
    assert sorted(p.name for p in (exported_minilm / "1").rglob("*")) == before


@pytest.mark.parametrize("version", ["latest", "0", "v1"])
def test_output_must_be_a_numeric_version(tmp_path: Path, version: str) -> None:
    with pytest.raises(ExportConfigError, match="positive integer VERSION"):
        export_model(checkpoint=None, output=tmp_path / "model" / version)
    assert not (tmp_path / "model").exists()
