"""The repository is self-contained: nothing in it reads a sibling directory."""

import subprocess

from tests.support.data import REPO_ROOT, STSB_DIR

# Spelled in pieces so this file does not match itself.
_SIBLING = "../" + "shared"


def test_no_tracked_file_refers_to_a_sibling_directory() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, check=True, capture_output=True
    ).stdout.split(b"\0")
    offenders = []
    for name in filter(None, tracked):
        path = REPO_ROOT / name.decode()
        if not path.is_file():
            continue
        if _SIBLING.encode() in path.read_bytes():
            offenders.append(name.decode())
    assert offenders == []


def test_vendored_stsb_is_complete_with_its_license() -> None:
    languages = sorted(p.name for p in STSB_DIR.glob("stsb-*-test.csv"))
    assert len(languages) == 11
    assert (STSB_DIR / "LICENSE").is_file() and (STSB_DIR / "README.md").is_file()
    # 1,379 pairs per language, no header row.
    for name in languages:
        lines = (STSB_DIR / name).read_text(encoding="utf-8").splitlines()
        assert len(lines) == 1379, name
