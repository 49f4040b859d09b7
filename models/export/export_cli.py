"""``textserve-export``: export a BERT-family checkpoint as one end-to-end SavedModel.

A thin CLI over :func:`models.export.exporter.export_model`: it parses flags, calls it once,
and turns a :class:`models.errors.ModelError` into one line on stderr and exit code 2 (bad input:
checkpoint, flags, output path) or 1 (the export or its verification failed).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Literal

from models import contract

_DESCRIPTION = """\
Export a Hugging Face BERT-family checkpoint (config.json, vocab.txt, model.safetensors or
pytorch_model.bin; sentence-transformers layouts honoured), a Google TF1 BERT checkpoint
(bert_config.json, bert_model.ckpt.*, vocab.txt) or a TF Model Garden TF2 one as ONE
SavedModel that takes raw strings: the tokenizer runs inside the graph, then the encoder and
the task head. The result is served by TensorFlow Serving or textserve-server from BASE (the
parent of VERSION).

The export is verified by default: the saved model is loaded back and must match the reference
Hugging Face tokenizer token for token and the PyTorch model to 1e-5 (embeddings) / 1e-4
(logits) on a hard probe corpus; its graph must hold only TF core and tensorflow-text ops.
"""

_EPILOG = """\
examples:
  textserve-export --output exported/minilm/1          # the bundled all-MiniLM-L6-v2
  textserve-export --checkpoint ./my-bert-sst2 --output exported/sst2/1 --task classification
  textserve-export --checkpoint ./bert-base-uncased --output exported/mlm/3 \\
      --task fill-mask --top-k 10
  textserve-export --checkpoint ./uncased_L-12_H-768_A-12 --output exported/bert/1
  textserve-export --output exported/minilm-bf16/1 --precision bfloat16
  textserve-export --checkpoint ./bert-base-uncased --output hub/encoder/1 \\
      --export-type encoder-with-mlm                   # TF Hub encoder + encoder.mlm

exit codes: 0 exported; 1 export or verification failed; 2 bad checkpoint, flags or output.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="textserve-export",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--checkpoint",
        metavar="DIR",
        help="checkpoint directory or TF checkpoint prefix (default: the bundled "
        "sentence-transformers/all-MiniLM-L6-v2)",
    )
    parser.add_argument(
        "--output",
        metavar="BASE/VERSION",
        required=True,
        help="version directory to create, e.g. exported/minilm/1 (VERSION: positive integer)",
    )
    parser.add_argument(
        "--export-type",
        choices=contract.EXPORT_TYPES,
        default=contract.EXPORT_END_TO_END,
        help="end-to-end (default): raw text -> task outputs, the one artifact TF Serving "
        "serves. preprocessing / encoder / encoder-with-mlm: the halves of TF Hub's Common "
        "SavedModel API for text (hub.load, hub.KerasLayer, fine-tuning); see docs/tfhub.md. "
        "--max-seq-length is then the preprocessor's seq_length (default 128)",
    )
    parser.add_argument(
        "--task",
        choices=contract.TASKS,
        help="default: the checkpoint's own (sentence-transformers/BertModel -> embedding, "
        "*ForSequenceClassification -> classification, *ForMaskedLM -> fill-mask)",
    )
    parser.add_argument(
        "--max-seq-length",
        type=int,
        metavar="N",
        help="truncate inputs to N tokens incl. [CLS]/[SEP] (default: sentence_bert_config.json's,"
        " else max_position_embeddings capped at 512); longer costs time quadratically",
    )
    parser.add_argument(
        "--length-buckets",
        metavar="N,N,...",
        help="pad each batch to the smallest of these lengths that fits, instead of to its "
        "longest row (the default without --jit-compile: fastest on CPU). 'default' means "
        "16,24,32,48,64,96,128,192,256,384 below --max-seq-length, then it (the default with "
        "--jit-compile). Buckets bound the shapes XLA compiles (also for TF Serving's "
        "--tf_xla_auto_jit on GPU) but cost padding work: ~30%% fewer sentences/s on CPU",
    )
    parser.add_argument(
        "--jit-compile",
        action="store_true",
        help="compile the encoder (never the tokenizer) with XLA: one compile per bucket and "
        "batch size at first use; may be faster on GPU, measure on CPU",
    )
    parser.add_argument(
        "--precision",
        choices=contract.PRECISIONS,
        default=contract.PRECISION_FLOAT32,
        help="float32 (default): exact to the reference. bfloat16: the transformer layers' "
        "weights and matmuls in bf16 (LayerNorm, softmax, pooling and outputs stay float32; "
        "same signatures), verified to a looser tolerance that the model card records; faster "
        "where the hardware has bf16 units (GPU, recent x86 with AMX/AVX512-BF16). End-to-end "
        "exports only, not token-classification; see docs/precision.md",
    )
    parser.add_argument(
        "--top-k",
        type=int,
        default=5,
        metavar="K",
        help="fill-mask only: candidates returned per [MASK] (default 5)",
    )
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="UNSAFE: skip token and output parity against the reference (saves ~1-2 min); a "
        "tokenizer or weight mismatch would then ship silently. The op audit still runs",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing non-empty version directory",
    )
    parser.add_argument(
        "--do-lower-case",
        choices=("true", "false"),
        help="TF checkpoints only: whether the model was trained on lowercased, accent-stripped "
        "text (default: known from Google's release directory names, e.g. uncased_L-12_H-768_A-12"
        "; required otherwise: a vocab.txt does not say)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars on stderr")
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="also show TensorFlow's C++ start-up lines (cuInit, oneDNN, absl) and transformers' "
        "progress bars, hidden by default because on a CPU machine they are noise, not failures",
    )
    return parser


def flag_name(keyword: str) -> str:
    """The flag of an :func:`~models.export.exporter.export_model` keyword (``top_k`` ->
    ``--top-k``): how the CLI names a parameter the library's error names."""
    return "--" + keyword.replace("_", "-")


def _quiet_libraries() -> None:
    from models.quiet_tensorflow import import_tensorflow

    import_tensorflow(quiet=True)
    # The PyTorch reference's "Loading weights" bar would interleave with ours.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    buckets: list[int] | Literal["default"] | None = None
    if args.length_buckets == "default":
        buckets = "default"
    elif args.length_buckets:
        try:
            buckets = [int(size) for size in args.length_buckets.split(",") if size.strip()]
        except ValueError:
            print(
                f"textserve-export: error: bad --length-buckets {args.length_buckets!r}",
                file=sys.stderr,
            )
            return 2
    if not args.verbose:
        _quiet_libraries()
    from models.errors import ModelError
    from models.export.exporter import export_model

    try:
        report = export_model(
            checkpoint=args.checkpoint,
            output=args.output,
            task=args.task,
            max_seq_length=args.max_seq_length,
            length_buckets=buckets,
            jit_compile=args.jit_compile,
            top_k=args.top_k,
            verify=not args.no_verify,
            overwrite=args.overwrite,
            progress=not args.quiet,
            do_lower_case=None if args.do_lower_case is None else args.do_lower_case == "true",
            export_type=args.export_type,
            precision=args.precision,
        )
    except ModelError as exc:
        print(f"textserve-export: error: {exc.render(flag_name)}", file=sys.stderr)
        return exc.exit_code
    if report.export_type != contract.EXPORT_END_TO_END:
        checked = (
            f"verified, max abs diff {report.max_abs_diff:.2g}"
            if report.verified
            else "NOT verified (--no-verify)"
        )
        print(
            f"exported TF Hub {report.export_type} to {report.output} "
            f"({report.weights_loaded} weights, {checked}, {report.seconds:.0f} s)"
        )
        return 0
    verified = (
        f"verified, max abs diff {report.max_abs_diff:.2g}"
        if report.verified
        else "NOT verified (--no-verify)"
    )
    if report.precision != contract.PRECISION_FLOAT32:
        verified = f"{report.precision}, {verified}"
    padding = (
        f"buckets {list(report.length_buckets)}"
        if report.length_buckets
        else "padded to each batch's longest row"
    )
    print(
        f"exported {report.task} model to {report.output} "
        f"({report.weights_loaded} weights, max_seq_length {report.max_seq_length}, "
        f"{padding}, {verified}, {report.seconds:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
