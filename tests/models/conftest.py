"""Fixtures shared by the family encoder tests (one set of tiny checkpoints per session)."""

from __future__ import annotations

import pytest

from tests.support.families import FamilyCheckpoints


@pytest.fixture(scope="session")
def family_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> FamilyCheckpoints:
    return FamilyCheckpoints(tmp_path_factory.mktemp("families"))
