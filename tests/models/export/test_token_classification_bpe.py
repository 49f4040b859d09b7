"""Token classification over byte-level BPE (RoBERTa): entity words are decoded in the graph
with tokenizers' ByteLevel decoder (characters back to bytes, UTF-8 with U+FFFD), as
transformers' pipeline decodes them with ``convert_tokens_to_string``."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer's ops for loading)
import torch
import transformers
from tokenizers import decoders

from models import contract
from models.export.entity_grouper import EntityGrouper
from models.export.export_verification import check_entity_parity
from models.export.exporter import export_model
from models.export.reference import TorchReference
from models.probe_texts import PROBE_TEXTS
from models.tokenizers.bpe.byte_level_bpe_tables import byte_level_alphabet
from models.tokenizers.bpe.byte_level_bpe_tokenizer import ByteLevelBpeTokenizer
from models.tokenizers.errors import UnsupportedTokenizerError
from models.tokenizers.token_decoder import TokenDecoder
from tests.support.byte_level_bpe_checkpoint import (
    edited_checkpoint,
    write_english_alphabet_checkpoint,
)
from tests.support.entity_inputs import reference_grouper_inputs
from tests.support.families import FAMILY_CASES, bpe_tokenizer, perturbed_model, write_checkpoint

NER_LABELS = {0: "O", 1: "B-PER", 2: "I-PER"}
# Added to the random head's biases: mostly entities (few "O"), and enough I-PER that groups
# run over several tokens, so characters split across BPE tokens are joined again.
BIAS_SHIFT = (0.1, 0.0, 0.15)
ENTITY_TEXTS = [
    "  Straße İstanbul café naïve Zürich  ",  # leading/trailing spaces, accents
    "東京 and 北京 🇩🇪 😀 e\u0301!",  # CJK, emoji, a combining accent: bytes split over tokens
    "Hello, world. Isn't it nice? You're 're 've n't 's",  # what WordPiece's cleanup changes
    "My name is Wolfgang and I live in Berlin.",
    "The capital of France is <mask>. ＡＢＣ ☃",
    "tab\there\nnew line  double  spaces",
    "",
    " ",
]


def _ner_model(tokenizer: Any, *, bias_shift: tuple[float, ...] = BIAS_SHIFT) -> Any:
    model = perturbed_model(
        FAMILY_CASES["roberta"], "token_classification", vocab_size=len(tokenizer)
    )
    model.config.id2label = dict(NER_LABELS)
    model.config.label2id = {label: index for index, label in NER_LABELS.items()}
    with torch.no_grad():
        model.classifier.bias += torch.tensor(bias_shift)
    return model


@pytest.fixture(scope="module")
def roberta_ner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    checkpoint = tmp_path_factory.mktemp("roberta_ner")
    return write_checkpoint(checkpoint, _ner_model(bpe_tokenizer(checkpoint)))


def test_roberta_export_has_the_pipelines_entity_words(roberta_ner: Path, tmp_path: Path) -> None:
    # The export's own verification compares the entities (words included) with the pipeline
    # on the probe texts; with WordPiece's rules it refused this checkpoint ("Ġ" vs " ").
    output = tmp_path / "ner" / "1"
    report = export_model(checkpoint=roberta_ner, output=output, progress=False)
    assert report.task == contract.TASK_TOKEN_CLASSIFICATION and report.verified
    card = json.loads((output / contract.MODEL_CARD_FILE).read_text(encoding="utf-8"))
    # (texts over max_seq_length are left out: the pipeline would split them into chunks)
    assert card["verification"]["entity_texts"] >= 190

    reference = TorchReference(roberta_ner, task=report.task, max_seq_length=128)
    loaded = tf.saved_model.load(str(output))
    texts = [*ENTITY_TEXTS, *PROBE_TEXTS[:40]]
    assert check_entity_parity(loaded, reference, texts=texts) == len(texts)
    # Not a vacuous comparison: many words outside ASCII, whole characters rebuilt from bytes
    # of several tokens as well as lone bytes read as U+FFFD, spaces kept where "Ġ" was.
    words = [entity["word"] for text in ENTITY_TEXTS for entity in reference.entities(text)]
    foreign = [word for word in words if not word.isascii()]
    assert len(foreign) >= 20
    assert sum("\ufffd" in word for word in foreign) >= 5
    assert {"ï", "İst", "fé"} <= set(words)  # "ï" is the two tokens "Ã" "¯" joined
    assert any(word.startswith(" ") for word in words)
    assert not any("Ġ" in word for word in words)


def test_byte_level_words_equal_the_tokenizers_decoder(tmp_path: Path) -> None:
    """Random groups of byte-level tokens, split UTF-8 sequences and invalid bytes included,
    and tokens outside the byte-level alphabet: the grouper's words equal tokenizers'
    ``decoders.ByteLevel().decode`` of each group's tokens."""
    alphabet = byte_level_alphabet()
    rng = random.Random(0)
    samples = ["é", "ï", "東", "京", "😀", "🇩🇪", " Zürich", "e\u0301", " ", "\n", "ab"]
    vocab = list(alphabet)
    for sample in samples:
        encoded = sample.encode()
        for cut in range(1, len(encoded) + 1):
            vocab += ["".join(alphabet[b] for b in encoded[:cut])]
            vocab += ["".join(alphabet[b] for b in encoded[cut:])] if cut < len(encoded) else []
    # Not all characters in the alphabet: the decoder keeps such a token's own UTF-8.
    vocab += ["café", "東京", "<mask>", "Ġ東", "\u0100\u0143"]
    vocab = list(dict.fromkeys(token for token in vocab if token))
    vocab_file = tmp_path / "vocab.txt"
    vocab_file.write_text("".join(token + "\n" for token in vocab), encoding="utf-8")

    rows = [[rng.randrange(len(vocab)) for _ in range(rng.randint(1, 12))] for _ in range(300)]
    opens = [[i == 0 or rng.random() < 0.3 for i in range(len(row))] for row in rows]
    width = max(len(row) for row in rows)
    ids = np.zeros((len(rows), width), np.int32)
    special = np.ones((len(rows), width), bool)
    probabilities = np.zeros((len(rows), width, 3), np.float32)
    for r, row in enumerate(rows):
        ids[r, : len(row)] = row
        special[r, : len(row)] = False
        probabilities[r, : len(row), 1] = [0.9 if o else 0.1 for o in opens[r]]  # B-PER
        probabilities[r, : len(row), 2] = [0.1 if o else 0.9 for o in opens[r]]  # I-PER
    grouper = EntityGrouper(
        id2label=list(NER_LABELS.values()),
        vocab_file=str(vocab_file),
        unk_id=-1,
        decoder=TokenDecoder(kind="ByteLevel"),
    )
    zeros = tf.zeros(ids.shape, tf.int64)
    ours = tf.function(grouper, autograph=False)(
        tf.fill([len(rows)], ""),
        tf.constant(ids),
        tf.constant(special),
        zeros,
        zeros,
        tf.constant(probabilities),
    )[contract.ENTITY_WORDS].numpy()

    reference = decoders.ByteLevel()
    compared = replaced = 0
    for r, row in enumerate(rows):
        groups: list[list[str]] = []
        for token_id, first in zip(row, opens[r], strict=True):
            if first:
                groups.append([])
            groups[-1].append(vocab[token_id])
        for g, tokens in enumerate(groups):
            expected = reference.decode(tokens)
            assert ours[r, g].decode() == expected, tokens
            compared += 1
            replaced += "\ufffd" in expected
    assert compared >= 600 and replaced >= 100


def test_unknown_bytes_read_as_the_pipeline_reads_them(tmp_path: Path) -> None:
    """A byte missing from the vocabulary becomes <unk>; the pipeline reads an unknown token
    as the text it covers and passes that through the ByteLevel decoder too: "ü" (two <unk>)
    reads as its char's byte 0xFC twice, invalid UTF-8, "東" (three <unk>, a char outside the
    byte-level alphabet) as itself three times."""
    checkpoint = write_english_alphabet_checkpoint(tmp_path / "english", unk_token="<unk>")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(checkpoint))
    # Next to no "O": the unknown tokens are entities' tokens.
    model = _ner_model(tokenizer, bias_shift=(-0.9, 0.0, 0.15)).eval()
    texts = ["Zürich café", " 東京 and naïve ", "plain words here"]
    pipeline = transformers.pipeline(
        "token-classification", model=model, tokenizer=tokenizer, aggregation_strategy="simple"
    )
    expected = [pipeline(text) for text in texts]
    vocab_file = tmp_path / "vocab.txt"
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    vocab_file.write_text("".join(token + "\n" for token in tokens), encoding="utf-8")
    grouper = EntityGrouper(
        id2label=list(NER_LABELS.values()),
        vocab_file=str(vocab_file),
        unk_id=tokenizer.unk_token_id,
        decoder=TokenDecoder(kind="ByteLevel"),
    )
    inputs = reference_grouper_inputs(tokenizer, model, texts)
    ours = tf.function(grouper, autograph=False)(*inputs)
    assert ours[contract.ENTITY_GROUPS].shape[1] == max(len(found) for found in expected)
    for row, entities in enumerate(expected):
        got = [
            (
                ours[contract.ENTITY_WORDS].numpy()[row, i].decode(),
                int(ours[contract.ENTITY_STARTS].numpy()[row, i]),
                int(ours[contract.ENTITY_ENDS].numpy()[row, i]),
            )
            for i in range(len(entities))
        ]
        assert got == [(e["word"], e["start"], e["end"]) for e in entities], texts[row]
    words = [entity["word"] for entities in expected for entity in entities]
    assert (inputs[1].numpy() == tokenizer.unk_token_id).sum() >= 10
    assert sum("\ufffd\ufffd" in word for word in words) >= 2
    assert any("東東東" in word for word in words)


def test_a_byte_level_bpe_with_another_decoder_is_refused(
    roberta_ner: Path, tmp_path: Path
) -> None:
    def edit(spec: dict[str, Any]) -> None:
        spec["decoder"] = {"type": "Fuse"}

    checkpoint = edited_checkpoint(roberta_ner, tmp_path / "fused", edit)
    tokenizer = ByteLevelBpeTokenizer.from_checkpoint(checkpoint, max_seq_length=32)
    with pytest.raises(UnsupportedTokenizerError, match="reproduced only as ByteLevel") as info:
        tokenizer.token_decoder  # noqa: B018  (the property is what refuses)
    assert "\n" not in str(info.value)
