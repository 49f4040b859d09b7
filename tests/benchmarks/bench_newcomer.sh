#!/usr/bin/env bash
# Clone -> first embedding, as the README's first command does it, timed step by step.
# Usage: tests/benchmarks/bench_newcomer.sh [--no-cache-dir]   (from the repository root)
# Prints the wall-clock seconds of: clone, venv + install, export, server start to AVAILABLE,
# first embedding, plus the venv's size. Pass --no-cache-dir for a newcomer's cold pip cache.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
pip_flags=("$@")
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
now() { date +%s.%N; }
lap() { printf '%-34s %7.1f s\n' "$1" "$(echo "$(now) - $2" | bc)"; }

t=$(now); git clone -q "$repo" "$work/textserve"; lap "clone" "$t"
cd "$work/textserve"
t=$(now); python3 -m venv .venv && .venv/bin/pip install -q "${pip_flags[@]}" -e '.[export,server]' >/dev/null 2>&1
lap "venv + pip install .[export,server]" "$t"
t=$(now); .venv/bin/textserve-export --output exported/minilm/1 --overwrite --quiet; lap "textserve-export (verified)" "$t"
t=$(now)
.venv/bin/textserve-server --port=18500 --rest_api_port=18501 --model_name=minilm \
    --model_base_path="$PWD/exported/minilm" --enable_batching >"$work/server.log" 2>&1 &
server=$!
until curl -sf localhost:18501/v1/models/minilm 2>/dev/null | grep -q AVAILABLE; do sleep 0.2; done
lap "server start to AVAILABLE" "$t"
t=$(now); curl -sf localhost:18501/v1/embeddings -d '{"model":"minilm","input":["hello"]}' >/dev/null
lap "first embedding (REST)" "$t"
printf '%-34s %s\n' "venv size" "$(du -sh .venv | cut -f1)"
printf '%-34s %s\n' "load average at the end" "$(cut -d' ' -f1-3 /proc/loadavg)"
