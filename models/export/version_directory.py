"""TF Serving's ``BASE/VERSION`` layout: check the target, stage beside it, publish by rename.

Every export type writes through these, so a server polling BASE never sees a half-written
version and an existing version is replaced only on request.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from models.errors import ExportConfigError, Keyword


def check_version_dir(output: Path, *, overwrite: bool) -> None:
    """Refuse an ``output`` that is not ``BASE/VERSION`` or would be overwritten unasked."""
    if not output.name.isdigit() or int(output.name) <= 0:
        raise ExportConfigError(
            Keyword("output"),
            f" must be BASE/VERSION with a positive integer VERSION (TF Serving's layout), "
            f"e.g. exported/minilm/1; got {output}",
        )
    if output.exists() and not output.is_dir():
        raise ExportConfigError(f"{output} exists and is not a directory")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise ExportConfigError(
            f"{output} exists and is not empty (pass ", Keyword("overwrite"), " to replace it)"
        )


@contextlib.contextmanager
def staging_dir(output: Path) -> Iterator[Path]:
    """A hidden temp dir beside ``output`` (same filesystem, so :func:`publish` is a rename),
    removed if anything fails before it is published."""
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def publish(staging: Path, output: Path, *, overwrite: bool) -> None:
    """Move the finished version into place with renames (atomic on one file system)."""
    os.chmod(staging, 0o755)  # mkdtemp makes it 0700; a server may run as another user
    if output.exists():
        if not overwrite and any(output.iterdir()):
            raise ExportConfigError(f"{output} appeared while exporting; not replacing it")
        retired = output.with_name(f".{output.name}.old-{os.getpid()}")
        os.rename(output, retired)
        os.rename(staging, output)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.rename(staging, output)
