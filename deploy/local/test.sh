#!/usr/bin/env bash
# Builds RolloutGate and runs every test against a private PostgreSQL (port 55432, data under .local/test/).
# The last line is "tests: N passed, N failed"; the exit status is non-zero on any failure.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

PG_PORT="${ROLLOUTGATE_TEST_PG_PORT:-55432}"
ensure_dotnet
ensure_packages initdb:postgresql psql:postgresql-client promtool:prometheus

PG_DATA="$(pg_data_dir "$REPO_ROOT/.local/test/postgres")"
cleanup() { stop_postgres "$PG_DATA"; }
trap cleanup EXIT
start_postgres "$PG_DATA" "$PG_PORT"

# Tests create a database of their own per fixture from this server; the superuser may also tamper (audit tests).
export ROLLOUTGATE_TEST_ADMIN_CONNECTION="Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=postgres"
export ROLLOUTGATE_TEST_CONNECTION="Host=127.0.0.1;Port=$PG_PORT;Username=rolloutgate;Password=rolloutgate"

log "building"
if ! dotnet build RolloutGate.sln -c Release -nologo -v quiet >"$REPO_ROOT/.local/test/build.log" 2>&1; then
  grep -E 'error|warning' "$REPO_ROOT/.local/test/build.log" | sort -u | head -n 40
  echo "tests: 0 passed, 1 failed"
  exit 1
fi
results="$REPO_ROOT/.local/test/results"
rm -rf "$results"; mkdir -p "$results"

status=0
for project in tests/RolloutGate.Core.Tests tests/RolloutGate.Tests; do
  name="$(basename "$project")"
  log "running $name"
  dotnet test "$project" -c Release --no-build -nologo \
    --logger "trx;LogFileName=$results/$name.trx" --logger "console;verbosity=normal" \
    >"$results/$name.log" 2>&1 || status=1
  grep -E '^\s+(Failed|Passed|Skipped) |error|Total tests|Passed!|Failed!' "$results/$name.log" | grep -vE '^\s+Passed ' | tail -n 60 || true
done

passed=0; failed=0
for trx in "$results"/*.trx; do
  [ -f "$trx" ] || continue
  counters="$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)"
  p="$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$counters")"
  f="$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$counters")"
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
done
expected=2
found=$(ls "$results"/*.trx 2>/dev/null | wc -l)
if [ "$found" -lt "$expected" ]; then
  log "only $found of $expected test projects produced results"; status=1; failed=$((failed + expected - found))
fi
[ "$failed" -gt 0 ] && status=1
echo "tests: $passed passed, $failed failed"
exit "$status"
