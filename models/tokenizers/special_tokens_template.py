"""Where a reference tokenizer puts its special tokens and type ids around one or two segments.

Read from the reference's post-processor (``tokenizer.json``'s ``post_processor``:
TemplateProcessing, BertProcessing, RobertaProcessing, alone or inside a ``Sequence``) by
BEHAVIOUR: the processor is run on two probe segments and the result is read back through
``sequence_ids``, so every processor type that yields the same layout yields the same template,
and a layout the packer cannot express is refused instead of drifting.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from models.tokenizers.errors import UnsupportedTokenizerError

# What the model input names must contain for the model to read type ids at all.
_TOKEN_TYPE_IDS = "token_type_ids"


@dataclasses.dataclass(frozen=True)
class SpecialTokens:
    """A run of special tokens and the type id of each."""

    ids: tuple[int, ...] = ()
    type_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.type_ids):
            raise ValueError("every special token needs its type id")

    def __len__(self) -> int:
        return len(self.ids)


@dataclasses.dataclass(frozen=True)
class SpecialTokensTemplate:
    """``single_start A single_end`` and ``pair_start A pair_middle B pair_end``.

    Examples (ids of the bundled BERT vocabulary)::

        bert = SpecialTokensTemplate.bert(cls_id=101, sep_id=102)
        bert.describe()  # '[101] A [102] | [101] A [102] B:1 [102:1]'

    ``has_token_types`` is False for models that take no type ids (DistilBERT, RoBERTa, MPNet):
    all type ids are then 0, which is what those models' reference feeds (nothing, i.e. a
    model that ignores them) amounts to.
    """

    single_start: SpecialTokens
    single_end: SpecialTokens
    pair_start: SpecialTokens
    pair_middle: SpecialTokens
    pair_end: SpecialTokens
    single_type_id: int = 0
    first_type_id: int = 0
    second_type_id: int = 1
    has_token_types: bool = True

    def __post_init__(self) -> None:
        if not (self.single_start and self.single_end):
            # TF Hub's special-tokens dict names a start-of-sequence and an end-of-segment id.
            raise UnsupportedTokenizerError(
                f"special-token layout {self.describe()} has no start or no end token"
            )

    @classmethod
    def bert(cls, *, cls_id: int, sep_id: int) -> SpecialTokensTemplate:
        """``[CLS] A [SEP]`` and ``[CLS] A [SEP] B [SEP]`` with type ids 0 0 0 1 1."""
        return cls(
            single_start=SpecialTokens((cls_id,), (0,)),
            single_end=SpecialTokens((sep_id,), (0,)),
            pair_start=SpecialTokens((cls_id,), (0,)),
            pair_middle=SpecialTokens((sep_id,), (0,)),
            pair_end=SpecialTokens((sep_id,), (1,)),
        )

    @property
    def start_of_sequence_id(self) -> int:
        return self.single_start.ids[0]

    @property
    def end_of_segment_id(self) -> int:
        return self.single_end.ids[-1]

    def num_special_tokens(self, *, pair: bool) -> int:
        if pair:
            return len(self.pair_start) + len(self.pair_middle) + len(self.pair_end)
        return len(self.single_start) + len(self.single_end)

    def describe(self) -> str:
        """A one-line picture of both layouts: ids in brackets, ``:t`` marks type id t != 0."""

        def run(specials: SpecialTokens) -> str:
            parts = [
                f"{i}:{t}" if t else str(i)
                for i, t in zip(specials.ids, specials.type_ids, strict=True)
            ]
            return f"[{' '.join(parts)}]" if parts else ""

        def seg(name: str, type_id: int) -> str:
            return f"{name}:{type_id}" if type_id else name

        single = [run(self.single_start), seg("A", self.single_type_id), run(self.single_end)]
        pair = [
            run(self.pair_start),
            seg("A", self.first_type_id),
            run(self.pair_middle),
            seg("B", self.second_type_id),
            run(self.pair_end),
        ]
        return " ".join(p for p in single if p) + " | " + " ".join(p for p in pair if p)

    @classmethod
    def from_reference(cls, tokenizer: Any) -> SpecialTokensTemplate:
        """Derives the template from a loaded ``transformers`` fast tokenizer."""
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise UnsupportedTokenizerError(
                f"{type(tokenizer).__name__} is not a fast (tokenizers-backed) tokenizer"
            )
        name = _post_processor_name(json.loads(backend.to_str()).get("post_processor"))
        # A copy, because a saved tokenizer.json may carry padding/truncation settings that
        # would blur the layout.
        backend = type(backend).from_str(backend.to_str())
        backend.no_padding()
        backend.no_truncation()
        first, second = _probe_texts(backend)
        single_runs = _runs(backend, [first], name=name)
        pair_runs = _runs(backend, [first, second], name=name)
        has_token_types = _TOKEN_TYPE_IDS in getattr(tokenizer, "model_input_names", ())
        if not has_token_types:
            # The model takes no type ids; zeros are what an encoder with a token-type table
            # must see to equal the reference (which feeds none).
            single_runs = [_zero_types(run) for run in single_runs]
            pair_runs = [_zero_types(run) for run in pair_runs]
        if not (single_runs[0] and single_runs[2]):
            raise UnsupportedTokenizerError(
                f"post_processor {name} is not reproduced: its single-text layout has no start "
                "or no end token (TF Hub's start_of_sequence_id / end_of_segment_id)"
            )
        (single_start, single_type, single_end) = single_runs
        (pair_start, first_type, pair_middle, second_type, pair_end) = pair_runs
        return cls(
            single_start=single_start,
            single_end=single_end,
            pair_start=pair_start,
            pair_middle=pair_middle,
            pair_end=pair_end,
            single_type_id=single_type,
            first_type_id=first_type,
            second_type_id=second_type,
            has_token_types=has_token_types,
        )


def _zero_types(run: Any) -> Any:
    if isinstance(run, SpecialTokens):
        return SpecialTokens(run.ids, (0,) * len(run.ids))
    return 0


def _post_processor_name(spec: Any) -> str:
    """A short name for refusals, e.g. ``Sequence[ByteLevel, TemplateProcessing]``."""
    if spec is None:
        return "no post_processor"
    kind = spec.get("type", "?")
    if kind == "Sequence":
        return f"Sequence[{', '.join(_post_processor_name(p) for p in spec['processors'])}]"
    if kind == "TemplateProcessing":
        single = " ".join(
            item.get("SpecialToken", item.get("Sequence", {})).get("id", "?")
            for item in spec.get("single", [])
        )
        return f"TemplateProcessing({single!r})"
    return str(kind)


def _probe_texts(backend: Any) -> tuple[str, str]:
    """Two texts that encode to at least one token (any two vocabulary entries that do)."""
    found = []
    for token in sorted(backend.get_vocab(with_added_tokens=False)):
        if backend.encode(token, add_special_tokens=False).ids:
            found.append(token)
            if len(found) == 2:
                return found[0], found[1]
    raise UnsupportedTokenizerError("no vocabulary entry encodes to a token")


def _runs(backend: Any, texts: list[str], *, name: str) -> list[Any]:
    """Post-processes the segments and splits the result into [specials, type id of A,
    specials(, type id of B, specials)]; refuses any other shape.

    Content and specials are told apart by ``special_tokens_mask`` and the segments' known
    ids (``sequence_ids`` loses the first segment's marks in tokenizers 0.22).
    """
    # Fresh encodings: post_process marks the ones it is given.
    segments = [backend.encode(text, add_special_tokens=False) for text in texts]
    encoding = backend.post_process(
        *[backend.encode(text, add_special_tokens=False) for text in texts]
    )
    layout = " ".join(
        tok if special else "X"
        for tok, special in zip(encoding.tokens, encoding.special_tokens_mask, strict=True)
    )
    refusal = UnsupportedTokenizerError(
        f"post_processor {name} (layout {layout!r}) is not reproduced: only specials around "
        "the segments in order (start A end / start A middle B end) are"
    )
    items = list(zip(encoding.ids, encoding.type_ids, encoding.special_tokens_mask, strict=True))
    runs: list[Any] = []
    index = 0
    for segment in [*segments, None]:
        start = index
        while index < len(items) and items[index][2]:
            index += 1
        specials = items[start:index]
        runs.append(
            SpecialTokens(tuple(i for i, _, _ in specials), tuple(t for _, t, _ in specials))
        )
        if segment is None:
            break
        content = items[index : index + len(segment.ids)]
        if [i for i, _, _ in content] != segment.ids or any(special for _, _, special in content):
            raise refusal
        types = {t for _, t, _ in content}
        if len(types) != 1:
            raise refusal
        runs.append(types.pop())
        index += len(segment.ids)
    if index != len(items):
        raise refusal
    return runs
