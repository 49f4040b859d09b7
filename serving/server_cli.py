"""``textserve-server``: tensorflow_model_server's command line over ``serving.server.serve``."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    import asyncio

    from serving.server_config import ConfigError
    from serving.server_flags import parse_args

    try:
        config = parse_args(argv)
    except ConfigError as exc:
        print(f"textserve-server: error: {exc}", file=sys.stderr)
        return 2
    if config.log_level != "debug":
        # Inherited by the TF worker process, which is the only one that imports TensorFlow;
        # what TF prints before reading it is filtered by serving.native_log.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from serving.server import PortInUseError, serve

    try:
        return asyncio.run(serve(config))
    except PortInUseError as exc:
        print(f"textserve-server: error: {exc.strerror}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
