"""Import TensorFlow without its start-up noise on stderr.

TensorFlow's C++ side writes lines such as ``failed call to cuInit: INTERNAL: CUDA error``,
``oneDNN custom operations are on`` and absl's ``All log messages before absl::InitializeLog()``
while its shared libraries load, before ``TF_CPP_MIN_LOG_LEVEL`` is even read. On a CPU machine
none of them is a failure, yet newcomers read them as one. They are written to file descriptor 2
by C++ code, so ``contextlib.redirect_stderr`` cannot catch them: the descriptor itself is
pointed at a temporary file while the libraries load, and what was written is replayed only if
the import fails (then it is the explanation).

Example::

    from models.quiet_tensorflow import import_tensorflow

    tf = import_tensorflow()            # quiet
    tf = import_tensorflow(quiet=False) # as TensorFlow prints it (e.g. --log_level debug)
"""

from __future__ import annotations

import os
import sys
import tempfile
from types import ModuleType


def import_tensorflow(*, quiet: bool = True) -> ModuleType:
    """``import tensorflow`` (and register tensorflow-text's ops), quietly unless asked.

    Also sets ``TF_CPP_MIN_LOG_LEVEL=3`` (when not already set by the caller's environment) so
    that the CUDA probe's error line, printed at the first op, stays quiet too. Child processes
    inherit it.
    """
    if "tensorflow" in sys.modules or not quiet:
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  registers the tokenizer ops

        return tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf
            import tensorflow_text  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return tf
