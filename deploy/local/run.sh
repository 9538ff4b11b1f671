#!/usr/bin/env bash
# Runs RolloutGate locally on http://127.0.0.1:8080 with everything it needs, all on 127.0.0.1, data under .local/run/:
#   - PostgreSQL (port 55433), migrated at start-up by the service itself;
#   - with no RolloutGate__Prometheus__Url: a Prometheus (port 9090) scraping the built-in demo workload, which
#     exports Istio-shaped metrics for service "checkout" in namespace "shop" at /demo/metrics, and can be made slow or
#     failing at /demo/faults (README.md, "See a regression caught");
#   - with no RolloutGate__Alertmanager__Url: an Alertmanager (port 9093) with no alerts;
#   - with no RolloutGate__Slack__BotToken: decisions go to the local decision inbox (the service's log).
# A webhook secret and API tokens are generated once into .local/run/secrets.env and reused. Ctrl-C stops everything
# this script started, and so does SIGTERM (`kill PID`; a background job that a script started ignores Ctrl-C's SIGINT,
# and bash cannot trap a signal ignored on entry). Running it again reuses what is there.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

PORT="${ROLLOUTGATE_PORT:-8080}"
PG_PORT="${ROLLOUTGATE_PG_PORT:-55433}"
PROMETHEUS_PORT="${ROLLOUTGATE_PROMETHEUS_PORT:-9090}"
ALERTMANAGER_PORT="${ROLLOUTGATE_ALERTMANAGER_PORT:-9093}"
RUN_DIR="$REPO_ROOT/.local/run"
mkdir -p "$RUN_DIR"
# A second run.sh in this checkout would restart the first one's Prometheus and stop its PostgreSQL on exit.
claim_folder "$RUN_DIR" deploy/local/run.sh

ensure_dotnet
# openssl: README.md signs webhooks with it by hand.
packages=(initdb:postgresql psql:postgresql-client curl:curl openssl:openssl)
[ -z "${RolloutGate__Prometheus__Url:-}" ] && packages+=(prometheus:prometheus promtool:prometheus)
[ -z "${RolloutGate__Alertmanager__Url:-}" ] && packages+=(prometheus-alertmanager:prometheus-alertmanager)
ensure_packages "${packages[@]}"

if curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null; then
  die "something already answers on 127.0.0.1:$PORT (another run.sh?); stop it or set ROLLOUTGATE_PORT"
fi

PG_DATA="$(pg_data_dir "$RUN_DIR/postgres")"
started=()
service_pid=""
cleanup() {
  log "stopping"
  if [ -n "$service_pid" ] && kill -0 "$service_pid" 2>/dev/null; then
    kill "$service_pid" 2>/dev/null || true
    wait "$service_pid" 2>/dev/null || true
  fi
  for item in "${started[@]}"; do
    case "$item" in
      prometheus) stop_prometheus "$RUN_DIR/prometheus" ;;
      alertmanager) stop_alertmanager "$RUN_DIR/alertmanager" ;;
      postgres) stop_postgres "$PG_DATA" ;;
    esac
  done
  release_folder "$RUN_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building"
build_reporting "$RUN_DIR/build.log" src/RolloutGate -c Release -nologo -v quiet -o "$RUN_DIR/bin" || die "build failed"

start_postgres "$PG_DATA" "$PG_PORT"; started+=(postgres)
export ConnectionStrings__RolloutGate="${ConnectionStrings__RolloutGate:-Host=127.0.0.1;Port=$PG_PORT;Database=rolloutgate;Username=rolloutgate;Password=rolloutgate}"

if [ -z "${RolloutGate__Prometheus__Url:-}" ]; then
  cat >"$RUN_DIR/prometheus.yml" <<YAML
global:
  scrape_interval: 15s
  evaluation_interval: 15s
rule_files:
  - $REPO_ROOT/deploy/prometheus/rolloutgate-alerts.yaml
scrape_configs:
  - job_name: rolloutgate-demo-workload
    metrics_path: /demo/metrics
    static_configs:
      - targets: ["127.0.0.1:$PORT"]
  - job_name: rolloutgate
    static_configs:
      - targets: ["127.0.0.1:$PORT"]
YAML
  # A fresh Prometheus gets the demo workload's last 25 hours first, so the sample runbook's 24 h baseline exists.
  if [ -z "$(ls -d "$RUN_DIR"/prometheus/01* 2>/dev/null)" ]; then
    log "backfilling 25 hours of demo workload history"
    mkdir -p "$RUN_DIR/prometheus"
    dotnet "$RUN_DIR/bin/RolloutGate.dll" demo history --hours 25 >"$RUN_DIR/demo-history.om"
    promtool tsdb create-blocks-from openmetrics "$RUN_DIR/demo-history.om" "$RUN_DIR/prometheus" >"$RUN_DIR/backfill.log" 2>&1 \
      || { tail -n 5 "$RUN_DIR/backfill.log" >&2; die "promtool could not backfill the demo history"; }
  fi
  start_prometheus "$RUN_DIR/prometheus" "$PROMETHEUS_PORT" "$RUN_DIR/prometheus.yml"; started+=(prometheus)
  export RolloutGate__Prometheus__Url="http://127.0.0.1:$PROMETHEUS_PORT"
  export RolloutGate__Demo__Enabled=true
fi

if [ -z "${RolloutGate__Alertmanager__Url:-}" ]; then
  start_alertmanager "$RUN_DIR/alertmanager" "$ALERTMANAGER_PORT"; started+=(alertmanager)
  export RolloutGate__Alertmanager__Url="http://127.0.0.1:$ALERTMANAGER_PORT"
fi

# Development secrets, generated once. In production these come from your secret store. Exported, so that after
# `source .local/run/secrets.env` the CLI (`gate`, `audit`) sees them too, not only the shell's own curl lines.
if [ ! -f "$RUN_DIR/secrets.env" ]; then
  umask 077
  {
    echo "export ROLLOUTGATE_WEBHOOK_SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    echo "export ROLLOUTGATE_READER_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    echo "export ROLLOUTGATE_OPERATOR_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  } >"$RUN_DIR/secrets.env"
fi
# A file written before the secrets were exported gets the same secrets, exported.
sed -i 's/^ROLLOUTGATE_/export ROLLOUTGATE_/' "$RUN_DIR/secrets.env"
# shellcheck disable=SC1091
source "$RUN_DIR/secrets.env"
export RolloutGate__Webhook__Secret="${RolloutGate__Webhook__Secret:-$ROLLOUTGATE_WEBHOOK_SECRET}"
export RolloutGate__Api__ReaderTokens__0="${RolloutGate__Api__ReaderTokens__0:-$ROLLOUTGATE_READER_TOKEN}"
export RolloutGate__Api__OperatorTokens__0="${RolloutGate__Api__OperatorTokens__0:-$ROLLOUTGATE_OPERATOR_TOKEN}"
export RolloutGate__RunbooksPath="${RolloutGate__RunbooksPath:-$REPO_ROOT/runbooks}"
export RolloutGate__PublicUrl="${RolloutGate__PublicUrl:-http://127.0.0.1:$PORT}"

log "webhook secret, reader and operator tokens: source .local/run/secrets.env"
log "RolloutGate on http://127.0.0.1:$PORT (Ctrl-C stops everything)"
# The built program itself, not 'dotnet run', so that stopping this script stops the service too.
dotnet "$RUN_DIR/bin/RolloutGate.dll" --urls "http://127.0.0.1:$PORT" --contentRoot "$RUN_DIR/bin" &
service_pid=$!
wait "$service_pid"
