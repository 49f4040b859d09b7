"""Load-test output: live progress (rich), summary table, JSON report, PNG chart (matplotlib)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from clients.loadtest import LoadTestReport, PhaseResult, summarize_errors


class ProgressDisplay:
    """A live line per running phase: elapsed/remaining, sent, ok, errors, mismatches, rate."""

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self._console = console
        self._live = Live(console=console, refresh_per_second=4, transient=True)
        self._enabled = enabled

    def update(self, label: str, phase: PhaseResult, end: float) -> None:
        if not self._enabled:
            return
        remaining = max(0.0, end - time.monotonic())
        table = Table.grid(padding=(0, 2))
        table.add_row(
            f"[bold]{label}[/bold]",
            f"{remaining:5.1f} s left",
            f"sent {phase.sent}",
            f"ok {phase.ok}",
            f"errors {summarize_errors(phase.errors)}",
            f"mismatches {phase.mismatched_requests}",
            f"in flight {phase.sent - len(phase.records)}",
        )
        self._live.update(table)

    def __enter__(self) -> ProgressDisplay:
        if self._enabled:
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._enabled:
            self._live.stop()


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def summary_table(report: LoadTestReport) -> Table:
    c = report.config
    table = Table(
        title=f"textserve-loadtest: {c.target} {c.address} model={c.model_name} "
        f"batch={c.batch_size} texts/request",
        caption=f"workload {report.workload}; reference: {report.reference}; "
        f"capacity {report.capacity_rps or 0:.1f} req/s",
    )
    for column in ("mode", "level", "sent", "ok", "errors", "mismatches", "unaccounted"):
        table.add_column(column, justify="right" if column not in ("mode", "errors") else "left")
    for column in ("req/s", "texts/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms"):
        table.add_column(column, justify="right")
    for phase in report.phases:
        f = phase.figures()
        level = f"{phase.level:g}" if phase.mode == "closed" else f"{phase.level:.1f}/s"
        table.add_row(
            "closed" if phase.mode == "closed" else "open",
            level,
            str(phase.sent),
            str(phase.ok),
            summarize_errors(phase.errors),
            str(phase.mismatched_requests),
            str(phase.unaccounted),
            f"{f['ok_rps']:.1f}",
            f"{f['texts_per_s']:.0f}",
            _ms(f["p50_ms"]),
            _ms(f["p90_ms"]),
            _ms(f["p99_ms"]),
            _ms(f["p999_ms"]),
        )
    return table


def write_json(report: LoadTestReport, path: Path) -> None:
    def clean(value: Any) -> Any:  # JSON has no NaN
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clean(report.to_json()), indent=2) + "\n")


def error_share_label(phase: PhaseResult) -> str:
    """What the chart writes at an open-loop point: the same counts as the summary table."""
    errors = sum(phase.errors.values())
    share = 100.0 * errors / phase.sent if phase.sent else 0.0
    return f"{errors} of {phase.sent} errors ({share:.0f}%)"


def write_chart(report: LoadTestReport, path: Path) -> None:
    """Throughput and latency percentiles against concurrency (closed) and offered rate (open)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    groups = [
        (mode, [p for p in report.phases if p.mode == mode])
        for mode in ("closed", "open")
        if any(p.mode == mode for p in report.phases)
    ]
    fig, axes = plt.subplots(1, len(groups), figsize=(6.5 * len(groups), 4.5), squeeze=False)
    for ax, (mode, phases) in zip(axes[0], groups, strict=True):
        xs = [p.level for p in phases]
        figs = [p.figures() for p in phases]
        ax.plot(xs, [f["texts_per_s"] for f in figs], "o-", color="tab:blue", label="texts/s (ok)")
        if mode == "open":
            offered = [p.level * p.batch_size for p in phases]
            ax.plot(xs, offered, ":", color="tab:gray", label="texts/s offered")
            for x, y, phase in zip(xs, [f["texts_per_s"] for f in figs], phases, strict=True):
                ax.annotate(
                    error_share_label(phase),
                    (x, y),
                    textcoords="offset points",
                    xytext=(0, 8),
                    ha="center",
                    fontsize=8,
                )
        ax.set_xlabel("concurrency (requests in flight)" if mode == "closed" else "offered req/s")
        ax.set_ylabel("throughput, texts/s", color="tab:blue")
        if mode == "closed":
            ax.set_xscale("log", base=2)
            ax.set_xticks(xs, [f"{x:g}" for x in xs])
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        lat = ax.twinx()
        for key, style in (
            ("p50_ms", "s--"),
            ("p90_ms", "^--"),
            ("p99_ms", "v--"),
            ("p999_ms", "x--"),
        ):
            lat.plot(xs, [f[key] for f in figs], style, label=key.replace("_ms", ""), alpha=0.8)
        lat.set_yscale("log")
        lat.set_ylabel("latency of ok requests, ms (log)")
        handles = ax.get_legend_handles_labels()
        more = lat.get_legend_handles_labels()
        # Below the axes: inside them the legend covered the first points.
        ax.legend(
            handles[0] + more[0],
            handles[1] + more[1],
            fontsize=8,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.14),
            ncol=3,
            frameon=False,
        )
        ax.set_title(
            (
                "closed loop: sweep of concurrency"
                if mode == "closed"
                else "open loop: constant arrival rate (latency from intended send)"
            ),
            fontsize=10,
        )
    c = report.config
    fig.suptitle(
        f"{c.target} {c.model_name}, {c.batch_size} texts/request — "
        f"{'PASS' if report.passed else 'FAIL'}",
        fontsize=11,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
