"""``PredictArguments``: the arguments of one ``predict``, shared by the four clients
(``serving.core_api.PredictCall`` is the server's decoded request, a different thing)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


def check_version_choice(version: int | None, version_label: str | None) -> None:
    if version is not None and version_label is not None:
        raise ValueError("give version or version_label, not both")


@dataclasses.dataclass(frozen=True)
class PredictArguments:
    """What one ``predict`` asks for; each protocol turns it into its own request."""

    inputs: Mapping[str, Any]
    signature_name: str
    version: int | None = None
    version_label: str | None = None
    output_filter: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_version_choice(self.version, self.version_label)
