"""Export errors name parameters the caller's way: keywords from Python, flags from the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from models import contract
from models.errors import ExportConfigError, Keyword
from models.export.export_cli import flag_name, main
from models.export.exporter import export_model


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"top_k": 0}, "top_k must be at least 1, not 0"),
        ({"task": "nonsense"}, "task must be one of"),
        ({"export_type": "nonsense"}, "export_type must be one of"),
        (
            {"export_type": contract.EXPORT_ENCODER, "top_k": 3},
            "task, length_buckets, jit_compile, top_k and precision apply to end-to-end exports "
            "only, "
            f"not to export_type {contract.EXPORT_ENCODER}",
        ),
    ],
)
def test_library_errors_name_keywords(
    kwargs: dict[str, object], message: str, tmp_path: Path
) -> None:
    with pytest.raises(ExportConfigError) as info:
        export_model(checkpoint=None, output=tmp_path / "m" / "1", **kwargs)  # type: ignore[arg-type]
    assert str(info.value).startswith(message)
    assert "--" not in str(info.value)


def test_library_error_names_the_output_keyword(tmp_path: Path) -> None:
    with pytest.raises(ExportConfigError, match=r"^output must be BASE/VERSION"):
        export_model(checkpoint=None, output=tmp_path / "m" / "latest")
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "x").write_text("x")
    with pytest.raises(ExportConfigError, match=r"\(pass overwrite to replace it\)$"):
        export_model(checkpoint=None, output=tmp_path / "m" / "1")


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["--top-k", "0"], "textserve-export: error: --top-k must be at least 1, not 0\n"),
        (
            ["--export-type", contract.EXPORT_PREPROCESSING, "--jit-compile"],
            "textserve-export: error: --task, --length-buckets, --jit-compile, --top-k and "
            "--precision apply to end-to-end exports only, not to --export-type "
            f"{contract.EXPORT_PREPROCESSING}\n",
        ),
    ],
)
def test_cli_errors_name_flags(
    argv: list[str], line: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--output", str(tmp_path / "m" / "1"), *argv, "--quiet"]) == 2
    assert capsys.readouterr().err == line


def test_cli_error_names_overwrite_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "x").write_text("x")
    assert main(["--output", str(tmp_path / "m" / "1"), "--quiet"]) == 2
    assert capsys.readouterr().err.endswith("is not empty (pass --overwrite to replace it)\n")


def test_keyword_parts_render_as_flags() -> None:
    error = ExportConfigError(Keyword("max_seq_length"), " must lie in [3, 512]")
    assert str(error) == "max_seq_length must lie in [3, 512]"
    assert error.render(flag_name) == "--max-seq-length must lie in [3, 512]"
    # Plain text that happens to equal a keyword is not renamed.
    assert ExportConfigError("top_k").render(flag_name) == "top_k"
