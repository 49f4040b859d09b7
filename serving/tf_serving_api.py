"""``TfServingApi``: TF Serving's request semantics, written once for both fronts.

What a Predict, Classify, Regress, MultiInference, GetModelMetadata, GetModelStatus or
HandleReloadConfigRequest means (the default signature, which status and words answer what,
the order of the checks) is decided here, protocol-neutral. The gRPC and REST fronts only
translate the wire into these calls and the answers (or the ``ServingError``) back; the engine
(``serving.serving_core.ServingCore``) runs them.

Example::

    api = TfServingApi(core)
    result = await api.predict(
        PredictCall(
            model=ModelRef("minilm"),
            signature_name="",  # TF Serving's default: serving_default
            decode=lambda signature: inputs,  # CheckedInputs from the front's codec
            exact_dtypes=True,  # a TensorProto carries its dtype; JSON numbers do not
        )
    )
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import NoReturn

from google.protobuf import text_format

from clients.protos import signature_pb2
from models import contract
from serving.core_api import (
    TOKEN_COUNTS,
    InferenceCore,
    ModelRef,
    PredictCall,
    PredictResult,
    ServableMetadata,
    VersionStatus,
)
from serving.errors import Code, ServingError


class ExampleMethod(enum.Enum):
    """The tf.Example APIs, by the SignatureDef method_name TF Serving checks them against."""

    CLASSIFY = contract.CLASSIFY_METHOD_NAME
    REGRESS = contract.REGRESS_METHOD_NAME

    @property
    def kind(self) -> str:
        return "classification" if self is ExampleMethod.CLASSIFY else "regression"


def signature_key(signature_name: str) -> str:
    """The signature a request runs: TF Serving's default when the request names none."""
    return signature_name or contract.SERVING_DEFAULT


class TfServingApi:
    """TF Serving's API over an ``InferenceCore``; every failure is a ``ServingError``."""

    def __init__(self, core: InferenceCore) -> None:
        self.core = core

    # ------------------------------------------------------------------ PredictionService
    async def predict(self, call: PredictCall) -> PredictResult:
        """Resolve the model once, pick the signature, decode and check the inputs against it,
        run, and keep the outputs the call asked for."""
        with self.core.request_scope(api=call.api) as scope:
            servable = self.core.resolve(call.model)
            scope.model = servable.model
            name = signature_key(call.signature_name)
            signature = servable.specs.get(name)
            if signature is None:
                # TF Serving's status and words (predict_util.cc), plus what the model has.
                raise ServingError(
                    Code.FAILED_PRECONDITION,
                    f'Serving signature key "{name}" not found. Model {servable.model!r} version '
                    f"{servable.version} has {sorted(servable.specs)}",
                )
            unknown = [n for n in call.output_filter if n not in signature.outputs]
            if unknown:
                raise ServingError(
                    Code.INVALID_ARGUMENT,
                    f"output tensor alias not found in signature {name!r}: {unknown}; "
                    f"outputs are {sorted(signature.outputs)}",
                )
            checked = signature.validate(call.decode(signature), exact_dtypes=call.exact_dtypes)
            # Tokens are counted by the model's preprocess signature, on text signatures only.
            count_tokens = (
                call.count_tokens
                and contract.PREPROCESS in servable.specs
                and contract.TEXT in signature.inputs
            )
            outputs = await self.core.run(
                servable, signature, checked, deadline=call.deadline, count_tokens=count_tokens
            )
            token_counts = outputs.get(TOKEN_COUNTS) if count_tokens else None
            outputs = {n: outputs[n] for n in (call.output_filter or outputs) if n != TOKEN_COUNTS}
            return PredictResult(
                model_name=servable.model,
                version=servable.version,
                signature_name=name,
                outputs=outputs,
                signature_names=frozenset(servable.specs),
                token_counts=token_counts,
            )

    def example_method(
        self, model: ModelRef, signature_name: str, method: ExampleMethod
    ) -> NoReturn:
        """Classify / Regress: TF Serving's checks, then its answer for a server that runs
        tf.Example inputs only through Predict."""
        name = signature_key(signature_name)
        signatures = self._signature_defs(model)
        if name not in signatures:
            raise ServingError(
                Code.INVALID_ARGUMENT, f"No signature was found with the name: {name}"
            )
        _check_example_signature(signatures[name], method)
        raise ServingError(
            Code.UNIMPLEMENTED,
            f"signature '{name}' has the shape of a {method.kind} signature, but this server "
            "runs tf.Example inputs only through Predict",
        )

    def multi_inference(self, tasks: Sequence[tuple[ModelRef, str, str]]) -> NoReturn:
        """MultiInference over ``(model, signature_name, method_name)`` tasks: TF Serving's
        checks (multi_inference_helper.cc), then the same answer as ``example_method``."""
        first = tasks[0][0] if tasks else ModelRef("")
        signatures = self._signature_defs(first)
        seen: set[str] = set()
        for model, signature_name, method_name in tasks:
            if not model.name:
                raise ServingError(
                    Code.INVALID_ARGUMENT, "Found ModelSpec with an empty model name."
                )
            if model.name != first.name:
                raise ServingError(
                    Code.INVALID_ARGUMENT,
                    "All ModelSpecs in a MultiInferenceRequest must access the same model name.",
                )
            name = signature_key(signature_name)
            if name in seen:
                raise ServingError(
                    Code.INVALID_ARGUMENT, f"Duplicate evaluation of signature: {name}"
                )
            seen.add(name)
            if name not in signatures:
                raise ServingError(
                    Code.INVALID_ARGUMENT, f"Requested signature not found in model graph: {name}"
                )
            try:
                method = ExampleMethod(method_name)
            except ValueError:
                raise ServingError(
                    Code.UNIMPLEMENTED, f"Unsupported signature method_name: {method_name}"
                ) from None
            _check_example_signature(signatures[name], method)
        raise ServingError(
            Code.UNIMPLEMENTED,
            "MultiInference over tf.Example inputs is not served by this server; use Predict",
        )

    def metadata(self, model: ModelRef, fields: Sequence[str]) -> ServableMetadata:
        """GetModelMetadata: ``signature_def`` is the one field TF Serving knows."""
        if not fields:
            raise ServingError(
                Code.INVALID_ARGUMENT,
                "GetModelMetadataRequest must specify at least one metadata_field",
            )
        for field in fields:
            if field != contract.SIGNATURE_DEF_FIELD:
                raise ServingError(
                    Code.INVALID_ARGUMENT, f"Metadata field {field} is not supported"
                )
        servable = self.core.resolve(model)
        return ServableMetadata(
            model_name=servable.model,
            version=servable.version,
            signature_defs=dict(servable.signature_defs),
        )

    def signature_names(self, model: ModelRef) -> frozenset[str]:
        return frozenset(self.core.resolve(model).specs)

    # ------------------------------------------------------------------ ModelService
    def status(self, model: ModelRef) -> Sequence[VersionStatus]:
        return self.core.model_status(model)

    async def reload(self, config_kind: str | None, model_server_config: bytes) -> None:
        """HandleReloadConfigRequest: only a model_config_list, as TF Serving."""
        if config_kind != "model_config_list":
            raise ServingError(
                Code.INVALID_ARGUMENT,
                "ServerModelConfig type not supported by HandleReloadConfigRequest. Only "
                "ModelConfigList is currently supported",
            )
        await self.core.reload_config(model_server_config)

    # ------------------------------------------------------------------ helpers
    def _signature_defs(self, model: ModelRef) -> dict[str, signature_pb2.SignatureDef]:
        servable = self.core.resolve(model)
        return {
            name: signature_pb2.SignatureDef.FromString(blob)
            for name, blob in servable.signature_defs.items()
        }


def _check_example_signature(signature: signature_pb2.SignatureDef, method: ExampleMethod) -> None:
    """TF Serving's PreProcessClassification / PreProcessRegression checks (method-name check
    off, its default): a predict-only signature fails here with TF Serving's message."""
    if len(signature.inputs) != 1:
        raise ServingError(Code.INVALID_ARGUMENT, "Expected one input Tensor.")
    if method is ExampleMethod.CLASSIFY and len(signature.outputs) not in (1, 2):
        raise ServingError(
            Code.INVALID_ARGUMENT,
            f"Expected one or two output Tensors, found {len(signature.outputs)}",
        )
    if method is ExampleMethod.REGRESS and len(signature.outputs) != 1:
        raise ServingError(Code.INVALID_ARGUMENT, "Expected one output Tensor.")
    if "inputs" not in signature.inputs:
        raise ServingError(
            Code.INVALID_ARGUMENT,
            f"No {method.kind} inputs found in SignatureDef: "
            f"{text_format.MessageToString(signature)}",
        )
    wanted = ("classes", "scores") if method is ExampleMethod.CLASSIFY else ("outputs",)
    if not any(key in signature.outputs for key in wanted):
        raise ServingError(
            Code.INVALID_ARGUMENT,
            f"No {method.kind} outputs found in SignatureDef: "
            f"{text_format.MessageToString(signature)}",
        )
