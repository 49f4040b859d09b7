"""In-process throughput of the exported SavedModel vs sentence-transformers and ONNX Runtime.

All on stsb-en-test (2,758 sentences), in one run, on this machine:

    python tests/benchmarks/bench_inprocess.py            # exports the bundled model first
    python tests/benchmarks/bench_inprocess.py --model exported/minilm/1

Prints sentences/s for the SavedModel (unsorted and length-sorted, batch 1/8/32/64; the default
export pads each batch to its longest row), the same model exported with the default length
buckets (batch 32, interleaved with the default export so both see the same load), an XLA
``jit_compile`` export, sentence-transformers (batch 32), ONNX Runtime (length-sorted
batches of 32), the SavedModel's batch-1 latency, Spearman x100 of each, and the ratio to the
arithmetic limit (measured matmul peak / FLOPs per sentence from the real token counts).
Not a test: numbers vary with the machine and its load.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
STSB_EN = REPO / "tests/data/stsb/stsb-en-test.csv"


def _load_stsb() -> tuple[list[str], list[float]]:
    with STSB_EN.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    return [r[0] for r in rows] + [r[1] for r in rows], [float(r[2]) for r in rows]


def _spearman(embeddings: np.ndarray, gold: Sequence[float]) -> float:
    from scipy.stats import spearmanr

    n = len(gold)
    a, b = embeddings[:n], embeddings[n:]
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return round(float(spearmanr(cosine, gold).statistic) * 100, 2)


def _run(
    encode: Callable[[list[str]], np.ndarray], texts: list[str], batch: int, *, order: list[int]
) -> tuple[float, np.ndarray]:
    out = np.zeros((len(texts), 384), np.float32)
    encode([texts[i] for i in order[:batch]])  # warm this shape
    started = time.perf_counter()
    for start in range(0, len(order), batch):
        index = order[start : start + batch]
        out[index] = encode([texts[i] for i in index])
    return len(texts) / (time.perf_counter() - started), out


def _matmul_peak() -> float:
    import tensorflow as tf

    a = tf.random.normal([1024, 1024])
    matmul = tf.function(lambda x: tf.matmul(x, x))
    matmul(a).numpy()
    best = 0.0
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(10):
            result = matmul(a)
        result.numpy()
        best = max(best, 10 * 2 * 1024**3 / (time.perf_counter() - started))
    return best


def _flops_per_sentence(token_counts: np.ndarray, layers: int, hidden: int, ffn: int) -> float:
    dense = 2 * layers * (4 * hidden * hidden + 2 * hidden * ffn)  # per token
    attention = 2 * layers * 2 * hidden  # per token pair: QK^T and PV
    return float(np.mean(token_counts * dense + token_counts**2 * attention))


def _onnx_runner(checkpoint: Path, workdir: Path) -> Callable[[list[str]], np.ndarray]:
    import onnxruntime as ort
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(checkpoint))
    model = transformers.AutoModel.from_pretrained(str(checkpoint)).eval()
    path = workdir / "minilm.onnx"
    sample = tokenizer(["hello world"], return_tensors="pt")
    axes = {0: "batch", 1: "seq"}

    class _Hidden(torch.nn.Module):  # keyword call: transformers 5 reorders positional args
        def __init__(self) -> None:
            super().__init__()
            self.bert = model

        def forward(
            self, ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor
        ) -> torch.Tensor:
            out = self.bert(
                input_ids=ids, attention_mask=mask, token_type_ids=types, use_cache=False
            )
            return out.last_hidden_state

    torch.onnx.export(
        _Hidden(),
        (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]),
        str(path),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["last_hidden_state"],
        dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes},
        opset_version=17,
        dynamo=False,
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def encode(texts: list[str]) -> np.ndarray:
        batch = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="np")
        feed = {
            k: batch[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")
        }
        hidden = session.run(None, feed)[0]
        mask = batch["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    return encode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="an exported version dir (default: export)")
    parser.add_argument("--skip-jit", action="store_true", help="no jit_compile export")
    parser.add_argument(
        "--skip-buckets", action="store_true", help="no export with the default length buckets"
    )
    args = parser.parse_args()

    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    from models.bundled import bundled_checkpoint
    from models.export.exporter import export_model

    checkpoint = bundled_checkpoint()
    texts, gold = _load_stsb()
    workdir = Path(tempfile.mkdtemp(prefix="bench-inprocess-"))
    model_dir = args.model
    if model_dir is None:
        model_dir = workdir / "minilm" / "1"
        export_model(checkpoint=None, output=model_dir, verify=False, progress=False)
    loaded = tf.saved_model.load(str(model_dir))
    serve = loaded.signatures["serving_default"]

    def ours(batch: list[str]) -> np.ndarray:
        return serve(text=tf.constant(batch))["embedding"].numpy()

    lengths = loaded.signatures["preprocess"](text=tf.constant(texts))["input_mask"]
    token_counts = lengths.numpy().sum(1)
    unsorted = list(range(len(texts)))
    by_length = sorted(unsorted, key=lambda i: token_counts[i])
    rows: list[tuple[str, float, float]] = []

    for batch in (1, 8, 32, 64):
        for name, order in (("unsorted", unsorted), ("length-sorted", by_length)):
            if batch == 1 and name == "length-sorted":
                continue
            rate, out = _run(ours, texts, batch, order=order)
            label = f"SavedModel batch {batch}" + ("" if batch == 1 else f", {name}")
            rows.append((label, rate, _spearman(out, gold)))
            print(f"{label}: {rate:.0f}/s", file=sys.stderr)

    if not args.skip_buckets:
        bucket_dir = workdir / "minilm-buckets" / "1"
        export_model(
            checkpoint=None,
            output=bucket_dir,
            verify=False,
            length_buckets="default",
            progress=False,
        )
        bucket_serve = tf.saved_model.load(str(bucket_dir)).signatures["serving_default"]

        def bucketed(batch: list[str]) -> np.ndarray:
            return bucket_serve(text=tf.constant(batch))["embedding"].numpy()

        # Interleaved with the default export, 3 rounds each, medians: the machine is shared.
        for name, order in (("unsorted", unsorted), ("length-sorted", by_length)):
            rates: dict[str, list[float]] = {"longest": [], "buckets": []}
            outs: dict[str, np.ndarray] = {}
            for _ in range(3):
                for padding, encode in (("buckets", bucketed), ("longest", ours)):
                    rate, outs[padding] = _run(encode, texts, 32, order=order)
                    rates[padding].append(rate)
            for padding, label in (
                ("longest", "padded to the longest row (default)"),
                ("buckets", "padded to default length buckets"),
            ):
                rate = float(np.median(rates[padding]))
                label = f"SavedModel batch 32, {name}, {label}, median of 3"
                rows.append((label, rate, _spearman(outs[padding], gold)))
                print(f"{rows[-1][0]}: {rate:.0f}/s", file=sys.stderr)

    latencies = []
    for text in texts[:500]:
        started = time.perf_counter()
        ours([text])
        latencies.append((time.perf_counter() - started) * 1000)

    if not args.skip_jit:
        jit_dir = workdir / "minilm-jit" / "1"
        export_model(
            checkpoint=None, output=jit_dir, verify=False, jit_compile=True, progress=False
        )
        jit_serve = tf.saved_model.load(str(jit_dir)).signatures["serving_default"]

        def ours_jit(batch: list[str]) -> np.ndarray:
            return jit_serve(text=tf.constant(batch))["embedding"].numpy()

        _run(ours_jit, texts, 32, order=by_length)  # compile every bucket first
        rate, out = _run(ours_jit, texts, 32, order=by_length)
        rows.append(("SavedModel jit_compile batch 32, length-sorted", rate, _spearman(out, gold)))

    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(checkpoint), device="cpu")
    st.encode(texts[:64], batch_size=32)
    started = time.perf_counter()
    out = st.encode(texts, batch_size=32, convert_to_numpy=True)
    rows.append(
        (
            "sentence-transformers batch 32",
            len(texts) / (time.perf_counter() - started),
            _spearman(out, gold),
        )
    )

    onnx = _onnx_runner(checkpoint, workdir)
    rate, out = _run(onnx, texts, 32, order=by_length)
    rows.append(("ONNX Runtime batch 32, length-sorted", rate, _spearman(out, gold)))

    peak = _matmul_peak()
    flops = _flops_per_sentence(token_counts.astype(np.float64), layers=6, hidden=384, ffn=1536)
    limit = peak / flops
    print(
        f"\nstsb-en-test: {len(texts)} sentences, mean {token_counts.mean():.1f} tokens "
        f"(max {token_counts.max()}); TF intra-op threads "
        f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default'}, "
        f"{os.cpu_count()} cores"
    )
    print(
        f"measured fp32 matmul peak {peak / 1e9:.0f} GFLOP/s; {flops / 1e6:.0f} MFLOP/sentence "
        f"-> arithmetic limit {limit:.0f} sentences/s\n"
    )
    print("| what | sentences/s | % of limit | Spearman x100 |\n| --- | --- | --- | --- |")
    for label, rate, spearman in rows:
        print(f"| {label} | {rate:.0f} | {100 * rate / limit:.0f}% | {spearman:.2f} |")
    p50, p99 = np.percentile(latencies, [50, 99])
    print(
        f"\nSavedModel batch-1 latency over {len(latencies)} sentences: "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    )


if __name__ == "__main__":
    main()
