#!/usr/bin/env bash
# Starts a private PostgreSQL (port 55480, data under .local/bench/) and runs one benchmark against it:
#   run-with-postgres.sh webhooks [--seconds 20] [--concurrency 16]
#   run-with-postgres.sh reports [--events 1000000]
#   run-with-postgres.sh verify [--events 1000000]
#   run-with-postgres.sh retention [--deployments 200]
#   run-with-postgres.sh slack [--presses 400] [--concurrency 16] [--webhook-workers 8]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../deploy/local/lib.sh"
cd "$REPO_ROOT"
PG_PORT="${ROLLOUTGATE_BENCH_PG_PORT:-55480}"
ensure_dotnet
ensure_packages initdb:postgresql psql:postgresql-client
PG_DATA="$(pg_data_dir "$REPO_ROOT/.local/bench/postgres")"
trap 'stop_postgres "$PG_DATA"' EXIT
start_postgres "$PG_DATA" "$PG_PORT"
export ROLLOUTGATE_BENCH_CONNECTION="Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=postgres"
[ $# -ge 1 ] || die "usage: $0 webhooks|reports|verify|retention|slack [options]"
dotnet run -c Release --project tests/RolloutGate.Benchmarks -- "$@"
