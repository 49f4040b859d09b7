"""Import ``tensorflow_hub`` on a Python whose setuptools no longer ships ``pkg_resources``."""

from __future__ import annotations

import sys
import types
from typing import Any


def import_tensorflow_hub() -> Any:
    """``import tensorflow_hub`` (0.16.1, its last release, which needs tf-keras).

    Its ``__init__`` imports ``pkg_resources.parse_version`` only to compare TensorFlow
    versions; setuptools 81+ removed ``pkg_resources``. ``packaging.version.parse`` is the
    same function, so a one-attribute stand-in is registered when the real one is missing.
    """
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        import packaging.version

        shim = types.ModuleType("pkg_resources")
        shim.parse_version = packaging.version.parse  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = shim
    import tensorflow_hub

    return tensorflow_hub
