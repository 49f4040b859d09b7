"""TF Hub preprocessing exports (``--export-type preprocessing``) of a tiny BERT (the bundled
MiniLM's real tokenizer): every documented call against the Hugging Face tokenizer, the
preprocessor feeding the encoder inside ``tf.data``, and docs/tfhub.md's examples."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer's ops for loading)
import torch
import transformers

from models import contract
from tests.support.data import REPO_ROOT
from tests.support.tfhub import import_tensorflow_hub
from tests.support.tfhub_exports import tfhub_export

TEXTS = [
    "The movie was surprisingly good.",
    "Straße İstanbul ＡＢＣ café ΣΊΣΥΦΟΣ",
    "[MASK] literal [SEP] tokens",
    "",
    "word " * 300,  # longer than seq_length: truncated
]
SECONDS = ["Is it?", "a b c " * 40, "", "x", "word " * 100]
NAMES = (contract.INPUT_WORD_IDS, contract.INPUT_MASK, contract.INPUT_TYPE_IDS)
HF_NAMES = ("input_ids", "attention_mask", "token_type_ids")


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint: Callable[..., Path]) -> Path:
    return tiny_checkpoint("base")


@pytest.fixture(scope="module")
def paths(
    checkpoint: Path, tiny_checkpoint: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    root = tmp_path_factory.getbasetemp()
    return {
        "hub/preprocessing/1": tfhub_export(
            checkpoint=checkpoint, export_type=contract.EXPORT_PREPROCESSING, root=root
        ),
        "hub/encoder/1": tfhub_export(
            checkpoint=checkpoint, export_type=contract.EXPORT_ENCODER, root=root
        ),
        "hub/encoder_mlm/1": tfhub_export(
            checkpoint=tiny_checkpoint("masked_lm", seed=3),
            export_type=contract.EXPORT_ENCODER_WITH_MLM,
            root=root,
        ),
    }


@pytest.fixture(scope="module")
def preprocessor(paths: dict[str, Path]) -> Any:
    return tf.saved_model.load(str(paths["hub/preprocessing/1"]))


@pytest.fixture(scope="module")
def reference(checkpoint: Path) -> transformers.PreTrainedTokenizerBase:
    return transformers.AutoTokenizer.from_pretrained(str(checkpoint))


def _assert_same(ours: dict, theirs: dict) -> None:
    for name, hf_name in zip(NAMES, HF_NAMES, strict=True):
        assert ours[name].dtype == tf.int32
        np.testing.assert_array_equal(ours[name].numpy(), theirs[hf_name], err_msg=name)


def test_call_pads_to_seq_length_128(preprocessor: Any, reference: Any) -> None:
    ours = preprocessor(tf.constant(TEXTS))
    theirs = reference(
        TEXTS, truncation=True, max_length=128, padding="max_length", return_tensors="np"
    )
    assert ours[contract.INPUT_WORD_IDS].shape == (len(TEXTS), 128)
    _assert_same(ours, theirs)


def test_tokenize_and_special_tokens(preprocessor: Any, reference: Any) -> None:
    tokens = preprocessor.tokenize(tf.constant(TEXTS))
    assert isinstance(tokens, tf.RaggedTensor) and tokens.ragged_rank == 1
    assert tokens.dtype == tf.int32
    expected = reference(TEXTS, add_special_tokens=False)["input_ids"]
    assert tokens.to_list() == expected
    special = preprocessor.tokenize.get_special_tokens_dict()
    assert {key: int(value) for key, value in special.items()} == {
        contract.VOCAB_SIZE: len(reference),
        contract.PADDING_ID: reference.pad_token_id,
        contract.START_OF_SEQUENCE_ID: reference.cls_token_id,
        contract.END_OF_SEGMENT_ID: reference.sep_token_id,
        contract.MASK_ID: reference.mask_token_id,
    }


def _one_token_per_word(tokens: tf.RaggedTensor) -> tf.RaggedTensor:
    """The same ids as ragged rank 2 ``[batch, (words), (tokens)]``."""
    words = tf.RaggedTensor.from_row_lengths(
        tokens.flat_values, tf.ones_like(tokens.flat_values, tf.int64)
    )
    return tokens.with_flat_values(words)


@pytest.mark.parametrize("seq_length", [16, 64, None], ids=["16", "64", "default"])
@pytest.mark.parametrize("ragged_rank", [1, 2])
def test_bert_pack_inputs_matches_the_reference(
    preprocessor: Any, reference: Any, seq_length: int | None, ragged_rank: int
) -> None:
    pack = preprocessor.bert_pack_inputs
    first = preprocessor.tokenize(tf.constant(TEXTS))
    second = preprocessor.tokenize(tf.constant(SECONDS))
    if ragged_rank == 2:
        first, second = _one_token_per_word(first), _one_token_per_word(second)
    kwargs = {} if seq_length is None else {"seq_length": seq_length}
    width = seq_length or 128
    options = {"truncation": True, "max_length": width, "padding": "max_length"}
    single = pack([first], **kwargs)
    _assert_same(single, reference(TEXTS, return_tensors="np", **options))
    # Pairs that overflow are truncated longest-first, as the reference tokenizer does.
    pair = pack([first, second], **kwargs)
    theirs = reference(TEXTS, SECONDS, return_tensors="np", **options)
    _assert_same(pair, theirs)


def test_untraced_seq_length_is_refused(preprocessor: Any) -> None:
    tokens = preprocessor.tokenize(tf.constant(["a"]))
    with pytest.raises(ValueError, match="Could not find matching concrete function"):
        preprocessor.bert_pack_inputs([tokens], seq_length=17)


def test_preprocessor_attributes(preprocessor: Any, checkpoint: Path) -> None:
    for name in (
        contract.ATTR_VARIABLES,
        contract.ATTR_TRAINABLE_VARIABLES,
        contract.ATTR_REGULARIZATION_LOSSES,
    ):
        assert list(getattr(preprocessor, name)) == []
    vocab_file = preprocessor.vocab_file.asset_path.numpy().decode()
    assert Path(vocab_file).read_bytes() == (checkpoint / "vocab.txt").read_bytes()
    assert bool(preprocessor.do_lower_case.numpy()) is True


@pytest.mark.parametrize("order", ["batch_then_map", "map_then_batch"])
def test_preprocessor_feeds_the_encoder_in_tf_data(
    paths: dict[str, Path], preprocessor: Any, checkpoint: Path, reference: Any, order: str
) -> None:
    encoder = tf.saved_model.load(str(paths["hub/encoder/1"]))
    texts = tf.data.Dataset.from_tensor_slices(TEXTS)
    if order == "batch_then_map":
        batches = texts.batch(2).map(preprocessor)
    else:
        batches = texts.map(
            lambda text: {k: v[0] for k, v in preprocessor(tf.reshape(text, [1])).items()}
        ).batch(2)
    pooled = np.concatenate([encoder(batch)[contract.POOLED_OUTPUT].numpy() for batch in batches])
    batch = reference(
        TEXTS, truncation=True, max_length=128, padding="max_length", return_tensors="pt"
    )
    model = transformers.BertModel.from_pretrained(str(checkpoint)).eval()
    with torch.no_grad():
        expected = model(**batch).pooler_output.numpy()
    np.testing.assert_allclose(pooled, expected, atol=1e-5, rtol=0)


def test_docs_tfhub_examples_run(paths: dict[str, Path]) -> None:
    """docs/tfhub.md's ``python tfhub-example`` blocks, in order in one namespace."""
    doc = (REPO_ROOT / "docs" / "tfhub.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python tfhub-example\n(.*?)^```", doc, re.MULTILINE | re.DOTALL)
    assert len(blocks) >= 6
    import_tensorflow_hub()  # the Keras 2 block imports tensorflow_hub
    namespace: dict[str, Any] = {}
    for code in blocks:
        for placeholder, path in paths.items():
            code = code.replace(f'"{placeholder}"', repr(str(path)))
        exec(compile(code, "docs/tfhub.md", "exec"), namespace)  # noqa: S102
    # The blocks computed what they say they do.
    assert namespace["encoder_inputs"][contract.INPUT_WORD_IDS].shape == (2, 128)
    assert namespace["mlm"][contract.MLM_LOGITS].shape[:2] == (1, 1)
    masked = namespace["masked"][contract.INPUT_WORD_IDS].numpy()
    assert masked[0, 6] == 103  # the documented position holds [MASK]
    assert len(namespace["classifier"].trainable_weights) == 39 + 2
    assert len(namespace["layer"].trainable_weights) == 39


def test_preprocessor_on_a_byte_level_bpe_tokenizer(tmp_path: Path) -> None:
    """The preprocessor is built on the shared tokenizer surface: a RoBERTa-style byte-level
    BPE (<s> a </s></s> b </s>, no token types) works the same way, id for id."""
    from models.export.tfhub_preprocessor import TfHubPreprocessor, check_preprocessor_parity
    from models.tokenizers import text_tokenizer_from_checkpoint
    from tests.support.byte_level_bpe_checkpoint import write_roberta_checkpoint

    checkpoint = write_roberta_checkpoint(tmp_path / "roberta")
    tokenizer = text_tokenizer_from_checkpoint(checkpoint, max_seq_length=64, pad_to_longest=True)
    module = TfHubPreprocessor(tokenizer=tokenizer, seq_length=32, max_seq_length=64)
    module.trace()
    tf.saved_model.save(module, str(tmp_path / "saved"))
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    checked = check_preprocessor_parity(
        loaded, checkpoint, texts=TEXTS, pairs=(TEXTS, SECONDS), seq_length=32
    )
    assert checked == 2 * len(TEXTS)
    assert loaded(tf.constant(TEXTS))[contract.INPUT_WORD_IDS].shape == (len(TEXTS), 32)
    special = loaded.tokenize.get_special_tokens_dict()
    assert int(special[contract.START_OF_SEQUENCE_ID]) == tokenizer.template.start_of_sequence_id
    assert int(special[contract.MASK_ID]) == tokenizer.mask_id
