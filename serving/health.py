"""``GET /v1/health`` (and TEI's ``/health``): one status code a probe can act on.

200 ``{"status": "ok"}`` while the core serves (not draining, worker alive, every configured
model has an AVAILABLE version); 503 ``{"error": reason}`` otherwise, naming each model that is
not AVAILABLE and why (the words of the error a request to it would get).
"""

from __future__ import annotations

from typing import Any

from serving.core_api import InferenceCore, ModelRef
from serving.errors import ServingError


def health(core: InferenceCore) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body)."""
    if core.is_serving():
        return 200, {"status": "ok"}
    reasons = []
    for name in core.model_names():
        try:
            core.resolve(ModelRef(name=name))
        except ServingError as exc:
            reasons.append(exc.message)
    if not core.model_names():
        reasons.append("no model is configured")
    if not reasons:
        reasons.append("the server is shutting down or its TF worker is restarting")
    return 503, {"error": "not ready: " + "; ".join(reasons)}
