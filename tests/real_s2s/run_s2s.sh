#!/usr/bin/env bash
# Run huggingface/speech-to-speech's REAL OpenAI-Realtime server (its `serve` command: routing,
# event handling, session, pool, VAD/STT/LLM handler code) with stand-in models and no weights.
# The upstream source is exported, unedited, from a git dir into a fresh temp dir at each run;
# nothing of it is kept in this kit. See README.md beside this file.
#
# usage: ./run_s2s.sh [--port N] [--keep] [-- more `speech-to-speech serve` args]
#   --port N   port to listen on (default 8765, the server's own default); binds 127.0.0.1
#   --keep     keep the temp dir with the exported source
# env:
#   S2S_GIT_DIR   git dir of a clone or mirror of github:huggingface/speech-to-speech (required)
#   S2S_REF       commit to export (default 9f59bc7…, the commit the kit was tried with)
#   S2S_VENV      venv to create/use (default /tmp/s2s-venv), from requirements.txt
#   S2S_STUB_*    stand-in behaviour, see stub_modules/s2s_stand_in.py and torch/__init__.py
set -euo pipefail

KIT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PORT=8765 KEEP=0 EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --port) PORT="$2"; shift 2 ;;
    --port=*) PORT="${1#*=}"; shift ;;
    --keep) KEEP=1; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "run_s2s: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

GIT_DIR_="${S2S_GIT_DIR:?run_s2s: set S2S_GIT_DIR to a git dir of github.com/huggingface/speech-to-speech}"
REF="${S2S_REF:-9f59bc72f66ee84b006e2682b9547144e7f74827}"
VENV="${S2S_VENV:-/tmp/s2s-venv}"

# 1. A venv with the light dependencies (no torch, no model packages).
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c 'import fastapi, uvicorn, openai, transformers, scipy, rich, requests, PIL' 2>/dev/null \
  || "$VENV/bin/pip" install -q -r "$KIT_DIR/requirements.txt"

# 2. The upstream's src/ tree, unedited, in a temp dir.
WORK="$(mktemp -d "${TMPDIR:-/tmp}/s2s-upstream.XXXXXX")"
cleanup() {
  if [ -n "${SERVER_PID:-}" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true   # SIGTERM: the server's own graceful shutdown
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ "$KEEP" = 1 ]; then echo "run_s2s: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
git --git-dir="$GIT_DIR_" archive "$REF" src | tar -x -C "$WORK"
echo "run_s2s: speech-to-speech $(git --git-dir="$GIT_DIR_" rev-parse --short "$REF") from $GIT_DIR_," \
     "serving ws://127.0.0.1:$PORT/v1/realtime" >&2

# 3. Its own `serve`, with the stand-ins first on the import path.
cd "$WORK"
PYTHONPATH="$KIT_DIR/stub_modules:$WORK/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 \
  "$VENV/bin/python" "$KIT_DIR/launch.py" --port "$PORT" ${EXTRA[@]+"${EXTRA[@]}"} &
SERVER_PID=$!
wait "$SERVER_PID"
