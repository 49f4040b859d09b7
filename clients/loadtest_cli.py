"""``textserve-loadtest``: parse flags, run :func:`clients.loadtest.run_load_test`, write outputs.

Exit status: 0 when every response matched its reference and every request was accounted
for (explicit overload errors are fine), 1 otherwise, 2 for bad arguments or a missing
``loadtest`` extra (rich, matplotlib: ``pip install 'textserve[loadtest]'``).

Example::

    textserve-loadtest --target grpc --address localhost:8500 --model-name minilm \\
        --texts tests/data/stsb/stsb-en-test.csv --csv-column sentence1,sentence2 \\
        --concurrency 1,4,16,64,128 --rate-multipliers 2,3 --duration 20 \\
        --json-report reports/grpc.json --chart reports/grpc.png
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path

from clients._settings import DEFAULT_TIMEOUT_S
from clients.loadtest import TARGETS, LoadTestConfig, run_load_test
from clients.loadtest_workload import Workload
from clients.tls_config import TlsConfig
from models import contract


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="textserve-loadtest",
        description="Load-test a TF Serving-compatible server (TF Serving or textserve-server), "
        "checking every answer against a reference embedding of its own texts.",
    )
    p.add_argument(
        "--target",
        choices=TARGETS,
        default="grpc",
        help="grpc = PredictionService/Predict, rest = :predict, openai = /v1/embeddings",
    )
    p.add_argument(
        "--address",
        required=True,
        help="host:port for grpc; http(s)://host:port for rest and openai",
    )
    p.add_argument("--model-name", default=contract.BUNDLED_MODEL_NAME)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--texts", type=Path, help="a text file (one text per line) or a CSV")
    src.add_argument("--synthetic", type=int, metavar="N", help="N synthetic texts")
    p.add_argument(
        "--csv-column",
        default="",
        help="CSV column(s) to read texts from, comma-separated (e.g. sentence1,sentence2)",
    )
    p.add_argument(
        "--csv-fieldnames",
        default="",
        help="names of the columns of a CSV without a header row, comma-separated "
        "(STS-B: sentence1,sentence2,score)",
    )
    p.add_argument("--limit-texts", type=int, default=None, help="use only the first N texts")
    p.add_argument(
        "--length-dist",
        default="uniform:5:40",
        help="synthetic words per text: fixed:N | uniform:MIN:MAX | lognormal:MEDIAN:SIGMA",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=8, help="texts per request")
    p.add_argument(
        "--concurrency",
        type=_ints,
        default=[1, 2, 4, 8, 16, 32, 64, 128],
        help="closed-loop levels, comma-separated ('' for none)",
    )
    p.add_argument(
        "--rates",
        type=_floats,
        default=[],
        help="open-loop arrival rates in requests/s, comma-separated",
    )
    p.add_argument(
        "--rate-multipliers",
        type=_floats,
        default=[],
        help="open-loop rates as multiples of the capacity the sweep measured, e.g. 2,3",
    )
    p.add_argument("--warmup", type=float, default=2.0, help="seconds per level, not in figures")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per level")
    p.add_argument("--max-requests", type=int, default=None, help="measured requests per level")
    p.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="deadline of each request, seconds"
    )
    p.add_argument(
        "--atol",
        type=float,
        default=1e-4,
        help="largest allowed |response - reference| per element",
    )
    p.add_argument(
        "--reference-savedmodel",
        type=Path,
        default=None,
        help="version directory of the served SavedModel: reference embeddings "
        "computed in-process (needs TensorFlow) instead of a first pass on the target",
    )
    p.add_argument("--ca-file", type=Path, default=None, help="TLS: CA bundle to trust")
    p.add_argument("--cert-file", type=Path, default=None, help="TLS: client certificate")
    p.add_argument("--key-file", type=Path, default=None, help="TLS: client key")
    p.add_argument("--tls", action="store_true", help="gRPC over TLS with the system roots")
    p.add_argument("--bearer-token", default=None, help="sent as 'authorization: Bearer ...'")
    p.add_argument("--json-report", type=Path, default=None)
    p.add_argument("--chart", type=Path, default=None, help="PNG of throughput and latency")
    p.add_argument("--no-progress", action="store_true", help="no live display")
    return p


# The harness's display and charts: the ``loadtest`` extra, not part of the light ``client`` one.
LOADTEST_EXTRA_MODULES = ("rich", "matplotlib")
MISSING_EXTRA_HINT = "pip install 'textserve[loadtest]'"


def missing_loadtest_modules() -> list[str]:
    """The modules of the ``loadtest`` extra that cannot be imported here."""
    return [name for name in LOADTEST_EXTRA_MODULES if importlib.util.find_spec(name) is None]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    missing = missing_loadtest_modules()
    if missing:
        sys.stderr.write(
            f"textserve-loadtest needs the 'loadtest' extra ({', '.join(missing)} not "
            f"installed): {MISSING_EXTRA_HINT}\n"
        )
        return 2
    # Only now: without the extra these imports would fail with a bare ModuleNotFoundError.
    from rich.console import Console

    from clients.loadtest_report import ProgressDisplay, summary_table, write_chart, write_json

    console = Console(stderr=True)
    columns = tuple(c for c in args.csv_column.split(",") if c)
    try:
        if args.texts is not None:
            workload = Workload.from_file(
                args.texts,
                csv_columns=columns,
                csv_fieldnames=tuple(c for c in args.csv_fieldnames.split(",") if c),
                limit=args.limit_texts,
            )
        else:
            workload = Workload.synthetic(
                args.synthetic, length_dist=args.length_dist, seed=args.seed
            )
        tls = None
        if args.tls or args.ca_file or args.cert_file:
            tls = TlsConfig(ca_file=args.ca_file, cert_file=args.cert_file, key_file=args.key_file)
        config = LoadTestConfig(
            target=args.target,
            address=args.address,
            model_name=args.model_name,
            batch_size=args.batch_size,
            concurrency=tuple(args.concurrency),
            rates=tuple(args.rates),
            rate_multipliers=tuple(args.rate_multipliers),
            warmup_s=args.warmup,
            duration_s=args.duration,
            max_requests=args.max_requests,
            timeout_s=args.timeout,
            atol=args.atol,
            reference_savedmodel=args.reference_savedmodel,
            tls=tls,
            bearer_token=args.bearer_token,
            progress=not args.no_progress,
        )
    except (ValueError, OSError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    with ProgressDisplay(console, enabled=config.progress) as display:
        report = asyncio.run(run_load_test(config, workload, on_progress=display.update))
    # A pipe or a file gets the whole table instead of 80 columns of ellipses.
    Console(width=None if sys.stdout.isatty() else 180).print(summary_table(report))
    if args.json_report is not None:
        write_json(report, args.json_report)
        console.print(f"JSON report: {args.json_report}")
    if args.chart is not None:
        write_chart(report, args.chart)
        console.print(f"chart: {args.chart}")
    for failure in report.failures:
        console.print(f"[red]FAIL[/red] {failure}")
    console.print("[green]PASS[/green]" if report.passed else "[red]FAIL[/red]")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
