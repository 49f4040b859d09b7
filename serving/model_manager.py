"""Which model versions are served: version policies, labels, polling, load-before-unload.

States follow TF Serving's ServableState: START -> LOADING -> AVAILABLE -> UNLOADING -> END;
a version that failed to load is END with an error. A new version is loaded (and warmed up
by the worker) before any old one is unloaded; an old version is unloaded only once no
request uses it and at least one wanted version is AVAILABLE, so a broken new version
leaves the old one serving.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence

from models import contract
from serving.core_api import ModelRef, VersionState, VersionStatus
from serving.errors import Code, ServingError
from serving.served_signature import ServedSignature, parse_saved_model_signatures
from serving.server_config import ModelConfig
from serving.serving_metrics import ServingMetrics

_LOG = logging.getLogger("textserve.models")

# load(key, path, keep): keep = every version that stays served (the worker pool starts a
# fresh worker when a load would leave the current one holding anything else).
LoadFn = Callable[[tuple[str, int], str, Mapping[tuple[str, int], str]], Awaitable[int]]
UnloadFn = Callable[[tuple[str, int]], Awaitable[None]]


@dataclasses.dataclass(eq=False)
class ServableVersion:
    """One version of one model, as the manager tracks it."""

    model: str
    version: int
    path: str
    state: VersionState = VersionState.START
    error: ServingError | None = None
    signature_defs: dict[str, bytes] = dataclasses.field(default_factory=dict)
    specs: dict[str, ServedSignature] = dataclasses.field(default_factory=dict)
    inflight: int = 0
    fingerprint: tuple[float, int] = (0.0, 0)
    idle: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    # From the export's model card: the batcher costs texts at most this long (0: unknown),
    # and as their own tokens only when the encoder skips padding (no length grouping needed).
    max_seq_length: int = 0
    skips_padding: bool = False

    @property
    def key(self) -> tuple[str, int]:
        return (self.model, self.version)

    def acquire(self) -> None:
        self.inflight += 1
        self.idle.clear()

    def release(self) -> None:
        self.inflight -= 1
        if self.inflight == 0:
            self.idle.set()


@dataclasses.dataclass(eq=False)
class _Model:
    config: ModelConfig
    versions: dict[int, ServableVersion] = dataclasses.field(default_factory=dict)
    # The label map requests resolve through: the config's, once it passed the label check.
    labels: dict[str, int] = dataclasses.field(default_factory=dict)
    # The versions the policy selects from what is on disk, as of the last poll.
    wanted: set[int] = dataclasses.field(default_factory=set)
    # Why the last poll found no version directory ("" when it found some).
    no_versions: str = ""


def _fingerprint(path: str) -> tuple[float, int]:
    """(newest mtime, file count) of a version directory: changes while it is being copied."""
    newest, count = 0.0, 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                newest = max(newest, os.stat(os.path.join(root, f)).st_mtime)
            except OSError:
                continue
            count += 1
    return newest, count


def _card_costing(path: str) -> tuple[int, bool]:
    """(max_seq_length, skips_padding) from the export's model card; (0, False) for SavedModels
    without one (any TF Serving model): their texts are costed at their full estimated length,
    padded to the longest of their batch.
    """
    try:
        with open(os.path.join(path, contract.MODEL_CARD_FILE), encoding="utf-8") as fh:
            card = json.load(fh)
        value, skips = card.get("max_seq_length"), card.get("skips_padding")
    except (OSError, ValueError, AttributeError):
        return 0, False
    return (int(value) if isinstance(value, int) and value > 0 else 0), skips is True


def _no_versions_message(name: str, base_path: str) -> str:
    """TF Serving's words for an empty base path, plus what to change when we can tell."""
    msg = f"No versions of servable {name} found under base path {base_path}"
    if not os.path.exists(base_path):
        return f"{msg} (the path does not exist)"
    if os.path.isfile(os.path.join(base_path, "saved_model.pb")):
        parent, leaf = os.path.split(os.path.normpath(base_path))
        if leaf.isdigit():
            return (
                f"{msg}: it is version directory {leaf} itself; pass its parent {parent} as "
                f"the base path (--model_base_path or base_path in the model config)"
            )
        return (
            f"{msg}: it holds a SavedModel itself; move it into a version directory "
            f"(e.g. {os.path.join(base_path, '1')}) and keep {base_path} as the base path"
        )
    return f"{msg} (version directories are named by number and hold saved_model.pb)"


def _versions_on_disk(base_path: str) -> dict[int, str]:
    try:
        names = os.listdir(base_path)
    except OSError:
        return {}
    found = {}
    for name in names:
        if name.isdigit() and os.path.isfile(os.path.join(base_path, name, "saved_model.pb")):
            found[int(name)] = os.path.join(base_path, name)
    return found


class ModelManager:
    """Tracks models and versions; loads and unloads them through the worker callables."""

    def __init__(
        self,
        *,
        load: LoadFn,
        unload: UnloadFn,
        metrics: ServingMetrics,
        allow_labels_for_unavailable: bool = False,
    ) -> None:
        self._allow_labels_for_unavailable = allow_labels_for_unavailable
        self._load = load
        self._unload = unload
        self._metrics = metrics
        self._models: dict[str, _Model] = {}
        self._lock = asyncio.Lock()

    # --- configuration and polling --------------------------------------------------------

    async def apply_config(self, models: Sequence[ModelConfig]) -> None:
        """Serve exactly these models (HandleReloadConfigRequest / config file reload).

        Versions are loaded first, then the labels are checked as TF Serving checks them: a
        label may only point at an AVAILABLE version (with ``allow_labels_for_unavailable``,
        a new or unchanged label may point at any). Otherwise FAILED_PRECONDITION with TF
        Serving's message, and every model keeps its previous labels.
        """
        async with self._lock:
            wanted = {m.name: m for m in models}
            for name in list(self._models):
                if name not in wanted:
                    await self._retire(self._models[name], set(self._models[name].versions))
                    del self._models[name]
            for name, cfg in wanted.items():
                if name in self._models:
                    self._models[name].config = cfg
                else:
                    self._models[name] = _Model(cfg)
            await self._reconcile_locked()
            self._update_labels_locked()

    async def poll(self) -> None:
        """One scan of every base path: load new versions, retire old ones."""
        async with self._lock:
            await self._reconcile_locked()

    async def _reconcile_locked(self) -> None:
        disk = {}
        for model in self._models.values():
            disk[model.config.name] = on_disk = _versions_on_disk(model.config.base_path)
            model.wanted = set(model.config.version_policy.select(sorted(on_disk)))
        for model in list(self._models.values()):
            on_disk = disk[model.config.name]
            wanted = model.wanted
            model.no_versions = (
                "" if on_disk else _no_versions_message(model.config.name, model.config.base_path)
            )
            if model.no_versions:
                # Every poll, as TF Serving does, until a version appears.
                _LOG.warning(
                    model.no_versions,
                    extra={"event": "no_versions", "model": model.config.name},
                )
            loads = []
            for v in sorted(wanted):
                sv = model.versions.get(v)
                if sv is not None and sv.state in (VersionState.LOADING, VersionState.AVAILABLE):
                    continue
                fp = _fingerprint(on_disk[v])
                if sv is not None and sv.error is not None and sv.fingerprint == fp:
                    continue  # failed before and unchanged since: do not retry every poll
                sv = ServableVersion(model.config.name, v, on_disk[v], fingerprint=fp)
                sv.idle.set()
                model.versions[v] = sv
                loads.append(self._load_version(sv))
            if loads:
                await asyncio.gather(*loads)
            if any(
                model.versions[v].state == VersionState.AVAILABLE
                for v in wanted
                if v in model.versions
            ):
                stale = {
                    v
                    for v, sv in model.versions.items()
                    if v not in wanted and sv.state == VersionState.AVAILABLE
                }
                await self._retire(model, stale)

    async def _load_version(self, sv: ServableVersion) -> None:
        sv.state, sv.error = VersionState.LOADING, None
        _LOG.info(
            "loading",
            extra={
                "event": "version_loading",
                "model": sv.model,
                "version": sv.version,
                "path": sv.path,
            },
        )
        try:
            with open(os.path.join(sv.path, "saved_model.pb"), "rb") as fh:
                sv.signature_defs, sv.specs = parse_saved_model_signatures(fh.read())
            sv.max_seq_length, sv.skips_padding = _card_costing(sv.path)
            records = await self._load(sv.key, sv.path, self._keep())
        except ServingError as exc:
            if exc.code is Code.UNAVAILABLE:
                # The worker died mid-load; the restart reloads everything still LOADING.
                return
            self._fail(sv, exc)
            return
        except Exception as exc:  # unreadable or corrupt saved_model.pb
            self._fail(
                sv, ServingError(Code.INTERNAL, f"cannot read {sv.path}/saved_model.pb: {exc}")
            )
            return
        sv.state = VersionState.AVAILABLE
        self._metrics.version_available.labels(sv.model, str(sv.version)).set(1)
        _LOG.info(
            "available",
            extra={
                "event": "version_available",
                "model": sv.model,
                "version": sv.version,
                "warmup_records": records,
            },
        )

    def _keep(self) -> dict[tuple[str, int], str]:
        """Every version that stays served: wanted by its policy and loading or loaded."""
        return {
            sv.key: sv.path
            for model in self._models.values()
            for v in model.wanted
            if (sv := model.versions.get(v)) is not None
            and sv.state in (VersionState.LOADING, VersionState.AVAILABLE)
        }

    def _fail(self, sv: ServableVersion, exc: ServingError) -> None:
        sv.state, sv.error = VersionState.END, exc
        _LOG.error(
            "load failed",
            extra={
                "event": "version_load_failed",
                "model": sv.model,
                "version": sv.version,
                "error": exc.message,
            },
        )

    async def _retire(self, model: _Model, versions: set[int]) -> None:
        """UNLOADING: no new requests; wait for in-flight ones; then unload from the worker."""
        retiring = [
            model.versions[v] for v in versions if model.versions[v].state == VersionState.AVAILABLE
        ]
        for sv in retiring:
            sv.state = VersionState.UNLOADING
            self._metrics.version_available.labels(sv.model, str(sv.version)).set(0)
        for sv in retiring:
            await sv.idle.wait()
            try:
                await self._unload(sv.key)
            except ServingError:
                pass  # a dead worker holds nothing to unload
            sv.state = VersionState.END
            _LOG.info(
                "unloaded",
                extra={"event": "version_unloaded", "model": sv.model, "version": sv.version},
            )

    def _update_labels_locked(self) -> None:
        for model in self._models.values():
            for label, v in model.config.version_labels.items():
                sv = model.versions.get(v)
                if sv is not None and sv.state == VersionState.AVAILABLE:
                    continue
                if self._allow_labels_for_unavailable and model.labels.get(label, v) == v:
                    continue  # TF Serving: a new (or unchanged) label only, never a move
                raise ServingError(
                    Code.FAILED_PRECONDITION,
                    f"Request to assign label to version {v} of model {model.config.name}, "
                    "which is not currently available for inference",
                )
        for model in self._models.values():
            model.labels = dict(model.config.version_labels)

    # --- worker restarts -----------------------------------------------------------------

    def mark_all_loading(self) -> list[ServableVersion]:
        """After a worker crash: every served version is LOADING again until reloaded."""
        out = []
        for model in self._models.values():
            for sv in model.versions.values():
                if sv.state in (VersionState.AVAILABLE, VersionState.LOADING):
                    if sv.state == VersionState.AVAILABLE:
                        self._metrics.version_available.labels(sv.model, str(sv.version)).set(0)
                    sv.state = VersionState.LOADING
                    out.append(sv)
        return out

    async def reload(self, versions: Sequence[ServableVersion]) -> None:
        async with self._lock:
            await asyncio.gather(
                *(self._load_version(sv) for sv in versions if sv.state == VersionState.LOADING)
            )
            await self._reconcile_locked()

    # --- lookups for requests ------------------------------------------------------------

    def model_names(self) -> list[str]:
        return sorted(self._models)

    def all_available(self) -> bool:
        return bool(self._models) and all(
            any(sv.state == VersionState.AVAILABLE for sv in m.versions.values())
            for m in self._models.values()
        )

    def _model(self, name: str) -> _Model:
        model = self._models.get(name)
        if model is None:
            raise ServingError(
                Code.NOT_FOUND, f"Servable not found for request: model {name!r} is not served"
            )
        return model

    def _version_for(self, model: _Model, ref: ModelRef) -> int | None:
        if ref.label is not None:
            v = model.labels.get(ref.label)
            if v is None:  # TF Serving's code and words
                raise ServingError(
                    Code.INVALID_ARGUMENT, f"Unrecognized servable version label: {ref.label}"
                )
            return v
        return ref.version

    def resolve(self, ref: ModelRef) -> ServableVersion:
        """The AVAILABLE version a request should run on (latest when unspecified)."""
        model = self._model(ref.name)
        wanted = self._version_for(model, ref)
        if wanted is None:
            available = [sv for sv in model.versions.values() if sv.state == VersionState.AVAILABLE]
            if not available:
                if not model.versions and model.no_versions:
                    raise ServingError(Code.UNAVAILABLE, model.no_versions)
                states = sorted({str(sv.state) for sv in model.versions.values()}) or [
                    "no version on disk"
                ]
                raise ServingError(
                    Code.UNAVAILABLE,
                    f"model {ref.name!r} has no AVAILABLE version yet ({', '.join(states)})",
                )
            return max(available, key=lambda sv: sv.version)
        sv = model.versions.get(wanted)
        if sv is None or sv.state == VersionState.END:
            raise ServingError(
                Code.NOT_FOUND,
                f"Servable not found for request: version {wanted} of model {ref.name!r}",
            )
        if sv.state != VersionState.AVAILABLE:
            raise ServingError(
                Code.UNAVAILABLE, f"version {wanted} of model {ref.name!r} is {sv.state}"
            )
        return sv

    def status(self, ref: ModelRef) -> list[VersionStatus]:
        model = self._model(ref.name)
        wanted = self._version_for(model, ref)
        versions = sorted(model.versions.values(), key=lambda sv: -sv.version)
        if not versions and model.no_versions:
            # TF Serving's status call answers NOT_FOUND for a model with no version yet.
            raise ServingError(
                Code.NOT_FOUND,
                f"Could not find any versions of model {ref.name}: {model.no_versions}",
            )
        if wanted is not None:
            versions = [sv for sv in versions if sv.version == wanted]
            if not versions:
                raise ServingError(
                    Code.NOT_FOUND, f"version {wanted} of model {ref.name!r} is not known"
                )
        return [
            VersionStatus(
                version=sv.version,
                state=sv.state,
                error_code=sv.error.code.grpc_value if sv.error else 0,
                error_message=sv.error.message if sv.error else "",
            )
            for sv in versions
        ]

    def loaded_versions(self) -> list[ServableVersion]:
        return [
            sv
            for m in self._models.values()
            for sv in m.versions.values()
            if sv.state == VersionState.AVAILABLE
        ]
