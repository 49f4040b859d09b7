"""The documentation's commands run as written, so the docs cannot drift from the code.

Every fenced block marked ``runnable`` (```` ```bash runnable ````, ```` ```python runnable ````)
in README.md, the area guides (``*/README.md``) and ``docs/*.md`` is run against a real
``textserve-server`` started with the README's own server command; only the ports, the base path
and the venv's location are substituted. The README's fresh-machine commands are checked too:
the test command is exactly what ``.ci/run`` runs, and the serve command's export and server
flags are the ones the tests use.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.data import REPO_ROOT
from tests.support.server_process import ServerProcess

_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    doc: str
    line: int
    language: str
    code: str
    runnable: bool

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}"


def doc_files() -> list[Path]:
    tracked = subprocess.run(
        ["git", "ls-files", "*.md"], cwd=REPO_ROOT, check=True, capture_output=True, text=True
    ).stdout.split()
    keep = [
        name
        for name in tracked
        if name == "README.md"
        or re.fullmatch(r"[a-z_]+/README\.md", name)
        or re.fullmatch(r"docs/[^/]+\.md", name)
    ]
    return [REPO_ROOT / name for name in sorted(keep)]


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    found = []
    for match in _FENCE.finditer(text):
        info = match.group(1).split()
        found.append(
            Block(
                doc=str(path.relative_to(REPO_ROOT)),
                line=text.count("\n", 0, match.start()) + 1,
                language=info[0] if info else "",
                code=match.group(2),
                runnable="runnable" in info[1:],
            )
        )
    return found


def readme_fresh_machine_commands() -> tuple[str, str]:
    """The two one-line commands under the README's first heading."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Two commands on a fresh machine", 1)[1].split("\n## ", 1)[0]
    commands = [b.code.strip() for b in blocks_of_text(section) if b.language == "bash"]
    assert len(commands) == 2, commands
    return commands[0], commands[1]


def blocks_of_text(text: str) -> list[Block]:
    return [
        Block("README.md", 0, (m.group(1).split() or [""])[0], m.group(2), False)
        for m in _FENCE.finditer(text)
    ]


def _step(command: str, program: str) -> list[str]:
    for step in command.split("&&"):
        words = shlex.split(step.replace('"$PWD', '"/PWD'))
        if words and words[0].endswith(program):
            return words[1:]
    raise AssertionError(f"no {program} step in {command!r}")


RUNNABLE = [b for path in doc_files() for b in blocks(path) if b.runnable]


def test_docs_have_runnable_blocks() -> None:
    # The README's tour at least; a doc that loses its marks would silently stop being tested.
    assert sum(b.doc == "README.md" for b in RUNNABLE) >= 3


def test_runnable_blocks_are_bash_or_python() -> None:
    assert {b.language for b in RUNNABLE} <= {"bash", "python"}


def test_readme_test_command_is_what_ci_runs() -> None:
    _, test_command = readme_fresh_machine_commands()
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci


def test_readme_serve_command_exports_and_serves_with_known_flags() -> None:
    serve, _ = readme_fresh_machine_commands()
    assert "pip install -e '.[export,server]'" in serve
    from models.export.export_cli import build_parser as export_parser

    export_args = export_parser().parse_args(_step(serve, "textserve-export"))
    assert export_args.checkpoint is None  # the bundled model
    assert str(export_args.output) == "exported/minilm/1" and export_args.overwrite

    from serving.server_flags import parse_args

    config = parse_args(_step(serve, "textserve-server"))  # raises on flags the server refuses
    assert (config.grpc_port, config.rest_port) == (8500, 8501)
    assert [(m.name, m.base_path) for m in config.models] == [("minilm", "/PWD/exported/minilm")]


_SET_BY_THE_TEST = ("--port=", "--rest_api_port=", "--model_name=", "--model_base_path=")


@pytest.fixture(scope="module")
def readme_server(exported_minilm: Path) -> Iterator[ServerProcess]:
    """The README's server command, on free ports and the test's export."""
    serve, _ = readme_fresh_machine_commands()
    flags = [
        flag for flag in _step(serve, "textserve-server") if not flag.startswith(_SET_BY_THE_TEST)
    ]
    with ServerProcess(model_name="minilm", model_base_path=exported_minilm, args=flags) as server:
        yield server


def _localise(code: str, server: ServerProcess, scratch: Path) -> str:
    code = code.replace("localhost:8500", server.grpc_target.replace("127.0.0.1", "localhost"))
    code = code.replace("localhost:8501", f"localhost:{server.rest_port}")
    code = code.replace(".venv/bin/", f"{Path(sys.executable).parent}/")
    code = code.replace("reports/", f"{scratch}/")
    # curl -s prints an HTTP error body and exits 0; here an error must fail the block.
    return code.replace("curl -s ", "curl -sfS ")


@pytest.mark.parametrize("block", RUNNABLE, ids=str)
def test_runnable_block(block: Block, readme_server: ServerProcess, tmp_path: Path) -> None:
    code = _localise(block.code, readme_server, tmp_path)
    if block.language == "bash":
        argv = ["bash", "-euo", "pipefail", "-c", code]
    else:
        argv = [sys.executable, "-c", code]
    done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{block} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
