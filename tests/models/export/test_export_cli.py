"""textserve-export as users run it: flags, exit codes, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from models.export.export_cli import build_parser, main


def test_help_documents_every_flag() -> None:
    text = build_parser().format_help()
    for flag in (
        "--checkpoint",
        "--output",
        "--task",
        "--max-seq-length",
        "--jit-compile",
        "--top-k",
        "--no-verify",
        "--overwrite",
    ):
        assert flag in text
    assert "UNSAFE" in text and "exit codes" in text


def test_removed_encoder_weight_fails_the_real_cli(
    tiny_checkpoint: Callable[..., Path], tmp_path: Path
) -> None:
    dropped = "bert.encoder.layer.0.attention.output.dense.weight"
    checkpoint = tiny_checkpoint("masked_lm", weights_format="bin", drop_keys=(dropped,))
    output = tmp_path / "broken" / "1"
    # As a user's shell has it: TensorFlow's C++ start-up lines are the CLI's job to hide.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "models.export.export_cli",
            "--checkpoint",
            str(checkpoint),
            "--output",
            str(output),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("textserve-export")]
    assert len(errors) == 1, result.stderr[-2000:]
    # Nothing else: no cuInit / oneDNN / absl lines that read like failures.
    assert result.stderr.strip().splitlines() == errors, result.stderr[-2000:]
    assert "encoder.layer.0.attention.output.dense.weight" in errors[0]
    assert "refusing to export" in errors[0]
    assert "Traceback" not in result.stderr
    assert not output.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--output", "{tmp}/m/latest"], "positive integer VERSION"),
        (["--output", "{tmp}/m/1", "--top-k", "0"], "--top-k"),
        (["--output", "{tmp}/m/1", "--checkpoint", "{tmp}/nothing"], "does not exist"),
        (["--output", "{tmp}/m/1", "--length-buckets", "16,x"], "--length-buckets"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([arg.format(tmp=tmp_path) for arg in argv] + ["--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1
