"""``ExportProgress``: an export's steps as progress bars on stderr."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tqdm import tqdm


class ExportProgress:
    """Progress on stderr (tqdm): one bar per long step, counting items where known.

    Example::

        with ExportProgress(enabled=True) as progress:
            progress.start("verifying", total=len(texts))
            progress.advance(32)
    """

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: tqdm[None] | None = None

    def __enter__(self) -> ExportProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()

    def start(self, description: str, total: int | None = None) -> None:
        """Close the previous step's bar and open one for ``description``."""
        self._close()
        if not self.enabled:
            return
        from tqdm import tqdm

        self._bar = tqdm(
            total=total,
            desc=description,
            file=sys.stderr,
            bar_format="{desc}: {n_fmt}/{total_fmt} [{elapsed}]" if total else "{desc} [{elapsed}]",
            leave=True,
        )

    def advance(self, n: int) -> None:
        """Count ``n`` more items of the current step."""
        if self._bar is not None:
            self._bar.update(n)

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
