"""The TF worker process: the only place TensorFlow runs (started with multiprocessing spawn).

Protocol over one duplex ``multiprocessing`` pipe, tuples for cheap pickling:
  parent -> worker: (LOAD, id, key, path, warmup) | (UNLOAD, id, key) |
                    (RUN, id, key, signature, {input: ndarray}, count_tokens) | (STOP,)
  worker -> parent: (id, True, payload) | (id, False, (Code, message)) | (READY, True, pid)
``key`` is (model_name, version). A RUN payload is ({output: ndarray}, seconds inside TF);
with ``count_tokens`` its outputs also hold ``TOKEN_COUNTS``: per text, the tokens the model
read, counted by the model's own ``preprocess`` signature on the text the signature embeds
(its sentence-transformers prompt prepended, from the model card), on a thread of its own
beside the signature's call (a lone text's count then adds no latency on an idle core).
The main thread only reads the pipe; runs go to a pool of ``num_threads`` threads and loads
to one loader thread, so a slow load never stalls inference of other versions.

Threads: unless the operator sets ``--tensorflow_intra_op_parallelism``, TensorFlow gets one
intra-op thread and each batch is split into one sub-batch per core, run in parallel
(:mod:`serving.sub_batches`: faster per batch and per lone text than one call over all cores).
With intra-op threads set to N, a batch is split into cores // N parts (1 part: one call);
with ``num_batch_threads`` S > 1, into cores // (N x S) parts.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from models import contract
from serving.core_api import TOKEN_COUNTS
from serving.errors import Code
from serving.signature_runner import SignatureRunner
from serving.sub_batches import SubBatches


class WorkerCommand(enum.Enum):
    """What the parent asks the worker (the first element of each message)."""

    LOAD = "load"
    UNLOAD = "unload"
    RUN = "run"
    STOP = "stop"


class WorkerEvent(enum.Enum):
    """What the worker says unasked (in place of a request id)."""

    READY = "ready"


def worker_main(conn: Connection, settings: dict[str, Any]) -> None:
    """Entry point of the spawned worker."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    # TF Serving links every tensorflow-text op; importing the package registers them here,
    # so SavedModels with in-graph tokenizers load ("Op type not registered" otherwise).
    try:
        import tensorflow_text  # noqa: F401
    except ImportError:
        pass  # models without tf-text ops still load; others fail with TF's own message

    num_threads = int(settings.get("num_threads", 1))
    parts = SubBatches.for_tensorflow(
        tf, intra_op=int(settings.get("intra_op", 0)), slots=num_threads
    )
    inter_op = int(settings.get("inter_op", 0))
    if inter_op:
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    _Worker(conn, tf, num_threads, parts, inter_op).serve()


@dataclasses.dataclass(frozen=True)
class _Loaded:
    """One loaded version and the prompt each of its signatures prepends to its text."""

    runner: SignatureRunner
    prompts: dict[str, str]  # signature name -> prompt ("" or absent: none)

    @classmethod
    def read(cls, runner: SignatureRunner, path: str) -> _Loaded:
        try:
            with open(os.path.join(path, contract.MODEL_CARD_FILE), encoding="utf-8") as fh:
                card = json.load(fh)
        except (OSError, ValueError):
            card = {}  # not one of our exports: no prompts
        named = card.get("prompts") or {}
        prompts = {contract.SERVING_PROMPT_PREFIX + name: p for name, p in named.items()}
        default = card.get("default_prompt_name")
        if default in named:
            prompts[contract.SERVING_DEFAULT] = named[default]
        return cls(runner, prompts)


class _Worker:
    def __init__(
        self, conn: Connection, tf: Any, num_threads: int, parts: SubBatches, inter_op: int
    ) -> None:
        self._conn = conn
        self._tf = tf
        self._parts = parts
        self._inter_op = inter_op
        self._send_lock = threading.Lock()
        self._loaded: dict[tuple[str, int], _Loaded] = {}
        # One thread: run on the reader thread itself, one thread hop less per request.
        self._inline = num_threads <= 1
        self._runners = ThreadPoolExecutor(
            max_workers=max(1, num_threads), thread_name_prefix="run"
        )
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="load")
        # Token counts run beside the signature's call, not after it: on an idle core a lone
        # text's count (~0.8 ms of tokenizing and packing) then costs no latency.
        self._counter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="count")

    def serve(self) -> None:
        self._send((WorkerEvent.READY, True, os.getpid()))
        while True:
            try:
                msg = self._conn.recv()
            except (EOFError, OSError):
                os._exit(0)  # parent is gone: nothing left to serve
            kind = msg[0]
            if kind is WorkerCommand.RUN:
                if self._inline:
                    self._run(*msg[1:])
                else:
                    self._runners.submit(self._run, *msg[1:])
            elif kind is WorkerCommand.LOAD:
                self._loader.submit(self._load, *msg[1:])
            elif kind is WorkerCommand.UNLOAD:
                self._loader.submit(self._unload, *msg[1:])
            elif kind is WorkerCommand.STOP:
                self._runners.shutdown(wait=True)
                self._counter.shutdown(wait=True)
                self._parts.close()
                os._exit(0)

    def _send(self, reply: tuple[Any, ...]) -> None:
        with self._send_lock:
            try:
                self._conn.send(reply)
            except (BrokenPipeError, OSError):
                os._exit(0)

    def _error_code(self, exc: BaseException) -> Code:
        errors = self._tf.errors
        if isinstance(exc, errors.InvalidArgumentError):
            return Code.INVALID_ARGUMENT
        if isinstance(exc, errors.ResourceExhaustedError | MemoryError):
            return Code.RESOURCE_EXHAUSTED
        if isinstance(exc, errors.NotFoundError):
            return Code.NOT_FOUND
        if isinstance(exc, errors.FailedPreconditionError):
            return Code.FAILED_PRECONDITION
        if isinstance(exc, TypeError | ValueError | KeyError):
            return Code.INVALID_ARGUMENT
        return Code.INTERNAL

    def _run(
        self,
        req_id: int,
        key: tuple[str, int],
        signature: str,
        inputs: dict[str, Any],
        count_tokens: bool,
    ) -> None:
        loaded = self._loaded.get(key)
        if loaded is None:
            message = f"{key[0]} version {key[1]} is not loaded in the worker"
            self._send((req_id, False, (Code.UNAVAILABLE, message)))
            return
        runner = loaded.runner

        def call(part: dict[str, Any]) -> dict[str, Any]:
            return runner.run(signature, part)

        try:
            if signature not in runner:
                raise self._tf.errors.NotFoundError(None, None, f"no signature {signature!r}")
            t0 = time.perf_counter()
            counting = (
                self._counter.submit(self._token_counts, loaded, signature, inputs[contract.TEXT])
                if count_tokens
                else None
            )
            arrays = self._parts.run(call, inputs, splittable=runner.splittable(signature))
            if counting is not None:
                arrays[TOKEN_COUNTS] = counting.result()
            self._send((req_id, True, (arrays, time.perf_counter() - t0)))
        except Exception as exc:  # every TF failure is reported, never raised into the pool
            message = f"{type(exc).__name__}: {exc}".strip()
            self._send((req_id, False, (self._error_code(exc), message)))

    def _token_counts(self, loaded: _Loaded, signature: str, texts: np.ndarray) -> np.ndarray:
        """Tokens the model read per text: the ``preprocess`` signature's input_mask summed
        over the text the signature embeds (prompt + text, truncated as the model truncates).
        """
        prompt = loaded.prompts.get(signature, "").encode()
        if prompt:  # the fronts hand every string input over as UTF-8 bytes
            texts = np.array([prompt + text for text in texts], dtype=object)
        mask = loaded.runner.run(contract.PREPROCESS, {contract.TEXT: texts})[contract.INPUT_MASK]
        return mask.astype(np.int64).sum(axis=1)

    def _load(self, req_id: int, key: tuple[str, int], path: str, warmup: bool) -> None:
        try:
            runner = SignatureRunner.load(
                self._tf, path, intra_op=self._parts.threads, inter_op=self._inter_op
            )
            n_warm = self._warmup(runner, path) if warmup else 0
            self._loaded[key] = _Loaded.read(runner, path)
            self._send((req_id, True, n_warm))
        except Exception as exc:
            message = f"loading {path} failed: {type(exc).__name__}: {exc}"
            self._send((req_id, False, (Code.INTERNAL, message)))

    def _unload(self, req_id: int, key: tuple[str, int]) -> None:
        # Not closed here: a run of this version may still be in flight on another thread.
        # The Session closes when its last run lets go of it (its memory goes back to the
        # system with the process: see serving.worker_pool).
        self._loaded.pop(key, None)
        self._send((req_id, True, None))

    def _warmup(self, runner: SignatureRunner, path: str) -> int:
        """Replay TF Serving's warmup file (PredictionLog TFRecords, predict_log only)."""
        warm_path = os.path.join(path, contract.WARMUP_FILE)
        if not os.path.exists(warm_path):
            return 0
        from tensorflow_serving.apis import prediction_log_pb2

        tf = self._tf
        n = 0
        for record in tf.data.TFRecordDataset(warm_path).take(contract.MAX_WARMUP_RECORDS):
            log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            if log.WhichOneof("log_type") != "predict_log":
                raise ValueError("warmup record is not a predict_log (only Predict is served)")
            req = log.predict_log.request
            sig = req.model_spec.signature_name or contract.SERVING_DEFAULT
            runner.run(sig, {name: tf.make_ndarray(tp) for name, tp in req.inputs.items()})
            n += 1
        return n
