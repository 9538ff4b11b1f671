#!/usr/bin/env bash
# Starts a private PostgreSQL (port 55481) and Prometheus (port 59481, backfilled with Istio-shaped series of a few
# workloads, --workloads N), data under .local/bench/, and runs the watch scale benchmark against them.
# Arguments go to the benchmark: --watches 100,1000 (comma-separated N), --workloads 5, --minutes 3,
# --set Key=Value (service config), --answers R (R requests a second of each kind people and pipelines send, timed),
# --regress P% [--regress-in M] (P% of the workloads regress together M minutes after the series are written).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../deploy/local/lib.sh"
cd "$REPO_ROOT"
PG_PORT="${ROLLOUTGATE_BENCH_WATCH_PG_PORT:-55481}"
PROMETHEUS_PORT="${ROLLOUTGATE_BENCH_WATCH_PROMETHEUS_PORT:-59481}"
ensure_dotnet
ensure_packages initdb:postgresql psql:postgresql-client curl:curl prometheus:prometheus promtool:prometheus
mkdir -p "$REPO_ROOT/.local/bench"
PG_DATA="$(pg_data_dir "$REPO_ROOT/.local/bench/watch-postgres")"
PROMETHEUS_DATA="$REPO_ROOT/.local/bench/watch-prometheus"
cleanup() { stop_prometheus "$PROMETHEUS_DATA"; stop_postgres "$PG_DATA"; }
trap cleanup EXIT

dotnet build tests/RolloutGate.Benchmarks -c Release -nologo -v quiet
stop_prometheus "$PROMETHEUS_DATA"
rm -rf "$PROMETHEUS_DATA"; mkdir -p "$PROMETHEUS_DATA"
dotnet run -c Release --no-build --project tests/RolloutGate.Benchmarks -- watch-series "$PROMETHEUS_DATA.om" "$@"
promtool tsdb create-blocks-from openmetrics "$PROMETHEUS_DATA.om" "$PROMETHEUS_DATA" >"$PROMETHEUS_DATA.backfill.log" 2>&1 \
  || { cat "$PROMETHEUS_DATA.backfill.log" >&2; die "promtool could not backfill the watch series"; }
start_prometheus "$PROMETHEUS_DATA" "$PROMETHEUS_PORT"
start_postgres "$PG_DATA" "$PG_PORT"

export ROLLOUTGATE_BENCH_CONNECTION="Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=postgres"
export ROLLOUTGATE_BENCH_PROMETHEUS_URL="http://127.0.0.1:$PROMETHEUS_PORT"
if [ -f "$PROMETHEUS_DATA.om.regression-at" ]; then
  export ROLLOUTGATE_BENCH_WATCH_REGRESSION_AT="$(cat "$PROMETHEUS_DATA.om.regression-at")"
fi
dotnet run -c Release --no-build --project tests/RolloutGate.Benchmarks -- watches "$@"
