"""A bounded property-based run of ``serving/openapi.json`` against a real server (schemathesis).

Every operation of the document gets generated requests (valid and not) on a server with the
tiny embedding model; the checks: no 5xx, and every response that the document describes
matches its schema (so the document is no looser than what the server answers).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from models import contract
from tests.support.server_process import ServerProcess


@pytest.fixture(scope="module")
def conformance_server(tiny_model_dir: Path) -> Iterator[ServerProcess]:
    with ServerProcess(
        model_name="tiny",
        model_base_path=tiny_model_dir,
        args=["--enable_batching", "--max_rows_per_request=64"],
    ) as server:
        yield server


def test_no_server_error_and_no_response_outside_the_schema(
    conformance_server: ServerProcess,
) -> None:
    # Driven per operation with hypothesis directly: schemathesis' pytest plugin (from_fixture)
    # does not run under this pytest.
    schema = schemathesis.openapi.from_url(conformance_server.rest_url + contract.OPENAPI_PATH)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20  # every path of the document, new ones included

    failures: list[str] = []
    for operation in operations:

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=25,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[hypothesis.Phase.generate],
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        def run(case: Any) -> None:
            case.call_and_validate(
                checks=[not_a_server_error, response_schema_conformance], timeout=60
            )

        try:
            run()
        except Exception as exc:  # noqa: BLE001  (collect every operation's failure, then fail)
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
