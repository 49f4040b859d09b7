"""A SignatureDef as the server checks requests against it, before TensorFlow sees them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from clients.protos import tensor_pb2
from clients.tensor_dtypes import datatype_name
from models import contract
from serving.core_api import CheckedInputs
from serving.errors import Code, ServingError
from serving.input_checks import SERVED_DTYPES
from serving.protos import textserve_front_pb2

# String inputs with these names carry text: their length groups requests into batches.
TEXT_INPUT_NAMES = frozenset({contract.TEXT, contract.TEXT_PAIR})


@dataclasses.dataclass(frozen=True)
class ServedTensor:
    name: str
    dtype_enum: int
    shape: tuple[int | None, ...] | None  # None: unknown rank; None dims: any size

    @property
    def numpy_dtype(self) -> np.dtype | None:
        return SERVED_DTYPES.get(self.dtype_enum)

    @property
    def dtype_name(self) -> str:
        return datatype_name(self.dtype_enum)

    def describe_shape(self) -> str:
        if self.shape is None:
            return "any shape"
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"


@dataclasses.dataclass(frozen=True)
class ValidatedInputs:
    inputs: dict[str, np.ndarray]
    rows: int
    text_length: int  # longest text input in UTF-8 bytes (0 if none)


@dataclasses.dataclass(frozen=True)
class ServedSignature:
    name: str
    inputs: Mapping[str, ServedTensor]
    outputs: Mapping[str, ServedTensor]

    @classmethod
    def from_signature_def(cls, name: str, sig: object) -> ServedSignature:
        def specs(tensor_map: Mapping[str, object]) -> dict[str, ServedTensor]:
            out = {}
            for key, info in tensor_map.items():
                ts = info.tensor_shape  # type: ignore[attr-defined]
                shape = (
                    None
                    if ts.unknown_rank
                    else tuple(None if d.size < 0 else int(d.size) for d in ts.dim)
                )
                out[key] = ServedTensor(key, int(info.dtype), shape)  # type: ignore[attr-defined]
            return out

        return cls(name, specs(sig.inputs), specs(sig.outputs))  # type: ignore[attr-defined]

    @property
    def batchable(self) -> bool:
        """True when every input and output has a leading dimension of unknown size (the batch)."""
        tensors = list(self.inputs.values()) + list(self.outputs.values())
        return bool(self.inputs) and all(
            t.shape is not None and len(t.shape) >= 1 and t.shape[0] is None for t in tensors
        )

    def validate(self, inputs: CheckedInputs, *, exact_dtypes: bool) -> ValidatedInputs:
        """Check names, dtypes, ranks, shapes and equal batch sizes; cast JSON numbers where
        exact.

        What holds whatever the model (non-empty, rows per request, UTF-8, text length) was
        checked once, by the ``InputChecks`` that made ``inputs``; anything else is refused
        rather than served unchecked. ``exact_dtypes`` (gRPC): a TensorProto's dtype must
        equal the signature's, as in TF Serving. Otherwise (REST JSON) numbers are converted
        to the signature's dtype when the values fit exactly.
        """
        if not isinstance(inputs, CheckedInputs):
            raise ServingError(
                Code.INTERNAL,
                f"inputs of type {type(inputs).__name__} did not pass the wire checks; "
                "build them with serving.input_checks.InputChecks",
            )
        given, wanted = set(inputs), set(self.inputs)
        if given != wanted:
            missing, extra = sorted(wanted - given), sorted(given - wanted)
            parts = []
            if missing:
                parts.append(f"missing input(s) {missing}")
            if extra:
                parts.append(f"unknown input(s) {extra}")
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f"signature {self.name!r}: {'; '.join(parts)}; it expects {sorted(wanted)}",
            )
        out: dict[str, np.ndarray] = {}
        rows: int | None = None
        text_length = 0
        for name, spec in self.inputs.items():
            arr = inputs[name]
            if not isinstance(arr, np.ndarray):
                raise ServingError(Code.INVALID_ARGUMENT, f"input {name!r} is not a tensor")
            arr = self._check_dtype(name, spec, arr, exact_dtypes)
            if spec.shape is not None:
                if arr.ndim != len(spec.shape):
                    raise ServingError(
                        Code.INVALID_ARGUMENT,
                        f"input {name!r} has rank {arr.ndim} (shape {list(arr.shape)}) but the "
                        f"signature "
                        f"expects rank {len(spec.shape)} {spec.describe_shape()}",
                    )
                for i, (got, want) in enumerate(zip(arr.shape, spec.shape, strict=True)):
                    if want is not None and got != want:
                        raise ServingError(
                            Code.INVALID_ARGUMENT,
                            f"input {name!r} has shape {list(arr.shape)} but the signature expects "
                            f"{spec.describe_shape()} (dimension {i})",
                        )
            if arr.ndim >= 1:
                if rows is None:
                    rows = int(arr.shape[0])
                elif self.batchable and arr.shape[0] != rows:
                    raise ServingError(
                        Code.INVALID_ARGUMENT,
                        f"input {name!r} has {arr.shape[0]} rows but other inputs have {rows}; "
                        f"all inputs "
                        "must have the same batch size",
                    )
            if spec.dtype_enum == tensor_pb2.DT_STRING and name in TEXT_INPUT_NAMES:
                text_length = max(text_length, max(len(value) for value in arr.flat))
            out[name] = arr
        return ValidatedInputs(out, rows if rows is not None else 1, text_length)

    @staticmethod
    def _check_dtype(name: str, spec: ServedTensor, arr: np.ndarray, exact: bool) -> np.ndarray:
        want = spec.numpy_dtype
        if want is None:
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f"input {name!r} has dtype {spec.dtype_name}, which is not supported",
            )
        if want == np.dtype(object):
            if arr.dtype != np.dtype(object):
                raise ServingError(
                    Code.INVALID_ARGUMENT,
                    f"input {name!r} expects DT_STRING but got {_describe(arr.dtype)}",
                )
            return arr
        if arr.dtype == want:
            return arr
        if exact or arr.dtype == np.dtype(object):
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f"input {name!r} expects {spec.dtype_name} but got {_describe(arr.dtype)}",
            )
        # JSON numbers: convert if no value changes (ints into a narrower int, ints/floats into
        # floats).
        ok = (
            arr.dtype.kind in "iub"
            and want.kind in "iuf"
            or arr.dtype.kind == "f"
            and want.kind == "f"
        )
        if arr.dtype.kind == "b" and want.kind == "b":
            ok = True
        if ok:
            cast = arr.astype(want)
            if want.kind in "iu":
                if not np.array_equal(cast.astype(arr.dtype), arr):
                    ok = False
            elif arr.dtype.kind == "f" and not np.all(np.isfinite(cast[np.isfinite(arr)])):
                ok = False
            if ok:
                return cast
        raise ServingError(
            Code.INVALID_ARGUMENT,
            f"input {name!r} expects {spec.dtype_name}; the given values ({_describe(arr.dtype)}) "
            f"do not convert exactly",
        )


def _describe(dtype: np.dtype) -> str:
    return "strings" if dtype == np.dtype(object) else str(dtype)


def parse_saved_model_signatures(
    saved_model_pb: bytes,
) -> tuple[dict[str, bytes], dict[str, ServedSignature]]:
    """saved_model.pb bytes -> (serialized SignatureDefs by name, specs of the servable ones).

    Read with the front's own copy of the SavedModel message (no TensorFlow in this process):
    the graph and everything else it does not declare is skipped as unknown fields.
    """
    sm = textserve_front_pb2.SavedModel.FromString(saved_model_pb)
    graphs = [mg for mg in sm.meta_graphs if "serve" in mg.meta_info_def.tags] or list(
        sm.meta_graphs
    )
    if not graphs:
        raise ValueError("the SavedModel has no MetaGraph")
    sigs = graphs[0].signature_def
    raw = {name: sigs[name].SerializeToString() for name in sorted(sigs)}
    # Names like __saved_model_init_op are internal: listed in metadata as TF Serving does,
    # never run as a Predict signature.
    specs = {
        name: ServedSignature.from_signature_def(name, sigs[name])
        for name in sigs
        if not name.startswith("__")
    }
    return raw, specs
