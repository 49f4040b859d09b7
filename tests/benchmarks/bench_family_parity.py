"""Max abs difference of every family x task against transformers (a script, not a test).

    python tests/benchmarks/bench_family_parity.py [--count 300]

For each BERT family (tiny random models: hidden 32, 2 layers (ALBERT: one shared layer
applied 4 times), LayerNorms and biases perturbed) and each task (embedding = mean pooling,
classification, fill-mask), the Keras encoder + head loaded strictly from the saved checkpoint
is fed the reference tokenizer's ids for PROBE_TEXTS and ``--count`` STS-B sentences, alone and
as pairs (fill-mask: a mask in every text, at most 100 sentences), next to PyTorch. Prints a
Markdown table of the max abs differences over real tokens (docs/families.md quotes it).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import transformers  # noqa: E402

from tests.models.albert.test_albert_encoder import CASES as ALBERT_CASES  # noqa: E402
from tests.models.distilbert.test_distilbert_encoder import DISTILBERT  # noqa: E402
from tests.models.electra.test_electra_encoder import CASES as ELECTRA_CASES  # noqa: E402
from tests.models.mpnet.test_mpnet_encoder import MPNET  # noqa: E402
from tests.models.roberta.test_roberta_encoder import ROBERTA, XLM_ROBERTA  # noqa: E402
from tests.support.families import (  # noqa: E402
    TASK_CLASSES,
    TASK_OF,
    bpe_tokenizer,
    perturbed_model,
    sentencepiece_tokenizer,
    text_parity,
    wordpiece_tokenizer,
    write_checkpoint,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="STS-B sentence pairs")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="family-parity-"))
    families = {
        "RoBERTa": (ROBERTA, lambda d: bpe_tokenizer(d)),
        "XLM-RoBERTa": (XLM_ROBERTA, lambda d: sentencepiece_tokenizer(d, family="xlm-roberta")),
        "DistilBERT": (
            DISTILBERT,
            lambda d: wordpiece_tokenizer(d, transformers.DistilBertTokenizer),
        ),
        "ELECTRA": (
            ELECTRA_CASES[16],
            lambda d: wordpiece_tokenizer(d, transformers.ElectraTokenizer),
        ),
        "ALBERT": (ALBERT_CASES[1, 1], lambda d: sentencepiece_tokenizer(d, family="albert")),
        "MPNet": (MPNET, lambda d: wordpiece_tokenizer(d, transformers.MPNetTokenizer)),
    }
    print("| family | " + " | ".join(TASK_OF[k] for k in TASK_CLASSES) + " |")
    print("| --- |" + " ---: |" * len(TASK_CLASSES))
    for name, (case, make_tokenizer) in families.items():
        tokenizer = make_tokenizer(root / name / "tokenizer")
        cells = []
        for kind in TASK_CLASSES:
            model = perturbed_model(case, kind, vocab_size=len(tokenizer))
            directory = write_checkpoint(root / name / kind, model)
            diff = text_parity(case, directory, model, TASK_OF[kind], tokenizer, count=args.count)
            cells.append(f"{diff:.1e}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
