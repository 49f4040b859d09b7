"""Precision: the bundled model's float32 and bfloat16 exports side by side, in one run.

    python tests/benchmarks/bench_precision.py                 # exports both first
    python tests/benchmarks/bench_precision.py --fp32 exported/minilm/1 --bf16 exported/bf16/1

On the same 2,758 stsb-en-test sentences, for each export: max abs diff of its embeddings vs
sentence-transformers (PyTorch, float32), cosine similarity of each embedding to the float32
export's (min and mean), STS-B Spearman x100 (82.03 for all-MiniLM-L6-v2 in float32), and
in-process sentences/s over batches of 32 in file order and length-sorted (``serving_default``
run as textserve-server's worker runs it, like bench_inprocess.py; rounds interleaved, medians
with the range). Not a test: speed varies with the machine (bf16 needs bf16 units:
AMX/AVX512-BF16 on x86, any recent GPU) and its load, printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from serving.sub_batches import SubBatches  # noqa: E402
from tests.benchmarks.bench_inprocess import (  # noqa: E402
    _run,
    _sentence_transformers,
    load_stsb,
    savedmodel_encoder,
    spearman,
)

_BATCH = 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fp32", type=Path, help="a float32 export's version dir")
    parser.add_argument("--bf16", type=Path, help="a bfloat16 export's version dir")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per mode")
    args = parser.parse_args()

    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    # As textserve-server's worker runs a model (bench_inprocess.py's default).
    parts = SubBatches.for_tensorflow(tf)

    from models import contract
    from models.bundled import bundled_checkpoint
    from models.export.exporter import export_model

    workdir = Path(tempfile.mkdtemp(prefix="bench-precision-"))
    dirs = {contract.PRECISION_FLOAT32: args.fp32, contract.PRECISION_BFLOAT16: args.bf16}
    for precision, path in dirs.items():
        if path is None:
            dirs[precision] = workdir / precision / "1"
            # Unverified here: this script measures the parity itself, on more texts.
            export_model(
                checkpoint=None,
                output=dirs[precision],
                precision=precision,
                verify=False,
                progress=False,
            )
    texts, gold = load_stsb()
    systems = {precision: savedmodel_encoder(path, parts) for precision, path in dirs.items()}
    reference = _sentence_transformers(bundled_checkpoint())
    file_order = list(range(len(texts)))
    _, expected = _run(reference, texts, file_order, _BATCH)

    preprocess = tf.saved_model.load(str(dirs[contract.PRECISION_FLOAT32])).signatures["preprocess"]
    token_counts = preprocess(text=tf.constant(texts))["input_mask"].numpy().sum(1)
    sorted_order = sorted(file_order, key=lambda i: token_counts[i])
    rates: dict[tuple[str, str], list[float]] = {}
    outputs: dict[str, np.ndarray] = {}
    for mode, order in (("file order", file_order), ("length-sorted", sorted_order)):
        for encode in systems.values():  # warm every shape once
            _run(encode, texts, order, _BATCH)
        for _ in range(args.rounds):
            for precision, encode in systems.items():
                rate, outputs[precision] = _run(encode, texts, order, _BATCH)
                rates.setdefault((precision, mode), []).append(rate)
        print(f"{mode} done", file=sys.stderr)

    fp32 = outputs[contract.PRECISION_FLOAT32]
    print(
        f"\n{len(texts)} stsb-en-test sentences, batches of {_BATCH}, {args.rounds} interleaved "
        f"rounds, TF {tf.__version__} (server runtime: 1 intra-op thread, "
        f"{parts.parts} parts), load average "
        f"{os.getloadavg()[0]:.2f}; exports: " + ", ".join(f"{p} {d}" for p, d in dirs.items())
    )
    print(
        "\n| export | max abs diff vs sentence-transformers | cosine to fp32 min / mean "
        "| STS-B Spearman x100 | file order sentences/s | length-sorted sentences/s |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for precision, out in outputs.items():
        cosine = (out * fp32).sum(1) / (np.linalg.norm(out, axis=1) * np.linalg.norm(fp32, axis=1))
        speeds = []
        for mode in ("file order", "length-sorted"):
            values = rates[(precision, mode)]
            speeds.append(f"{np.median(values):.0f} ({min(values):.0f}-{max(values):.0f})")
        print(
            f"| {precision} | {np.abs(out - expected).max():.1e} "
            f"| {cosine.min():.6f} / {cosine.mean():.6f} | {spearman(out, gold):.2f} "
            f"| {speeds[0]} | {speeds[1]} |"
        )
    fp32_rates = {
        m: np.median(rates[(contract.PRECISION_FLOAT32, m)])
        for m in ("file order", "length-sorted")
    }
    bf16_rates = {m: np.median(rates[(contract.PRECISION_BFLOAT16, m)]) for m in fp32_rates}
    print(
        "\nbf16 / fp32 speed: "
        + ", ".join(f"{m} {bf16_rates[m] / fp32_rates[m]:.2f}x" for m in fp32_rates)
    )


if __name__ == "__main__":
    main()
