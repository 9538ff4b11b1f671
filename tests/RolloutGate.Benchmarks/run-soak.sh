#!/usr/bin/env bash
# A soak test: the real service for a long time under steady load, its resources sampled into a CSV, with chaos
# mid-way (Prometheus restarted, PostgreSQL restarted, Slack answering 500 and then 429 for a few minutes), and at the
# end the checks that nothing was lost (audit chain, no evaluation gap, no duplicated Slack root, the outbox drained).
# Runs deploy/local/run.sh (PostgreSQL, Prometheus scraping the demo workload, Alertmanager, the service) with
# SOAK_SERVICES runbooks watching the demo workload every 10 s, a fake Slack (Soak/fake_slack.py, which also
# receives the runbooks' rollback webhooks) and the driver (Soak/soak.py). Data under .local/run/ (in a database of its
# own, rolloutgate_soak, made anew each time) and .local/soak/: the CSV is .local/soak/soak.csv, the driver's log
# .local/soak/soak.log, the service's .local/soak/run.log.
# Settings (environment): SOAK_MINUTES (50), SOAK_SERVICES (8), SOAK_CHAOS ("prometheus@15,postgres@22,slack500@28,
# slack429@33", minutes from the start; empty for none), SOAK_SLACK_OUTAGE (180 s, each Slack step's length),
# SOAK_SAMPLE_EVERY (30 s), SOAK_FAULT_EVERY (9 min),
# SOAK_FAULT_FOR (100 s), SOAK_EDIT_EVERY (150 s: a new version of one runbook; 0: none); ports ROLLOUTGATE_PORT
# (56180), ROLLOUTGATE_PG_PORT (56132), ROLLOUTGATE_PROMETHEUS_PORT (56190), ROLLOUTGATE_ALERTMANAGER_PORT (56193),
# SOAK_SLACK_PORT (56170). With dotnet-counters on PATH (or in SOAK_DOTNET_COUNTERS) the GC heap is sampled too.
# Exit status 0 when the final checks pass.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../deploy/local/lib.sh"
cd "$REPO_ROOT"
export ROLLOUTGATE_PORT="${ROLLOUTGATE_PORT:-56180}" ROLLOUTGATE_PG_PORT="${ROLLOUTGATE_PG_PORT:-56132}"
export ROLLOUTGATE_PROMETHEUS_PORT="${ROLLOUTGATE_PROMETHEUS_PORT:-56190}" ROLLOUTGATE_ALERTMANAGER_PORT="${ROLLOUTGATE_ALERTMANAGER_PORT:-56193}"
SLACK_PORT="${SOAK_SLACK_PORT:-56170}"
SERVICES="${SOAK_SERVICES:-8}"
SOAK_DIR="$REPO_ROOT/.local/soak"
RUN_DIR="$REPO_ROOT/.local/run"
HERE="$REPO_ROOT/tests/RolloutGate.Benchmarks/Soak"
ensure_packages python3:python3 ss:iproute2 initdb:postgresql psql:postgresql-client
rm -rf "$SOAK_DIR"; mkdir -p "$SOAK_DIR/runbooks"

bot_token="xoxb-soak-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
signing_secret="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
rollback_secret="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"

# Every 10 s (the demo's traffic gives a 5 s interval fewer than the 100 requests a verdict needs); odd services for
# 3 minutes, recommend, rolled back when nobody answers in 2 minutes; even ones for 6 minutes, auto. All watch the demo
# workload; the checks ask Prometheus, Alertmanager and the demo's stand-in.
for i in $(seq 1 "$SERVICES"); do
  if [ $((i % 2)) -eq 1 ]; then interval=10s duration=3m mode=recommend; else interval=10s duration=6m mode=auto; fi
  cat >"$SOAK_DIR/runbooks/soak-$i.yaml" <<YAML
apiVersion: rolloutgate/v1
kind: Runbook
metadata:
  name: soak-$i
  version: 1
spec:
  service: soak-$i
  environments: [production]
  owner: U024BE7LH
  approvers: [U024BE7LH]
  decisionChannel: C0SOAK$(printf '%03d' "$i")
  mesh:
    provider: istio
    namespace: shop
    workload: checkout
  preDeploy:
    timeout: 30s
    checks:
      - name: error-budget
        prometheus:
          query: sum(rate(istio_requests_total{destination_workload="checkout",response_code=~"5.."}[10m])) / sum(rate(istio_requests_total{destination_workload="checkout"}[10m]))
          max: 0.5
      - name: no-critical-alerts
        alertmanager:
          matchers: ['service="checkout"', 'severity="critical"']
      - name: change-freeze
        freeze:
          timezone: Europe/Berlin
          dates: [{from: 2000-01-01, to: 2000-01-02}]   # judged on every predeploy, frozen never (an empty list would draw a warning)
      - name: payments-healthy
        http:
          url: http://payments.shop.svc/healthz
          expectStatus: 200
  watch:
    duration: $duration
    interval: $interval
    baseline: 10m
    stopRules:
      maxBlind: 5m
    metrics:
      - name: p95-latency
        preset: p95-latency
        maxIncrease: 20%
        max: 800ms
      - name: error-rate
        preset: error-rate
        maxIncrease: 50%
        max: 2%
  rollback:
    mode: $mode
    approvalTimeout: 2m
    onTimeout: rollback
    action:
      webhook:
        url: http://127.0.0.1:$SLACK_PORT/rollback
        secret: $rollback_secret
YAML
done

# A database of its own, new every time: the fake Slack starts empty, so messages of an earlier run's watches would find
# no thread there; run.sh's own database is left alone. run.sh finds this PostgreSQL running and stops it when it ends.
PG_DATA="$(pg_data_dir "$RUN_DIR/postgres")"
start_postgres "$PG_DATA" "$ROLLOUTGATE_PG_PORT"
psql_admin "$ROLLOUTGATE_PG_PORT" -c "DROP DATABASE IF EXISTS rolloutgate_soak WITH (FORCE)" \
  -c "CREATE DATABASE rolloutgate_soak OWNER rolloutgate" >/dev/null
export ConnectionStrings__RolloutGate="Host=127.0.0.1;Port=$ROLLOUTGATE_PG_PORT;Database=rolloutgate_soak;Username=rolloutgate;Password=rolloutgate"

pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ -f "$RUN_DIR/owner.pid" ]; then
    pid="$(cat "$RUN_DIR/owner.pid")"
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  fi
  stop_postgres "$PG_DATA"
}
trap cleanup EXIT

python3 "$HERE/fake_slack.py" "$SLACK_PORT" "$bot_token" "$rollback_secret" & pids+=($!)
RolloutGate__Slack__ApiBaseUrl="http://127.0.0.1:$SLACK_PORT/api" RolloutGate__Slack__BotToken="$bot_token" \
  RolloutGate__Slack__SigningSecret="$signing_secret" RolloutGate__RunbooksPath="$SOAK_DIR/runbooks" \
  setsid deploy/local/run.sh >"$SOAK_DIR/run.log" 2>&1 &
for _ in $(seq 1 600); do
  curl -fsS -o /dev/null "http://127.0.0.1:$ROLLOUTGATE_PORT/readyz" 2>/dev/null && break
  grep -q 'error:' "$SOAK_DIR/run.log" && { cat "$SOAK_DIR/run.log" >&2; die "run.sh failed"; }
  sleep 1
done
curl -fsS -o /dev/null "http://127.0.0.1:$ROLLOUTGATE_PORT/readyz" || die "the service did not become ready (see $SOAK_DIR/run.log)"
service_pid="$(pgrep -f "$RUN_DIR/bin/RolloutGate.dll --urls http://127.0.0.1:$ROLLOUTGATE_PORT" | head -n 1)"
log "service pid $service_pid; soak for ${SOAK_MINUTES:-50} minutes, CSV in $SOAK_DIR/soak.csv"
# shellcheck disable=SC1091
source "$RUN_DIR/secrets.env"

counters="${SOAK_DOTNET_COUNTERS:-$(command -v dotnet-counters || true)}"
if [ -n "$counters" ]; then
  "$counters" collect -p "$service_pid" --format csv --refresh-interval 10 -o "$SOAK_DIR/counters.csv" \
    --counters System.Runtime >"$SOAK_DIR/counters.log" 2>&1 & pids+=($!)
fi

SOAK_BASE_URL="http://127.0.0.1:$ROLLOUTGATE_PORT" SOAK_SLACK_URL="http://127.0.0.1:$SLACK_PORT" SOAK_SLACK_PORT="$SLACK_PORT" \
SOAK_SLACK_SIGNING_SECRET="$signing_secret" SOAK_CSV="$SOAK_DIR/soak.csv" SOAK_SERVICE_PID="$service_pid" \
SOAK_RUNBOOKS="$SOAK_DIR/runbooks" SOAK_DATABASE=rolloutgate_soak SOAK_PG_PORT="$ROLLOUTGATE_PG_PORT" SOAK_PROMETHEUS_PORT="$ROLLOUTGATE_PROMETHEUS_PORT" SOAK_COUNTERS_CSV="$SOAK_DIR/counters.csv" \
SOAK_RESTART_PROMETHEUS="source '$REPO_ROOT/deploy/local/lib.sh'; stop_prometheus '$RUN_DIR/prometheus'; sleep 5; start_prometheus '$RUN_DIR/prometheus' $ROLLOUTGATE_PROMETHEUS_PORT '$RUN_DIR/prometheus.yml'" \
SOAK_RESTART_POSTGRES="source '$REPO_ROOT/deploy/local/lib.sh'; as_pg_user \"\$(pg_bindir)/pg_ctl\" -D '$PG_DATA' -m fast -w restart -l '$PG_DATA/server.log' >/dev/null" \
  python3 "$HERE/soak.py" 2>&1 | tee "$SOAK_DIR/soak.log"
