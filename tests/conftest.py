"""Session fixtures shared by every test package.

Expensive artifacts are built once per session and lazily: a test that does not ask for the
exported model does not pay for TensorFlow, torch or the export.

- ``stsb_dir``: the STS-B test CSVs (11 languages) vendored in ``tests/data/stsb``.
- ``minilm_checkpoint``: the bundled sentence-transformers/all-MiniLM-L6-v2 checkpoint.
- ``exported_minilm``: a TF Serving model BASE directory holding version ``1`` of the bundled
  model, exported once per session WITH verification (token + output parity, op audit).
- ``tiny_checkpoint``: a factory of tiny random Hugging Face checkpoints (hidden 32, 2 layers,
  the bundled vocab.txt so the tokenizer is real), cached per session.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

# No model hub, ever: every checkpoint the tests use is a local directory.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# PyTorch's OpenMP threads spin while waiting; with servers, TF and torch sharing 2 cores that
# made the reference 5x slower (measured 8 vs 47 sentences/s). Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO_ROOT = Path(__file__).resolve().parents[1]
from tests.support.data import STSB_DIR  # noqa: E402

TINY_ID2LABEL = {0: "negative", 1: "neutral", 2: "positive"}
TINY_TOKEN_ID2LABEL = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC", 5: "MISC"}


@pytest.fixture(scope="session")
def stsb_dir() -> Path:
    path = STSB_DIR
    assert (path / "stsb-en-test.csv").is_file(), f"STS-B data missing in {path}"
    return path


@pytest.fixture(scope="session")
def minilm_checkpoint() -> Path:
    from models.bundled import bundled_checkpoint

    return bundled_checkpoint()


@pytest.fixture(scope="session")
def exported_minilm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """BASE dir with version ``1`` of the bundled MiniLM, exported with verification on."""
    from models.export.exporter import export_model

    base = tmp_path_factory.mktemp("exported") / "minilm"
    export_model(checkpoint=None, output=base / "1")
    return base


def _write_tiny_checkpoint(
    directory: Path,
    *,
    kind: str,
    weights_format: str,
    key_style: str,
    drop_keys: tuple[str, ...],
    id2label: dict[int, str] | None,
    problem_type: str | None,
    seed: int,
    perturbation: float,
) -> None:
    import shutil

    import torch
    import transformers
    from safetensors.torch import save_file

    from models.bundled import bundled_checkpoint

    vocab_file = bundled_checkpoint() / "vocab.txt"
    vocab_size = len(vocab_file.read_text(encoding="utf-8").splitlines())
    extra = {}
    if id2label is not None:
        extra = {"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}
    if problem_type is not None:
        extra["problem_type"] = problem_type
    config = transformers.BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=128,
        **extra,
    )
    torch.manual_seed(seed)
    model_class = {
        "masked_lm": transformers.BertForMaskedLM,
        "pretraining": transformers.BertForPreTraining,
        "classification": transformers.BertForSequenceClassification,
        "base": transformers.BertModel,
        "token_classification": transformers.BertForTokenClassification,
        "question_answering": transformers.BertForQuestionAnswering,
    }[kind]
    model = model_class(config).eval()
    # Random init leaves LayerNorm at 1/0 and biases at 0; perturb them so a weight that is not
    # loaded (or loaded into the wrong place) shows in the outputs.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                param.add_(torch.randn_like(param) * perturbation)
    model.save_pretrained(directory)
    shutil.copy(vocab_file, directory / "vocab.txt")
    transformers.BertTokenizer.from_pretrained(str(directory)).save_pretrained(directory)
    if weights_format == "safetensors" and key_style == "default" and not drop_keys:
        return
    # Rewrite the weights the way older or foreign tools wrote them.
    (directory / "model.safetensors").unlink()
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    renamed = {}
    for key, value in state.items():
        if key_style in ("gamma_beta", "gamma_beta_no_prefix") and "LayerNorm" in key:
            key = key.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
                "LayerNorm.bias", "LayerNorm.beta"
            )
        if key_style in ("no_prefix", "gamma_beta_no_prefix"):
            key = key.removeprefix("bert.")
        renamed[key] = value
    for key in drop_keys:
        del renamed[key]
    if weights_format == "bin":
        torch.save(renamed, directory / "pytorch_model.bin")
    else:
        # safetensors refuses shared storage; the tied decoder is written as its own copy.
        save_file({k: v.clone() for k, v in renamed.items()}, str(directory / "model.safetensors"))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Factory: ``tiny_checkpoint(kind, weights_format=..., key_style=..., drop_keys=...)``.

    ``kind``: ``masked_lm`` | ``classification`` (id2label negative/neutral/positive) | ``base``
    | ``token_classification`` (BIO labels PER/LOC and a bare MISC) | ``question_answering``
    | ``pretraining`` (BertForPreTraining: MLM and NSP heads).
    ``weights_format``: ``safetensors`` | ``bin`` (pytorch_model.bin via torch.save).
    ``key_style``: ``default`` | ``gamma_beta`` | ``no_prefix`` | ``gamma_beta_no_prefix``.
    ``labels``: the classification labels instead (one: a single-logit reranker);
    ``perturbation``: scale of the noise added to LayerNorms and biases.
    Checkpoints are cached for the session by their arguments.
    """
    cache: dict[tuple[object, ...], Path] = {}

    def make(
        kind: str,
        *,
        weights_format: str = "safetensors",
        key_style: str = "default",
        drop_keys: tuple[str, ...] = (),
        problem_type: str | None = None,
        seed: int = 0,
        labels: tuple[str, ...] | None = None,
        perturbation: float = 0.1,
    ) -> Path:
        args = (
            kind,
            weights_format,
            key_style,
            tuple(drop_keys),
            problem_type,
            seed,
            labels,
            perturbation,
        )
        if args not in cache:
            directory = tmp_path_factory.mktemp(f"tiny_{kind}_{weights_format}_{key_style}")
            _write_tiny_checkpoint(
                directory,
                kind=kind,
                weights_format=weights_format,
                key_style=key_style,
                drop_keys=tuple(drop_keys),
                id2label=dict(enumerate(labels))
                if labels is not None
                else {
                    "classification": TINY_ID2LABEL,
                    "token_classification": TINY_TOKEN_ID2LABEL,
                }.get(kind),
                problem_type=problem_type,
                seed=seed,
                perturbation=perturbation,
            )
            cache[args] = directory
        return cache[args]

    return make
