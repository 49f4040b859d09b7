"""The models package's exception hierarchy.

Every failure of checkpoint loading, export or verification is a :class:`ModelError`;
the CLI (``models.export.export_cli``) is the one boundary that turns it into a one-line message
and an exit code (:attr:`ModelError.exit_code`).
"""

from __future__ import annotations

from collections.abc import Callable


class Keyword(str):
    """A keyword argument of the export functions, named in an error message.

    ``ExportConfigError(Keyword("top_k"), " must be at least 1")`` reads ``top_k must be at
    least 1`` from Python and ``--top-k must be at least 1`` from the CLI (see
    :meth:`ModelError.render`): the library names its own parameters, the CLI its flags.
    """


class ModelError(Exception):
    """Base class of every error raised by ``models``.

    Its arguments are the message's parts, joined; :class:`Keyword` parts name parameters.
    """

    #: Process exit code the CLI uses: 2 = the input is wrong, 1 = the export itself failed.
    exit_code = 1

    def __str__(self) -> str:
        return self.render(str)

    def render(self, name: Callable[[str], str]) -> str:
        """The message with each :class:`Keyword` part spelled ``name(keyword)``."""
        return "".join(
            name(str(part)) if isinstance(part, Keyword) else str(part) for part in self.args
        )


class CheckpointError(ModelError):
    """The checkpoint directory cannot be read or does not fit the model it describes."""

    exit_code = 2


class MissingWeightsError(CheckpointError):
    """Encoder or head weights would be left at their initial (random) values."""

    def __init__(self, missing: list[str], *, context: str = "") -> None:
        self.missing = list(missing)
        shown = ", ".join(self.missing[:20])
        more = f" (+{len(self.missing) - 20} more)" if len(self.missing) > 20 else ""
        where = f" {context}" if context else ""
        super().__init__(
            f"refusing to export{where}: {len(self.missing)} weight(s) missing from the "
            f"checkpoint would stay at their random initial values: {shown}{more}"
        )


class ShapeMismatchError(CheckpointError):
    """A checkpoint tensor does not have the shape the model config implies."""

    def __init__(self, key: str, checkpoint_shape: tuple[int, ...], model_shape: tuple[int, ...]):
        self.key = key
        self.checkpoint_shape = tuple(checkpoint_shape)
        self.model_shape = tuple(model_shape)
        super().__init__(
            f"shape mismatch for {key!r}: checkpoint has {self.checkpoint_shape}, "
            f"the model config expects {self.model_shape}"
        )


class ExportConfigError(ModelError):
    """The export was asked for something inconsistent (bad task, length, output path)."""

    exit_code = 2


class VerificationError(ModelError):
    """The exported SavedModel disagrees with the reference, or uses forbidden ops."""

    exit_code = 1
