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

from tests.support.families import (  # noqa: E402
    FAMILY_CASES,
    TASK_CLASSES,
    TASK_OF,
    TEXT_FAMILIES,
    FamilyCheckpoints,
    text_parity,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="STS-B sentence pairs")
    args = parser.parse_args()
    checkpoints = FamilyCheckpoints(Path(tempfile.mkdtemp(prefix="family-parity-")))
    print("| family | " + " | ".join(TASK_OF[k] for k in TASK_CLASSES) + " |")
    print("| --- |" + " ---: |" * len(TASK_CLASSES))
    for name in TEXT_FAMILIES:
        case, tokenizer = FAMILY_CASES[name], checkpoints.tokenizer(name)
        cells = []
        for kind in TASK_CLASSES:
            directory, model = checkpoints.checkpoint(name, kind)
            diff = text_parity(case, directory, model, TASK_OF[kind], tokenizer, count=args.count)
            cells.append(f"{diff:.1e}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
