"""``textserve-server``: tensorflow_model_server's command line over ``serving.server.serve``."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    # Inherited by the TF worker process, which is the only one that imports TensorFlow.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import asyncio

    from serving.server_config import ConfigError
    from serving.server_flags import parse_args

    try:
        config = parse_args(argv)
    except ConfigError as exc:
        print(f"textserve-server: error: {exc}", file=sys.stderr)
        return 2
    from serving.server import serve

    return asyncio.run(serve(config))


if __name__ == "__main__":
    sys.exit(main())
