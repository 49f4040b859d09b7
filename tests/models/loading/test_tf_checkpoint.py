"""Google TF1 BERT and TF Model Garden TF2 checkpoints: converted, exported, and matched against
the Hugging Face model whose weights they were written from."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer's ops for loading)
import torch
import transformers

from models import contract
from models.errors import CheckpointError, MissingWeightsError
from models.export.export_cli import main as export_main
from models.export.exporter import export_model

# A Google release name: the checkpoint's case is known from it (uncased = lowercased).
UNCASED_DIR = "uncased_L-2_H-32_A-4"
TEXTS = ["The capital of France is [MASK].", "Straße İstanbul café [MASK] naïve", "a"]


@pytest.fixture(scope="module")
def hf_pretraining(
    tiny_checkpoint: Callable[..., Path],
) -> tuple[Path, dict[str, np.ndarray]]:
    """A tiny random BertForPreTraining (MLM + NSP heads) and its weights by Hugging Face key."""
    from safetensors.numpy import load_file

    directory = tiny_checkpoint("pretraining")
    weights = {
        k: v
        for k, v in load_file(str(directory / "model.safetensors")).items()
        if not k.startswith("cls.predictions.decoder.")  # tied: the word embeddings
    }
    return directory, weights


def _bert_config(hf_dir: Path) -> dict[str, object]:
    config = json.loads((hf_dir / "config.json").read_text())
    keys = (
        "attention_probs_dropout_prob", "hidden_act", "hidden_dropout_prob", "hidden_size",
        "initializer_range", "intermediate_size", "max_position_embeddings",
        "num_attention_heads", "num_hidden_layers", "type_vocab_size", "vocab_size",
    )  # fmt: skip
    return {k: config[k] for k in keys}  # what Google's bert_config.json holds


def _google_tf1_name(hf_key: str) -> tuple[str, bool]:
    """Google's TF1 variable name of a Hugging Face key (google-research/bert modeling.py and
    run_pretraining.py), and whether the tensor is transposed (TF kernels are [in, out])."""
    special = {
        "cls.predictions.bias": "cls/predictions/output_bias",
        "cls.seq_relationship.weight": "cls/seq_relationship/output_weights",
        "cls.seq_relationship.bias": "cls/seq_relationship/output_bias",
    }
    if hf_key in special:
        return special[hf_key], False
    name = hf_key.replace(".layer.", "/layer_").replace(".", "/")
    if "LayerNorm" in name:
        return name.replace("/weight", "/gamma").replace("/bias", "/beta"), False
    if "_embeddings/" in name:
        return name.removesuffix("/weight"), False
    return name.replace("/weight", "/kernel"), name.endswith("/weight")


def _write_tf1(
    directory: Path,
    hf_dir: Path,
    weights: dict[str, np.ndarray],
    *,
    drop: tuple[str, ...] = (),
    extra: dict[str, np.ndarray] | None = None,
) -> Path:
    """bert_config.json + bert_model.ckpt.* (tf.compat.v1 Saver) + vocab.txt, with Adam slots
    and global_step as run_pretraining.py leaves them."""
    directory.mkdir(parents=True)
    (directory / "bert_config.json").write_text(json.dumps(_bert_config(hf_dir)))
    shutil.copy(hf_dir / "vocab.txt", directory / "vocab.txt")
    graph = tf.Graph()
    with graph.as_default():
        for key, value in weights.items():
            name, transpose = _google_tf1_name(key)
            if name in drop:
                continue
            value = value.T if transpose else value
            tf.compat.v1.Variable(value, name=name)
            tf.compat.v1.Variable(np.zeros_like(value), name=f"{name}/adam_m")
            tf.compat.v1.Variable(np.zeros_like(value), name=f"{name}/adam_v")
        for name, value in (extra or {}).items():
            tf.compat.v1.Variable(value, name=name)
        tf.compat.v1.train.get_or_create_global_step()
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, str(directory / "bert_model.ckpt"), write_meta_graph=False)
    (directory / "checkpoint").unlink()  # Google's release tarballs ship without it
    return directory


def _write_model_garden(
    directory: Path, hf_dir: Path, weights: dict[str, np.ndarray], *, root: str = "encoder"
) -> Path:
    """A TF2 object-based checkpoint with TF Model Garden's keys for BertPretrainerV2.

    How the keys are known to be Model Garden's (github.com/tensorflow/models):
    - ``official/nlp/modeling/models/bert_pretrainer.py`` (BertPretrainerV2.checkpoint_items)
      checkpoints ``encoder=`` and ``masked_lm=``;
    - ``official/nlp/modeling/networks/bert_encoder.py`` builds the encoder with the Keras
      functional API, so Keras names its weighted layers ``layer_with_weights-N`` in creation
      order: word_embeddings (0), position_embedding (1), type_embeddings (2),
      ``embeddings/layer_norm`` (3), ``transformer/layer_%d`` (4..), ``pooler_transform``;
    - ``official/nlp/modeling/layers/transformer_encoder_block.py`` (build) names the block's
      attributes ``_attention_layer`` (a Keras MultiHeadAttention: ``_query_dense``,
      ``_key_dense``, ``_value_dense``, ``_output_dense`` EinsumDense kernels [hidden, heads,
      head_dim] / [heads, head_dim, hidden]), ``_attention_layer_norm``, ``_intermediate_dense``,
      ``_output_dense``, ``_output_layer_norm``;
    - ``official/nlp/modeling/layers/masked_lm.py`` (build): ``dense``, ``layer_norm`` and the
      weight ``output_bias/bias``, escaped ``output_bias.Sbias`` in checkpoint keys (as also
      read by transformers' convert_electra_original_tf2 scripts).
    """
    directory.mkdir(parents=True)
    (directory / "bert_config.json").write_text(json.dumps(_bert_config(hf_dir)))
    shutil.copy(hf_dir / "vocab.txt", directory / "vocab.txt")
    heads, hidden = 4, 32

    def module(**children: object) -> tf.Module:
        node = tf.Module()
        for name, child in children.items():
            setattr(node, name, child)
        return node

    def var(key: str, transform: Callable[[np.ndarray], np.ndarray] = lambda v: v) -> tf.Variable:
        return tf.Variable(transform(weights[key]))

    def dense(
        hf: str,
        kernel: Callable[[np.ndarray], np.ndarray] = lambda v: v.T,
        bias: Callable[[np.ndarray], np.ndarray] = lambda v: v,
    ) -> tf.Module:
        return module(kernel=var(f"{hf}.weight", kernel), bias=var(f"{hf}.bias", bias))

    def norm(hf: str) -> tf.Module:
        return module(gamma=var(f"{hf}.weight"), beta=var(f"{hf}.bias"))

    layers: dict[str, object] = {}
    for n, table in enumerate(("word", "position", "token_type")):
        layers[f"layer_with_weights-{n}"] = module(
            embeddings=var(f"bert.embeddings.{table}_embeddings.weight")
        )
    layers["layer_with_weights-3"] = norm("bert.embeddings.LayerNorm")
    for i in range(2):
        hf = f"bert.encoder.layer.{i}"
        attention = {
            f"_{part}_dense": dense(
                f"{hf}.attention.self.{part}",
                kernel=lambda v: v.T.reshape(hidden, heads, hidden // heads),
                bias=lambda v: v.reshape(heads, hidden // heads),
            )
            for part in ("query", "key", "value")
        }
        attention["_output_dense"] = dense(
            f"{hf}.attention.output.dense", kernel=lambda v: v.T.reshape(heads, -1, hidden)
        )
        layers[f"layer_with_weights-{4 + i}"] = module(
            _attention_layer=module(**attention),
            _attention_layer_norm=norm(f"{hf}.attention.output.LayerNorm"),
            _intermediate_dense=dense(f"{hf}.intermediate.dense"),
            _output_dense=dense(f"{hf}.output.dense"),
            _output_layer_norm=norm(f"{hf}.output.LayerNorm"),
        )
    layers["layer_with_weights-6"] = dense("bert.pooler.dense")
    masked_lm = module(
        dense=dense("cls.predictions.transform.dense"),
        layer_norm=norm("cls.predictions.transform.LayerNorm"),
        **{"output_bias/bias": var("cls.predictions.bias")},
    )
    optimizer = module(iter=tf.Variable(np.int64(1000)))
    if root == "encoder":
        checkpoint = tf.train.Checkpoint(
            encoder=module(**layers), masked_lm=masked_lm, optimizer=optimizer
        )
    else:
        checkpoint = tf.train.Checkpoint(model=module(**layers, masked_lm=masked_lm))
    checkpoint.save(str(directory / "ckpt"))
    return directory


def _hf_outputs(hf_dir: Path, texts: list[str]) -> tuple[dict[str, torch.Tensor], object]:
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(hf_dir))
    model = transformers.BertForPreTraining.from_pretrained(str(hf_dir)).eval()
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return dict(batch), model(**batch, output_hidden_states=True)


@pytest.fixture(scope="module")
def tf1_export(
    hf_pretraining: tuple[Path, dict[str, np.ndarray]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    hf_dir, weights = hf_pretraining
    checkpoint = _write_tf1(tmp_path_factory.mktemp("tf1") / UNCASED_DIR, hf_dir, weights)
    output = tmp_path_factory.mktemp("tf1_export") / "bert" / "1"
    # The exporter's own verification runs too (vs the staged checkpoint in PyTorch).
    report = export_model(checkpoint=checkpoint, output=output, top_k=3, progress=False)
    assert report.task == contract.TASK_FILL_MASK and report.verified and report.tied_decoder
    assert report.checkpoint == checkpoint
    return output


def test_tf1_fill_mask_matches_the_hugging_face_model(
    tf1_export: Path, hf_pretraining: tuple[Path, dict[str, np.ndarray]]
) -> None:
    batch, expected = _hf_outputs(hf_pretraining[0], TEXTS)
    loaded = tf.saved_model.load(str(tf1_export))
    ids = batch["input_ids"].numpy()
    positions = np.tile(np.arange(ids.shape[1], dtype=np.int32), (len(TEXTS), 1))
    ours = loaded.signatures[contract.MLM](
        input_word_ids=tf.constant(ids, tf.int32),
        input_mask=tf.constant(batch["attention_mask"].numpy(), tf.int32),
        input_type_ids=tf.constant(batch["token_type_ids"].numpy(), tf.int32),
        masked_lm_positions=tf.constant(positions),
    )[contract.MLM_LOGITS].numpy()
    # Every real position (the end-to-end encoder skips padding; logits there mean nothing).
    real = batch["attention_mask"].numpy().astype(bool)
    np.testing.assert_allclose(
        ours[real], expected.prediction_logits.numpy()[real], atol=1e-4, rtol=0
    )
    served = loaded.signatures[contract.SERVING_DEFAULT](text=tf.constant(TEXTS))
    first_mask = int(np.flatnonzero(ids[0] == 103)[0])  # [MASK] in the bundled vocab
    top = expected.prediction_logits[0, first_mask].topk(3).indices.tolist()
    assert served[contract.TOP_K_IDS].numpy()[0, 0].tolist() == top


def test_tf1_model_card_names_the_original_checkpoint(tf1_export: Path) -> None:
    card = json.loads((tf1_export / contract.MODEL_CARD_FILE).read_text())
    assert card["source"]["layout"] == "tf1"
    assert card["source"]["checkpoint"].endswith(UNCASED_DIR)
    assert card["source"]["weights_file"].endswith(f"{UNCASED_DIR}/bert_model.ckpt")
    assert card["source"]["architectures"] == ["BertForPreTraining"]
    assert card["do_lower_case"] is True
    # The NSP head is the one part of the checkpoint no fill-mask model reads.
    assert card["source"]["unexpected_keys_allowed"] == [
        "cls.seq_relationship.bias",
        "cls.seq_relationship.weight",
    ]


def test_model_garden_embedding_matches_the_hugging_face_model(
    hf_pretraining: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    hf_dir, weights = hf_pretraining
    checkpoint = _write_model_garden(tmp_path / "garden", hf_dir, weights)
    output = tmp_path / "garden_export" / "1"
    report = export_model(
        checkpoint=checkpoint,
        output=output,
        task=contract.TASK_EMBEDDING,
        do_lower_case=True,
        verify=False,  # checked below against the original model instead
        progress=False,
    )
    assert report.task == contract.TASK_EMBEDDING
    batch, expected = _hf_outputs(hf_dir, TEXTS)
    mask = batch["attention_mask"].numpy()[:, :, None]
    hidden = expected.hidden_states[-1].numpy()
    mean = (hidden * mask).sum(axis=1) / mask.sum(axis=1)
    loaded = tf.saved_model.load(str(output))
    ours = loaded.signatures[contract.SERVING_DEFAULT](text=tf.constant(TEXTS))
    np.testing.assert_allclose(ours[contract.EMBEDDING].numpy(), mean, atol=1e-5, rtol=0)
    pooled = loaded.signatures[contract.ENCODE](
        input_word_ids=tf.constant(batch["input_ids"].numpy(), tf.int32),
        input_mask=tf.constant(mask[:, :, 0], tf.int32),
        input_type_ids=tf.constant(batch["token_type_ids"].numpy(), tf.int32),
    )[contract.POOLED_OUTPUT].numpy()
    model = transformers.BertModel.from_pretrained(str(hf_dir)).eval()
    with torch.no_grad():
        reference = model(**batch).pooler_output.numpy()
    np.testing.assert_allclose(pooled, reference, atol=1e-5, rtol=0)
    card = json.loads((output / contract.MODEL_CARD_FILE).read_text())
    assert card["source"]["layout"] == "model_garden"


def test_model_garden_legacy_model_root_stages_every_weight(
    hf_pretraining: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    from safetensors.numpy import load_file

    from models.loading import open_checkpoint

    hf_dir, weights = hf_pretraining
    checkpoint = _write_model_garden(tmp_path / "garden", hf_dir, weights, root="model")
    with open_checkpoint(checkpoint, do_lower_case=True) as opened:
        assert opened.layout == "model_garden"
        staged = load_file(str(opened.model_dir / "model.safetensors"))
        staging = opened.model_dir
    assert not staging.exists()  # removed on exit
    # Everything but the NSP head (not written here) arrives bit for bit under its HF key.
    expected = {k: v for k, v in weights.items() if not k.startswith("cls.seq_relationship.")}
    assert sorted(staged) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(staged[key], value, err_msg=key)


def test_tf1_without_output_bias_is_refused_as_fill_mask(
    hf_pretraining: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    hf_dir, weights = hf_pretraining
    checkpoint = _write_tf1(
        tmp_path / UNCASED_DIR, hf_dir, weights, drop=("cls/predictions/output_bias",)
    )
    with pytest.raises(MissingWeightsError, match="cls/predictions/output_bias") as info:
        export_model(checkpoint=checkpoint, output=tmp_path / "out" / "1", progress=False)
    assert info.value.missing == ["cls/predictions/output_bias"]


def test_tf1_missing_encoder_weight_is_refused_by_name(
    hf_pretraining: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    hf_dir, weights = hf_pretraining
    dropped = "bert/encoder/layer_1/attention/self/key/kernel"
    checkpoint = _write_tf1(tmp_path / UNCASED_DIR, hf_dir, weights, drop=(dropped,))
    with pytest.raises(MissingWeightsError) as info:
        export_model(
            checkpoint=checkpoint, output=tmp_path / "out" / "1", task="embedding", progress=False
        )
    assert info.value.missing == [dropped]


def test_tf1_unused_weights_are_refused_by_name(
    hf_pretraining: tuple[Path, dict[str, np.ndarray]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hf_dir, weights = hf_pretraining
    # A run_classifier.py fine-tune keeps its classifier at the root: no label names, no config.
    extra = {
        "output_weights": np.zeros((2, 32), np.float32),
        "output_bias": np.zeros(2, np.float32),
    }
    checkpoint = _write_tf1(tmp_path / UNCASED_DIR, hf_dir, weights, extra=extra)
    code = export_main(
        ["--checkpoint", str(checkpoint), "--output", str(tmp_path / "out" / "1"), "--quiet"]
    )
    assert code == 2
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0
    assert "no exported model would read: output_bias, output_weights" in message


def test_tf_checkpoint_of_unknown_case_needs_do_lower_case(
    hf_pretraining: tuple[Path, dict[str, np.ndarray]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hf_dir, weights = hf_pretraining
    checkpoint = _write_tf1(tmp_path / "my_bert", hf_dir, weights)
    argv = ["--checkpoint", str(checkpoint), "--output", str(tmp_path / "out" / "1"), "--quiet"]
    assert export_main(argv) == 2
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and "pass --do-lower-case true|false" in message
    # A flag that contradicts Google's release name is refused too.
    renamed = checkpoint.rename(tmp_path / "cased_L-2_H-32_A-4")
    argv[1] = str(renamed)
    assert export_main([*argv, "--do-lower-case", "true"]) == 2
    assert "contradicts" in capsys.readouterr().err


def test_do_lower_case_is_refused_for_hugging_face_checkpoints(
    tiny_checkpoint: Callable[..., Path], tmp_path: Path
) -> None:
    with pytest.raises(CheckpointError, match="applies to TF checkpoints only"):
        export_model(
            checkpoint=tiny_checkpoint("base"),
            output=tmp_path / "out" / "1",
            do_lower_case=True,
            progress=False,
        )
