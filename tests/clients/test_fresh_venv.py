"""A fresh virtual environment with only the ``client`` extra: installs, has no TensorFlow,
embeds against the real server over gRPC and REST, and ``textserve-loadtest`` there says
which extra it needs.

Runs by default: with the load-test dependencies in their own ``loadtest`` extra, the light
install (numpy, protobuf, grpcio, httpx) took well under a minute on the busy 2-core
development machine (README, "Clients"). The time is printed (``pytest -s`` or ``-rP``
shows it), never asserted: a benchmark figure, not a pass/fail criterion. The harness itself
is tested with the full environment in ``test_loadtest.py``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.clients.conftest import MODEL
from tests.support.server_process import ServerProcess

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_client_extra_alone_embeds_against_the_server(
    minilm_server: ServerProcess, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"{REPO}[client]"],
        check=True,
        timeout=600,
        cwd=tmp_path,  # not the repository: the installed package must be what is imported
    )
    print(f"fresh venv + pip install textserve[client]: {time.monotonic() - started:.1f} s")
    code = (
        "import importlib.util, sys\n"
        "from clients import GrpcClient, RestClient\n"
        f"with GrpcClient({minilm_server.grpc_target!r}, model_name={MODEL!r}) as c:\n"
        "    g = c.embed(['light client'])\n"
        f"with RestClient({minilm_server.rest_url!r}, model_name={MODEL!r}) as c:\n"
        "    r = c.embed(['light client'])\n"
        "assert g.shape == (1, 384) and abs(g - r).max() < 1e-6, (g.shape, abs(g - r).max())\n"
        "heavy = ('tensorflow', 'rich', 'matplotlib')\n"
        "found = [m for m in heavy if importlib.util.find_spec(m) is not None]\n"
        "assert not found, f'installed in the light venv: {found}'\n"
        "assert 'tensorflow' not in sys.modules\n"
        "import clients; print(clients.__file__)\n"
    )
    result = subprocess.run(
        [str(python), "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert str(venv) in result.stdout  # the installed copy, not the checkout
    cli = subprocess.run(
        [
            str(venv / "bin" / "textserve-loadtest"),
            "--address",
            minilm_server.grpc_target,
            "--synthetic",
            "8",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 2, cli.stdout + cli.stderr
    assert "pip install 'textserve[loadtest]'" in cli.stderr
    assert "Traceback" not in cli.stderr
