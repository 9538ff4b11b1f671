#!/usr/bin/env bash
# Builds RolloutGate and runs every test against a private PostgreSQL (port 55432), Prometheus (59090, loaded with
# known series) and Alertmanager (59093), all on 127.0.0.1 with their data under .local/test/.
# The last line is "tests: N passed, N failed"; the exit status is non-zero on any failure.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

PG_PORT="${ROLLOUTGATE_TEST_PG_PORT:-55432}"
PROMETHEUS_PORT="${ROLLOUTGATE_TEST_PROMETHEUS_PORT:-59090}"
ALERTMANAGER_PORT="${ROLLOUTGATE_TEST_ALERTMANAGER_PORT:-59093}"
ensure_dotnet
# openssl: rolloutgate-gate.sh signs with it, and its tests run it.
ensure_packages initdb:postgresql psql:postgresql-client curl:curl openssl:openssl \
  prometheus:prometheus promtool:prometheus prometheus-alertmanager:prometheus-alertmanager chromium:chromium chromedriver:chromium-driver

mkdir -p "$REPO_ROOT/.local/test"
# Two test runs over one data folder would stop each other's PostgreSQL and Prometheus.
claim_folder "$REPO_ROOT/.local/test" deploy/local/test.sh
PG_DATA="$(pg_data_dir "$REPO_ROOT/.local/test/postgres")"
PROMETHEUS_DATA="$REPO_ROOT/.local/test/prometheus"
ALERTMANAGER_DATA="$REPO_ROOT/.local/test/alertmanager"
cleanup() { stop_alertmanager "$ALERTMANAGER_DATA"; stop_prometheus "$PROMETHEUS_DATA"; stop_postgres "$PG_DATA"; release_folder "$REPO_ROOT/.local/test"; }
trap cleanup EXIT
start_postgres "$PG_DATA" "$PG_PORT"

# The known series end at a whole minute ten minutes ago: inside the retention, and tests query at that time.
PROMETHEUS_ANCHOR=$(( $(date +%s) / 60 * 60 - 600 ))
prepare_prometheus_test_data "$PROMETHEUS_DATA" "$PROMETHEUS_ANCHOR"
start_prometheus "$PROMETHEUS_DATA" "$PROMETHEUS_PORT"
rm -rf "$ALERTMANAGER_DATA"
start_alertmanager "$ALERTMANAGER_DATA" "$ALERTMANAGER_PORT"
export ROLLOUTGATE_TEST_PROMETHEUS_URL="http://127.0.0.1:$PROMETHEUS_PORT"
export ROLLOUTGATE_TEST_PROMETHEUS_ANCHOR="$PROMETHEUS_ANCHOR"
export ROLLOUTGATE_TEST_ALERTMANAGER_URL="http://127.0.0.1:$ALERTMANAGER_PORT"

# Tests create a database of their own per fixture from this server; the superuser may also tamper (audit tests).
export ROLLOUTGATE_TEST_ADMIN_CONNECTION="Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=postgres"
export ROLLOUTGATE_TEST_CONNECTION="Host=127.0.0.1;Port=$PG_PORT;Username=rolloutgate;Password=rolloutgate"

log "building"
if ! build_reporting "$REPO_ROOT/.local/test/build.log" RolloutGate.sln -c Release -nologo -v quiet; then
  echo "tests: 0 passed, 1 failed"
  exit 1
fi
results="$REPO_ROOT/.local/test/results"
rm -rf "$results"; mkdir -p "$results"

status=0
aborted=0
for project in tests/RolloutGate.Core.Tests tests/RolloutGate.Tests; do
  name="$(basename "$project")"
  log "running $name"
  dotnet test "$project" -c Release --no-build -nologo \
    --logger "trx;LogFileName=$results/$name.trx" --logger "console;verbosity=normal" \
    >"$results/$name.log" 2>&1 || status=1
  grep -E 'Total tests|Passed!|Failed!' "$results/$name.log" || true
  # A test host that crashed leaves a results file without the failure in its counters: count it as one.
  if grep -q 'Test Run Aborted' "$results/$name.log"; then
    log "$name: the test run was aborted (see $results/$name.log)"; aborted=$((aborted + 1))
  fi
done

# Each failed test with its message (up to its stack trace), last, so that a truncated log still names it.
for log_file in "$results"/*.log; do
  awk '/^[[:space:]]+Failed [^!]/ { show = 1; lines = 0 }
       /^[[:space:]]+(Stack Trace:|Passed |Skipped )/ { show = 0 }
       show && lines++ < 25 { print }' "$log_file" | tail -n 120
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
failed=$((failed + aborted))
[ "$failed" -gt 0 ] && status=1
echo "tests: $passed passed, $failed failed"
exit "$status"
