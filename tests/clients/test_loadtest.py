"""textserve-loadtest against the real server: every answer checked, every request accounted."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clients._tensor_proto import from_tensor_proto, to_tensor_proto
from clients.loadtest import (
    LoadTest,
    LoadTestConfig,
    PhaseResult,
    RequestRecord,
    run_load_test,
)
from clients.loadtest_workload import Workload
from clients.protos import serving_apis_pb2 as apis
from models import contract
from tests.clients.conftest import MODEL
from tests.clients.proxies import GrpcProxy
from tests.support.server_process import ServerProcess

REPO = Path(__file__).resolve().parents[2]
STSB = ["--csv-fieldnames", "sentence1,sentence2,score", "--csv-column", "sentence1,sentence2"]


def _run_cli(tmp_path: Path, name: str, *args: str) -> tuple[int, dict, str]:
    report, chart = tmp_path / f"{name}.json", tmp_path / f"{name}.png"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "clients.loadtest_cli",
            *args,
            "--no-progress",
            "--json-report",
            str(report),
            "--chart",
            str(chart),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert report.is_file(), result.stdout + result.stderr
    assert chart.stat().st_size > 10_000  # a real PNG with two panels
    return result.returncode, json.loads(report.read_text()), result.stdout + result.stderr


def _assert_accounted(phase: dict) -> None:
    assert phase["mismatched_requests"] == 0, phase
    assert phase["unaccounted"] == 0, phase
    assert phase["sent"] == phase["ok"] + sum(phase["errors"].values()), phase
    assert set(phase["errors"]) <= contract.OVERLOAD_CODES, phase


def test_grpc_sweep_1_to_128_and_open_loop_beyond_capacity(
    minilm_server: ServerProcess, stsb_dir: Path, tmp_path: Path
) -> None:
    code, report, output = _run_cli(
        tmp_path,
        "grpc",
        "--target",
        "grpc",
        "--address",
        minilm_server.grpc_target,
        "--model-name",
        MODEL,
        "--texts",
        str(stsb_dir / "stsb-en-test.csv"),
        *STSB,
        "--limit-texts",
        "64",
        "--concurrency",
        "1,8,32,128",
        "--rate-multipliers",
        "2,3,10",
        "--warmup",
        "0.1",
        "--duration",
        "0.6",
    )
    assert code == 0, output
    assert report["passed"] and report["failures"] == []
    assert 0 < report["reference_texts"] <= 64  # unique texts among the first 64
    levels = [(p["mode"], p["level"]) for p in report["phases"]]
    assert levels[:4] == [("closed", 1), ("closed", 8), ("closed", 32), ("closed", 128)]
    for phase in report["phases"]:
        _assert_accounted(phase)
    assert report["phases"][0]["errors"] == {}  # one request at a time is never shed
    assert report["capacity_rps"] > 0
    open_loop = report["phases"][4:]
    assert [p["mode"] for p in open_loop] == ["open"] * 3
    for phase, multiple in zip(open_loop, (2, 3, 10), strict=True):
        assert phase["level"] == pytest.approx(multiple * report["capacity_rps"])
    # Far beyond capacity the server sheds load explicitly (its queue holds 32 requests);
    # at 2x and 3x it depends on how long the queue takes to fill, but nothing is ever lost.
    assert open_loop[-1]["errors"].get("RESOURCE_EXHAUSTED", 0) > 0, open_loop[-1]
    assert "p99.9 ms" in output and "PASS" in output


@pytest.mark.parametrize("target", ["rest", "openai"])
def test_rest_and_openai_targets(target: str, minilm_server: ServerProcess, tmp_path: Path) -> None:
    code, report, output = _run_cli(
        tmp_path,
        target,
        "--target",
        target,
        "--address",
        minilm_server.rest_url,
        "--model-name",
        MODEL,
        "--synthetic",
        "16",
        "--length-dist",
        "lognormal:12:0.5",
        "--batch-size",
        "4",
        "--concurrency",
        "1,4",
        "--warmup",
        "0.1",
        "--duration",
        "0.5",
    )
    assert code == 0, output
    for phase in report["phases"]:
        _assert_accounted(phase)
        assert phase["ok"] > 0


def _reverse_embedding_rows(method: str, response: bytes) -> bytes:
    if not method.endswith("/Predict"):
        return response
    message = apis.PredictResponse.FromString(response)
    rows = from_tensor_proto(message.outputs[contract.EMBEDDING])
    message.outputs[contract.EMBEDDING].CopyFrom(to_tensor_proto(rows[::-1]))
    return message.SerializeToString()


def test_wrong_rows_fail_the_run(
    minilm_server: ServerProcess, exported_minilm: Path, stsb_sentences: list[str]
) -> None:
    """A server that answers with rows in the wrong order (here: a proxy reversing them) is
    caught: the reference comes from the SavedModel in-process, not from the faulty server."""
    proxy = GrpcProxy(minilm_server.grpc_target, rewrite=_reverse_embedding_rows)
    try:
        config = LoadTestConfig(
            target="grpc",
            address=proxy.target,
            model_name=MODEL,
            batch_size=4,
            concurrency=(2,),
            warmup_s=0.0,
            duration_s=0.5,
            reference_savedmodel=exported_minilm / "1",
            progress=False,
        )
        report = asyncio.run(run_load_test(config, Workload(tuple(stsb_sentences[:40]), "t")))
    finally:
        proxy.close()
    phase = report.phases[0]
    assert phase.ok > 0 and phase.mismatched_requests == phase.ok
    assert not report.passed and "mismatched" in report.failures[0]
    assert phase.mismatch_examples and "max |diff|" in phase.mismatch_examples[0]


def test_workload_sources(tmp_path: Path, stsb_dir: Path) -> None:
    lines = tmp_path / "texts.txt"
    lines.write_text("one\n\ntwo\nthree\n", encoding="utf-8")
    assert Workload.from_file(lines).texts == ("one", "two", "three")
    headed = tmp_path / "headed.csv"
    headed.write_text('id,sentence\n1,"a, b"\n2,c\n', encoding="utf-8")
    assert Workload.from_file(headed, csv_columns=("sentence",)).texts == ("a, b", "c")
    stsb = Workload.from_file(
        stsb_dir / "stsb-en-test.csv",
        csv_columns=("sentence1", "sentence2"),
        csv_fieldnames=("sentence1", "sentence2", "score"),
    )
    assert len(stsb.texts) == 2758
    assert Workload.from_file(stsb_dir / "stsb-en-test.csv", csv_columns=("1",)).texts[0] == (
        "A girl is brushing her hair."
    )
    with pytest.raises(ValueError, match="csv_fieldnames"):
        Workload.from_file(stsb_dir / "stsb-en-test.csv", csv_columns=("sentence1",))
    synthetic = Workload.synthetic(500, length_dist="lognormal:12:0.5", seed=1)
    words = [len(t.split()) for t in synthetic.texts]
    assert 8 <= float(np.median(words)) <= 16 and max(words) <= 400
    assert Workload.synthetic(500, length_dist="lognormal:12:0.5", seed=1) == synthetic
    assert {len(t.split()) for t in Workload.synthetic(20, length_dist="fixed:7").texts} == {7}
    with pytest.raises(ValueError, match="length distribution"):
        Workload.synthetic(5, length_dist="zipf:2")
    assert synthetic.request_texts(0, 3) == list(synthetic.texts[:3])
    assert synthetic.request_texts(500 // 3 + 1, 3)[0] == synthetic.texts[(500 // 3 + 1) * 3 % 500]


def test_cli_without_the_loadtest_extra_says_how_to_install_it(tmp_path: Path) -> None:
    """The installed ``textserve-loadtest`` script in an environment without rich and
    matplotlib (the light ``client`` extra): one clear line, exit 2, no traceback. A
    ``sitecustomize`` marks both as not installed (``sys.modules[name] = None``, Python's own
    way to make an import fail) instead of uninstalling them from the shared venv."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import sys\nsys.modules['rich'] = None\nsys.modules['matplotlib'] = None\n"
    )
    script = Path(sys.executable).parent / "textserve-loadtest"
    result = subprocess.run(
        [str(script), "--address", "localhost:1", "--synthetic", "4"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(hide)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "textserve-loadtest needs the 'loadtest' extra (rich, matplotlib not installed): "
        "pip install 'textserve[loadtest]'"
    ]


def test_closed_loop_longer_than_the_request_deadline_accounts_for_every_request() -> None:
    # A level may last far longer than one request's deadline: the in-flight requests must
    # be waited for from the end of the level, not from its start.
    config = LoadTestConfig(
        target="grpc",
        address="unused:1",
        model_name=MODEL,
        concurrency=(4,),
        warmup_s=0.0,
        duration_s=10.6,
        timeout_s=0.2,
        progress=False,
    )
    load = LoadTest(config, Workload.synthetic(16))

    async def embed(texts: list[str]) -> np.ndarray:
        await asyncio.sleep(0.15)
        return np.zeros((len(texts), 2), np.float32)

    load.reference = {t: np.zeros(2, np.float32) for t in load.workload.unique_texts()}
    phase = asyncio.run(load._closed_loop(embed, 4))
    assert phase.sent > 200 and phase.unaccounted == 0, (phase.sent, phase.unaccounted)
    assert phase.ok == phase.sent


def test_throughput_is_the_answer_rate_inside_the_level_not_one_latency_longer() -> None:
    # A steady 10 answers/s, each request taking 9 s (128 callers against a slow server): the
    # measured requests (due in [0, 10)) are answered in [9, 19), but the server answered 10/s
    # throughout the level, which is the throughput.
    phase = PhaseResult("closed", 128, 8, measure_start=0.0, measure_end=10.0)
    for i in range(-100, 200):
        done = i * 0.1
        phase.records.append(RequestRecord(done - 9, done - 9, done, 0 <= done - 9 < 10, "OK"))
    assert phase.figures()["ok_rps"] == pytest.approx(10.0, rel=0.02)
    assert phase.figures()["texts_per_s"] == pytest.approx(80.0, rel=0.02)

    # A level ended early by max_requests: the window ends at the last measured answer.
    early = PhaseResult("closed", 1, 8, measure_start=0.0, measure_end=10.0)
    for i in range(1, 31):
        early.records.append(RequestRecord(i * 0.1 - 0.1, i * 0.1 - 0.1, i * 0.1, True, "OK"))
    assert early.window_s == pytest.approx(3.0)
    assert early.figures()["ok_rps"] == pytest.approx(10.0, rel=0.02)


def test_chart_error_share_uses_the_table_counts() -> None:
    # 387 sent in the level, 112 refused; the refusals fall unevenly between warm-up and the
    # measured window. The chart once wrote "41% errors" (measured requests only) next to a
    # table saying 112 of 387 (29%).
    from clients.loadtest_report import error_share_label

    phase = PhaseResult("open", 82.8, 8, measure_start=0.0, measure_end=10.0)
    phase.sent = 387
    for i in range(387):
        warmup = i < 120
        refused = (i % 3 == 0) if not warmup else (i < 12)
        phase.records.append(
            RequestRecord(i, i, i + 1, not warmup, "RESOURCE_EXHAUSTED" if refused else "OK")
        )
    errors = sum(phase.errors.values())
    assert errors == phase.sent - phase.ok
    assert error_share_label(phase) == f"{errors} of 387 errors ({100 * errors / 387:.0f}%)"
    assert phase.figures()["error_rate"] == pytest.approx(errors / 387)
