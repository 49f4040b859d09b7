"""``ApiKeys``: bearer-token check and reload of the keys file (in-process)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from serving import api_keys
from serving.api_keys import ApiKeys, ApiKeysError


def test_only_a_listed_key_with_the_bearer_scheme_passes(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("# ops team\nalpha-key\n\n  beta-key  \n")
    keys = ApiKeys.from_file(str(path))
    assert keys.count == 2
    assert keys.check("Bearer alpha-key") and keys.check("bearer beta-key")
    for bad in (
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic alpha-key",
        "alpha-key",
        "Bearer alpha",
        "Bearer alpha-key2",
        "Bearer # ops team",
    ):
        assert not keys.check(bad), bad


def test_keys_file_is_reloaded_when_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api_keys, "_RECHECK_SECONDS", 0.0)
    path = tmp_path / "keys"
    path.write_text("old\n")
    keys = ApiKeys.from_file(str(path))
    assert keys.check("Bearer old")
    path.write_text("new-key\n")
    os.utime(path, (1, 1))  # a different mtime even within the file system's resolution
    assert keys.check("Bearer new-key") and not keys.check("Bearer old")
    # A file emptied by mistake keeps the last good keys (it neither locks out nor opens up).
    path.write_text("\n")
    os.utime(path, (2, 2))
    assert keys.check("Bearer new-key")


def test_unusable_keys_file_is_refused_at_startup(tmp_path: Path) -> None:
    with pytest.raises(ApiKeysError, match="cannot read"):
        ApiKeys.from_file(str(tmp_path / "missing"))
    (tmp_path / "empty").write_text("# nothing\n")
    with pytest.raises(ApiKeysError, match="holds no key"):
        ApiKeys.from_file(str(tmp_path / "empty"))
