"""In-process: the exported SavedModel side by side with ONNX Runtime and sentence-transformers.

One run, one process, the same 2,758 stsb-en-test sentences for every system:

    python tests/benchmarks/bench_inprocess.py                   # exports the bundled model first
    python tests/benchmarks/bench_inprocess.py --model exported/minilm/1 --baseline old/minilm/1

Systems (text in, L2-normalized mean-pooled embedding out, each with its own tokenizer):

- **textserve SavedModel**: ``serving_default`` of the export (in-graph tokenizer, encoder,
  pooling in one TF call), run as textserve-server's worker runs it: through a TF Session
  (``serving/signature_runner.py``) with ``--threads server``, the default: one TF intra-op
  thread, each batch split into one part per core run in parallel
  (``serving/sub_batches.py``), or in one call with TensorFlow's default threads
  (``--threads tf-default``; TF's thread pools are per process, so one run measures one);
- **ONNX Runtime**: a plain ``torch.onnx`` export of the same checkpoint (opset 17,
  ``ORT_ENABLE_ALL``, intra-op threads = cores), the HF fast tokenizer, numpy pooling;
- **sentence-transformers** (PyTorch), ``encode(batch_size=32)``;
- optionally ``--baseline``: another export (e.g. one made before a change), to A/B it.

Modes: batches of 32 in file order (what a server sees) and length-sorted (what a caller that
sorts its corpus sees). Rounds are interleaved across systems (the machine may be shared) and
the table gives medians with the range. Every system's embeddings are compared with
sentence-transformers' (max abs diff, the exactness rule is 1e-5) and scored on STS-B
(Spearman x100, 82.03 for all-MiniLM-L6-v2). Then batch-1 latency (p50/p99 over 300 texts)
and the ratio to the arithmetic limit (measured matmul peak / FLOPs per sentence).
``--sweep`` adds the SavedModel at batch 1/8/64. Not a test: figures vary with the machine
and its load; the load average is printed with them.
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

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from serving.signature_runner import SignatureRunner  # noqa: E402
from serving.sub_batches import SubBatches  # noqa: E402
from tests.support.data import STSB_EN  # noqa: E402

Encode = Callable[[list[str]], np.ndarray]


def load_stsb() -> tuple[list[str], list[float]]:
    with STSB_EN.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    return [r[0] for r in rows] + [r[1] for r in rows], [float(r[2]) for r in rows]


def spearman(embeddings: np.ndarray, gold: Sequence[float]) -> float:
    from scipy.stats import spearmanr

    n = len(gold)
    a, b = embeddings[:n], embeddings[n:]
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return round(float(spearmanr(cosine, gold).statistic) * 100, 2)


def _run(
    encode: Encode, texts: list[str], order: list[int], batch: int
) -> tuple[float, np.ndarray]:
    """Sentences/s over the whole corpus in ``order``, and the embeddings in corpus order."""
    batches = [order[start : start + batch] for start in range(0, len(order), batch)]
    out: np.ndarray | None = None
    started = time.perf_counter()
    for index in batches:
        embeddings = encode([texts[i] for i in index])
        if out is None:
            out = np.zeros((len(texts), embeddings.shape[1]), np.float32)
        out[index] = embeddings
    assert out is not None
    return len(texts) / (time.perf_counter() - started), out


def savedmodel_encoder(path: Path, parts: SubBatches) -> Encode:
    import tensorflow as tf

    # What the worker runs: one Session per version, the parts' threads from ``parts``.
    runner = SignatureRunner.load(tf, str(path), intra_op=parts.threads, inter_op=0)

    def call(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return runner.run("serving_default", inputs)

    def encode(texts: list[str]) -> np.ndarray:
        text = np.array([t.encode() for t in texts], dtype=object)
        return parts.run(call, {"text": text}, splittable=True)["embedding"]

    return encode


def _onnx_runtime(checkpoint: Path, workdir: Path) -> Encode:
    import onnxruntime as ort
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(checkpoint))
    model = transformers.AutoModel.from_pretrained(str(checkpoint)).eval()
    path = workdir / "model.onnx"
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
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = os.cpu_count() or 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

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


def _sentence_transformers(checkpoint: Path) -> Encode:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(checkpoint), device="cpu")

    def encode(texts: list[str]) -> np.ndarray:
        return model.encode(texts, batch_size=len(texts), convert_to_numpy=True)

    return encode


def _matmul_peak(parallel: int) -> float:
    """FLOP/s of 1024^2 fp32 matmuls, ``parallel`` calls at once (one per part: with one
    intra-op thread, one call uses one core)."""
    from concurrent.futures import ThreadPoolExecutor

    import tensorflow as tf

    a = tf.random.normal([1024, 1024])
    matmul = tf.function(lambda x: tf.matmul(x, x))
    matmul(a).numpy()

    def ten() -> None:
        for _ in range(10):
            result = matmul(a)
        result.numpy()

    best = 0.0
    with ThreadPoolExecutor(parallel) as pool:
        for _ in range(5):
            started = time.perf_counter()
            list(pool.map(lambda _: ten(), range(parallel)))
            best = max(best, parallel * 10 * 2 * 1024**3 / (time.perf_counter() - started))
    return best


def _flops_per_sentence(token_counts: np.ndarray, layers: int, hidden: int, ffn: int) -> float:
    dense = 2 * layers * (4 * hidden * hidden + 2 * hidden * ffn)  # per token
    attention = 2 * layers * 2 * hidden  # per token pair: QK^T and PV
    return float(np.mean(token_counts * dense + token_counts**2 * attention))


def _latency(encode: Encode, texts: list[str]) -> tuple[float, float]:
    for text in texts[:20]:
        encode([text])
    times = []
    for text in texts[:300]:
        started = time.perf_counter()
        encode([text])
        times.append((time.perf_counter() - started) * 1000)
    p50, p99 = np.percentile(times, [50, 99])
    return float(p50), float(p99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="an exported version dir (default: export)")
    parser.add_argument("--baseline", type=Path, help="a second export to A/B against --model")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per mode")
    parser.add_argument("--sweep", action="store_true", help="also SavedModel batch 1/8/64")
    parser.add_argument(
        "--threads",
        choices=("server", "tf-default"),
        default="server",
        help="run the SavedModel as textserve-server's worker does, or in one call with TF's "
        "default thread pools",
    )
    args = parser.parse_args()

    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    parts = (
        SubBatches.for_tensorflow(tf)
        if args.threads == "server"
        else SubBatches(parts=1, threads=0)
    )
    threads = (
        f"server runtime: 1 intra-op thread, {parts.parts} parts"
        if args.threads == "server"
        else "one call, TF default threads"
    )

    from models.bundled import bundled_checkpoint
    from models.export.exporter import export_model

    checkpoint = bundled_checkpoint()
    texts, gold = load_stsb()
    workdir = Path(tempfile.mkdtemp(prefix="bench-inprocess-"))
    model_dir = args.model
    if model_dir is None:
        model_dir = workdir / "minilm" / "1"
        export_model(checkpoint=None, output=model_dir, verify=False, progress=False)

    ours = f"textserve SavedModel ({threads})"
    systems: dict[str, Encode] = {ours: savedmodel_encoder(model_dir, parts)}
    if args.baseline is not None:
        systems[f"baseline SavedModel ({args.baseline})"] = savedmodel_encoder(args.baseline, parts)
    systems["ONNX Runtime (plain export)"] = _onnx_runtime(checkpoint, workdir)
    systems["sentence-transformers"] = _sentence_transformers(checkpoint)

    preprocess = tf.saved_model.load(str(model_dir)).signatures["preprocess"]
    token_counts = preprocess(text=tf.constant(texts))["input_mask"].numpy().sum(1)
    file_order = list(range(len(texts)))
    sorted_order = sorted(file_order, key=lambda i: token_counts[i])

    rows = []
    for mode, order in (("length-sorted", sorted_order), ("file order", file_order)):
        for encode in systems.values():  # warm every shape once
            _run(encode, texts, order, 32)
        rates: dict[str, list[float]] = {name: [] for name in systems}
        outputs: dict[str, np.ndarray] = {}
        for _ in range(args.rounds):
            for name, encode in systems.items():
                rate, outputs[name] = _run(encode, texts, order, 32)
                rates[name].append(rate)
        for name in systems:
            rows.append((name, mode, rates[name], outputs[name]))
        print(f"{mode} done", file=sys.stderr)

    expected = next(out for name, _, _, out in rows if name == "sentence-transformers")
    latencies = {name: _latency(encode, texts) for name, encode in systems.items()}

    peak = _matmul_peak(parts.parts)
    limit = peak / _flops_per_sentence(
        token_counts.astype(np.float64), layers=6, hidden=384, ffn=1536
    )
    load = os.getloadavg()
    print(
        f"\nstsb-en-test: {len(texts)} sentences, mean {token_counts.mean():.1f} tokens "
        f"(max {token_counts.max()}), batches of 32, medians of {args.rounds} interleaved "
        f"rounds; {os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f}; "
        f"matmul peak {peak / 1e9:.0f} GFLOP/s -> arithmetic limit {limit:.0f} sentences/s\n"
    )
    print(
        "| system | mode | sentences/s (range) | x ONNX Runtime | % of limit "
        "| max abs diff vs sentence-transformers | Spearman x100 |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    ort_rate = {
        mode: float(np.median(r)) for name, mode, r, _ in rows if name.startswith("ONNX Runtime")
    }
    for name, mode, r, out in rows:
        rate = float(np.median(r))
        print(
            f"| {name} | {mode} | {rate:.0f} ({min(r):.0f}-{max(r):.0f}) "
            f"| {rate / ort_rate[mode]:.2f} | {100 * rate / limit:.0f}% "
            f"| {np.abs(out - expected).max():.1e} | {spearman(out, gold):.2f} |"
        )
    print("\n| system | batch-1 latency p50 ms | p99 ms |\n| --- | ---: | ---: |")
    for name, (p50, p99) in latencies.items():
        print(f"| {name} | {p50:.2f} | {p99:.2f} |")

    if args.sweep:
        print(f"\n| {ours} | file order | length-sorted |\n| --- | ---: | ---: |")
        for batch in (1, 8, 32, 64):
            cells = [
                _run(systems[ours], texts, order, batch)[0] for order in (file_order, sorted_order)
            ]
            print(f"| batch {batch} | {cells[0]:.0f} | {cells[1]:.0f} |")


if __name__ == "__main__":
    main()
