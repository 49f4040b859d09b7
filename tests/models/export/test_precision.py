"""Opt-in bfloat16 end-to-end exports: bf16 really runs, the signatures stay float32, the
verification and the model card record the parity, and what cannot be honoured is refused."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer's ops for loading)

from models import contract
from models.errors import ExportConfigError
from models.export.export_cli import build_parser, main
from models.export.export_verification import BFLOAT16_TOLERANCES
from models.export.exporter import ExportReport, export_model

TEXTS = ["The movie was surprisingly good.", "Straße İstanbul ＡＢＣ café", "a", "word " * 40]
BF16 = contract.PRECISION_BFLOAT16
_MATMULS = {"MatMul", "BatchMatMulV2", "BatchMatMulV3", "_FusedMatMul"}


def _export(checkpoint: Path, output: Path, **kwargs: object) -> ExportReport:
    return export_model(checkpoint=checkpoint, output=output, progress=False, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tiny_exports(
    tiny_checkpoint: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[ExportReport, Path]]:
    """The same tiny random BERT (embedding task) exported in float32 and in bfloat16."""
    checkpoint = tiny_checkpoint("base")
    base = tmp_path_factory.mktemp("precision")
    exports = {}
    for precision in contract.PRECISIONS:
        output = base / precision / "1"
        exports[precision] = (_export(checkpoint, output, precision=precision), output)
    return exports


def _matmul_dtypes(version_dir: Path) -> list[int]:
    """The dtype attribute ``T`` of every matmul in the SavedModel's function library."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((version_dir / "saved_model.pb").read_bytes())
    return [
        node.attr["T"].type
        for meta_graph in proto.meta_graphs
        for function in meta_graph.graph_def.library.function
        for node in function.node_def
        if node.op in _MATMULS
    ]


def _variable_dtypes(version_dir: Path) -> set[tf.DType]:
    reader = tf.train.load_checkpoint(str(version_dir / "variables" / "variables"))
    return set(reader.get_variable_to_dtype_map().values())


def test_bf16_export_is_verified_with_its_tolerance_and_carded(
    tiny_exports: dict[str, tuple[ExportReport, Path]],
) -> None:
    report, output = tiny_exports[BF16]
    assert report.verified and report.precision == BF16
    assert report.max_abs_diff is not None
    assert 0 < report.max_abs_diff <= BFLOAT16_TOLERANCES[contract.TASK_EMBEDDING]
    card = json.loads((output / contract.MODEL_CARD_FILE).read_text(encoding="utf-8"))
    assert card["precision"] == BF16
    assert card["verification"]["max_abs_diff"] == report.max_abs_diff
    assert card["verification"]["tolerance"] == BFLOAT16_TOLERANCES[contract.TASK_EMBEDDING]
    fp32_report, fp32_output = tiny_exports[contract.PRECISION_FLOAT32]
    fp32_card = json.loads((fp32_output / contract.MODEL_CARD_FILE).read_text(encoding="utf-8"))
    assert fp32_card["precision"] == contract.PRECISION_FLOAT32
    assert fp32_report.max_abs_diff is not None and fp32_report.max_abs_diff <= 1e-5


def test_graph_runs_bf16_matmuls_on_bf16_weights(
    tiny_exports: dict[str, tuple[ExportReport, Path]],
) -> None:
    bf16_dir, fp32_dir = tiny_exports[BF16][1], tiny_exports[contract.PRECISION_FLOAT32][1]
    bf16_matmuls = _matmul_dtypes(bf16_dir)
    # Per layer: QKV, scores, context, attention output, FFN in and out.
    assert bf16_matmuls.count(tf.bfloat16.as_datatype_enum) >= 6 * 2
    assert tf.bfloat16.as_datatype_enum not in _matmul_dtypes(fp32_dir)
    assert tf.bfloat16 in _variable_dtypes(bf16_dir)
    assert tf.bfloat16 not in _variable_dtypes(fp32_dir)


def test_signatures_are_the_fp32_exports(
    tiny_exports: dict[str, tuple[ExportReport, Path]],
) -> None:
    fp32 = tf.saved_model.load(str(tiny_exports[contract.PRECISION_FLOAT32][1]))
    bf16 = tf.saved_model.load(str(tiny_exports[BF16][1]))
    assert set(bf16.signatures) == set(fp32.signatures)
    for name, signature in fp32.signatures.items():
        theirs = bf16.signatures[name]
        assert theirs.structured_input_signature == signature.structured_input_signature
        assert {k: (v.dtype, v.shape.as_list()) for k, v in theirs.structured_outputs.items()} == {
            k: (v.dtype, v.shape.as_list()) for k, v in signature.structured_outputs.items()
        }


def test_bf16_outputs_are_float32_and_close_to_fp32_but_not_equal(
    tiny_exports: dict[str, tuple[ExportReport, Path]],
) -> None:
    outputs = {}
    for precision, (_, output) in tiny_exports.items():
        serve = tf.saved_model.load(str(output)).signatures[contract.SERVING_DEFAULT]
        embedding = serve(text=tf.constant(TEXTS))[contract.EMBEDDING]
        assert embedding.dtype == tf.float32
        outputs[precision] = embedding.numpy()
    diff = np.abs(outputs[BF16] - outputs[contract.PRECISION_FLOAT32]).max()
    assert 0 < diff <= BFLOAT16_TOLERANCES[contract.TASK_EMBEDDING]


def test_bf16_classifier_with_xla_is_verified(
    tiny_checkpoint: Callable[..., Path], tmp_path: Path
) -> None:
    """Logits and labels checked with bf16's tolerance, through the XLA-compiled encoder."""
    output = tmp_path / "classifier" / "1"
    report = _export(tiny_checkpoint("classification"), output, precision=BF16, jit_compile=True)
    assert report.verified and report.max_abs_diff is not None
    assert 0 < report.max_abs_diff <= BFLOAT16_TOLERANCES[contract.TASK_CLASSIFICATION]
    outputs = tf.saved_model.load(str(output)).signatures[contract.SERVING_DEFAULT](
        text=tf.constant(TEXTS)
    )
    assert outputs[contract.LOGITS].dtype == outputs[contract.PROBABILITIES].dtype == tf.float32


def test_bf16_fill_mask_is_verified(tiny_checkpoint: Callable[..., Path], tmp_path: Path) -> None:
    """MLM logits (the tied decoder stays float32) checked with bf16's tolerance."""
    output = tmp_path / "fill_mask" / "1"
    report = _export(tiny_checkpoint("masked_lm"), output, precision=BF16, max_seq_length=64)
    assert report.verified and report.max_abs_diff is not None
    assert 0 < report.max_abs_diff <= BFLOAT16_TOLERANCES[contract.TASK_FILL_MASK]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"precision": "float16"}, "precision must be one of float32, bfloat16, not 'float16'"),
        (
            {"precision": BF16, "export_type": contract.EXPORT_ENCODER},
            "task, length_buckets, jit_compile, top_k and precision apply to end-to-end "
            f"exports only, not to export_type {contract.EXPORT_ENCODER}",
        ),
    ],
)
def test_refused_in_one_line(kwargs: dict[str, object], message: str, tmp_path: Path) -> None:
    with pytest.raises(ExportConfigError) as info:
        export_model(checkpoint=None, output=tmp_path / "m" / "1", **kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_token_classification_refuses_bf16(
    tiny_checkpoint: Callable[..., Path], tmp_path: Path
) -> None:
    with pytest.raises(ExportConfigError, match=r"^precision bfloat16 is not offered for "):
        _export(tiny_checkpoint("token_classification"), tmp_path / "m" / "1", precision=BF16)


def test_cli_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = str(tmp_path / "m" / "1")
    assert build_parser().parse_args(["--output", output]).precision == "float32"
    assert build_parser().parse_args(["--output", output, "--precision", BF16]).precision == BF16
    argv = ["--output", output, "--precision", BF16, "--export-type", "encoder", "--quiet"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        "textserve-export: error: --task, --length-buckets, --jit-compile, --top-k and "
        "--precision apply to end-to-end exports only, not to --export-type encoder\n"
    )


@pytest.mark.slow
def test_bundled_minilm_bf16_keeps_stsb(stsb_dir: Path, tmp_path: Path) -> None:
    """STS-B stsb-en-test Spearman x100 within 0.5 of the fp32 export's 82.03."""
    from scipy.stats import spearmanr

    output = tmp_path / "minilm" / "1"
    report = export_model(checkpoint=None, output=output, precision=BF16, progress=False)
    assert report.verified
    with (stsb_dir / "stsb-en-test.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    serve = tf.saved_model.load(str(output)).signatures[contract.SERVING_DEFAULT]
    halves = []
    for column in (0, 1):
        texts = [row[column] for row in rows]
        halves.append(
            np.concatenate(
                [
                    serve(text=tf.constant(texts[i : i + 64]))[contract.EMBEDDING].numpy()
                    for i in range(0, len(texts), 64)
                ]
            )
        )
    a, b = halves
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    score = float(spearmanr(cosine, [float(row[2]) for row in rows]).statistic) * 100
    assert abs(score - 82.03) <= 0.5, score
