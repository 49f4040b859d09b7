"""The op audit refuses graphs TF Serving cannot run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from models.errors import VerificationError
from models.export.export_verification import audit_ops, graph_ops


def test_py_function_is_refused(tmp_path: Path) -> None:
    class Pythonic(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def serve(self, x: tf.Tensor) -> tf.Tensor:
            return tf.py_function(lambda v: np.asarray(v) * 2, [x], tf.float32)

    module = Pythonic()
    tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.serve})
    assert "EagerPyFunc" in graph_ops(tmp_path)
    with pytest.raises(VerificationError, match="EagerPyFunc"):
        audit_ops(tmp_path)


def test_core_only_graph_passes(tmp_path: Path) -> None:
    class Core(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def serve(self, text: tf.Tensor) -> tf.Tensor:
            return tf.strings.length(tf.strings.lower(text, encoding="utf-8"))

    module = Core()
    tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.serve})
    ops, tf_text_ops = audit_ops(tmp_path)
    assert "StringLower" in ops and tf_text_ops == {}
