"""Where the repository's own test and benchmark data lives (vendored: nothing outside the repo)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# STS benchmark test split in 11 languages, with its LICENSE and provenance (README.md there).
STSB_DIR = REPO_ROOT / "tests" / "data" / "stsb"
STSB_EN = STSB_DIR / "stsb-en-test.csv"
