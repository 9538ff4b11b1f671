#!/usr/bin/env bash
# Shared by run.sh and test.sh: install what is missing, and start/stop a private PostgreSQL.
# Sourced, not run. Everything it starts listens on 127.0.0.1 only.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

log() { printf '[rolloutgate] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root for: $*"; fi
}

# ensure_packages CMD:PACKAGE ... installs each Debian package whose command is missing.
ensure_packages() {
  local missing=() pair cmd pkg
  for pair in "$@"; do
    cmd="${pair%%:*}"; pkg="${pair#*:}"
    if ! command -v "$cmd" >/dev/null 2>&1 && ! pg_bin_has "$cmd" && [[ " ${missing[*]} " != *" $pkg "* ]]; then
      missing+=("$pkg")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

pg_bin_has() { [ -n "$(pg_bindir 2>/dev/null)" ] && [ -x "$(pg_bindir)/$1" ]; }

# Every 'return' here and below names its status: a bare 'return' in a function called from an EXIT trap returns the
# status the script was exiting with (bash manual, 'return'), which made stop_postgres skip the stop after Ctrl-C.
pg_bindir() {
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then pg_config --bindir; return 0; fi
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && echo "$d"
}

# ensure_dotnet: a dotnet with the SDK global.json asks for. With only another one (a .NET 8 machine, or the runtime
# alone) `dotnet build` says "A compatible .NET SDK was not found" in a build log the scripts only point to, or not at all.
ensure_dotnet() {
  command -v dotnet >/dev/null 2>&1 || die "the .NET 10 SDK is required (dotnet on PATH)"
  (cd "$REPO_ROOT" && dotnet --version >/dev/null 2>&1) && return 0
  local wanted installed
  wanted="$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$REPO_ROOT/global.json" | head -n 1)"
  installed="$(dotnet --list-sdks 2>/dev/null | cut -d' ' -f1 | paste -sd ' ' -)"
  die "the .NET SDK $wanted or a later ${wanted%.*} one is required (global.json); this dotnet has ${installed:-no SDK} (https://dotnet.microsoft.com/download)"
}

# build_reporting LOG ARGS...: dotnet build ARGS, its output in LOG. When it fails: its error and warning lines, or its
# last 20 lines when it has none (an SDK that cannot be found, a restore that cannot reach the feed), and where the
# whole log is, then status 1; the caller says what failed. Called as a condition, so that set -e in the caller does not
# end it half-way (a grep that matches nothing ended test.sh before its "tests: ..." line).
build_reporting() {
  local build_log="$1"; shift
  dotnet build "$@" >"$build_log" 2>&1 && return 0
  if grep -qE 'error|warning' "$build_log"; then
    grep -E 'error|warning' "$build_log" | sort -u | head -n 40 >&2 || true
  else
    tail -n 20 "$build_log" >&2
  fi
  log "the whole build log: $build_log"
  return 1
}

# PostgreSQL refuses to run as root; as root we run it as the 'postgres' user, whose home must reach the data folder.
pg_user() { if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi; }

as_pg_user() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# pg_data_dir PREFERRED: the preferred folder when the PostgreSQL user can reach it, else one under /var/tmp.
pg_data_dir() {
  local preferred="$1"
  mkdir -p "$preferred"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres:postgres "$preferred"
    if ! runuser -u postgres -- test -w "$preferred"; then
      local fallback
      fallback="/var/tmp/rolloutgate-$(printf '%s' "$preferred" | sha256sum | cut -c1-12)"
      mkdir -p "$fallback" && chown postgres:postgres "$fallback" && chmod 700 "$fallback"
      echo "$fallback"; return 0
    fi
  fi
  echo "$preferred"
}

# claim_folder DIR SCRIPT: one SCRIPT at a time over DIR. A second one refuses, naming the first, instead of taking
# the first one's PostgreSQL, Prometheus or Alertmanager away from it. The owner's PID is kept in DIR/owner.pid; an
# owner that is gone (or a PID now used by another program) no longer counts. release_folder DIR gives it up.
claim_folder() {
  local dir="$1" script="$2" owner
  owner="$(cat "$dir/owner.pid" 2>/dev/null || true)"
  if [ -n "$owner" ] && [ "$owner" != "$$" ] && kill -0 "$owner" 2>/dev/null \
    && tr '\0' ' ' <"/proc/$owner/cmdline" 2>/dev/null | grep -q "$(basename "$script")"; then
    die "another $script (pid $owner) is running over $dir; stop it first (Ctrl-C in its terminal, or kill $owner: one started in the background ignores Ctrl-C), or run from another clone"
  fi
  echo "$$" >"$dir/owner.pid"
}

release_folder() {
  local dir="$1"
  if [ "$(cat "$dir/owner.pid" 2>/dev/null || true)" = "$$" ]; then rm -f "$dir/owner.pid"; fi
}

# start_postgres DATA_DIR PORT: initialise once, start if not running, create role and database 'rolloutgate'.
start_postgres() {
  local data="$1" port="$2" bin
  bin="$(pg_bindir)" || die "PostgreSQL server programs not found"
  if [ -f "$data/PG_VERSION" ] && as_pg_user "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    log "PostgreSQL already running on port $port"
  else
    # Before initdb: a port taken by another server ends here, naming the variable that moves it, with nothing created;
    # PostgreSQL's own "could not bind ... Address already in use" in its log named neither.
    refuse_taken_port PostgreSQL "$port" postgresql PG
    if [ ! -f "$data/PG_VERSION" ]; then
      log "initialising PostgreSQL in $data"
      as_pg_user "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    fi
    as_pg_user "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
      -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=300 -c fsync=off" start >/dev/null \
      || { cat "$data/server.log" >&2; die "PostgreSQL did not start"; }
    log "PostgreSQL started on 127.0.0.1:$port"
  fi
  psql_admin "$port" -tAc "SELECT 1 FROM pg_roles WHERE rolname='rolloutgate'" | grep -q 1 \
    || psql_admin "$port" -c "CREATE ROLE rolloutgate LOGIN CREATEDB PASSWORD 'rolloutgate'" >/dev/null
  psql_admin "$port" -tAc "SELECT 1 FROM pg_database WHERE datname='rolloutgate'" | grep -q 1 \
    || psql_admin "$port" -c "CREATE DATABASE rolloutgate OWNER rolloutgate" >/dev/null
}

stop_postgres() {
  local data="$1" bin
  bin="$(pg_bindir)" || return 0
  as_pg_user "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
}

psql_admin() { local port="$1"; shift; psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }

# --- Prometheus and Alertmanager for the check tests -------------------------------------------------------------
# Each runs on 127.0.0.1 with its own data folder; its PID is kept in DATA_DIR.pid and its log in DATA_DIR.log.

# wait_ready NAME URL PID: wait (up to 30 s) until URL answers 200, or fail with the process's log.
wait_ready() {
  local name="$1" url="$2" pid="$3" log_file="$4" i
  for i in $(seq 1 150); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$log_file" >&2; die "$name exited during start-up"; }
    sleep 0.2
  done
  tail -n 20 "$log_file" >&2; die "$name did not become ready at $url"
}

# refuse_taken_port NAME PORT SERVICE [VARIABLE]: stop when something already listens on 127.0.0.1:PORT. NAME could not
# listen there, and wait_ready would take that program's answer for its own. Debian's packages start theirs as system
# services (SERVICE) where systemd runs, Prometheus on 9090 and Alertmanager on 9093: run.sh's default ports. VARIABLE
# is the port variables' middle (PG for ROLLOUTGATE_PG_PORT), NAME in capitals when not given.
refuse_taken_port() {
  local name="$1" port="$2" service="$3" variable="${4:-${1^^}}"
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "something already listens on 127.0.0.1:$port, where $name was to start (Debian's $service package starts one as a system service: 'systemctl disable --now $service'; or another checkout's run.sh or test.sh runs on it); stop it, or choose another port (run.sh: ROLLOUTGATE_${variable}_PORT; test.sh: ROLLOUTGATE_TEST_${variable}_PORT)"
  fi
  return 0
}

stop_pidfile() {
  local pidfile="$1" pid
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# write_prometheus_test_series FILE ANCHOR: the known series the check tests assert on, as OpenMetrics, one sample a
# minute for the 3 hours up to ANCHOR (unix seconds, a whole minute). Sample i (0..180) is at ANCHOR - (180 - i) * 60:
#   rolloutgate_test_error_ratio{service="checkout"} 0.004, {service="payments"} 0.05
#   rolloutgate_test_requests_total{service="checkout",code="200"} 600*i (10/s), {code="500"} 6*i (0.1/s)
#   rolloutgate_test_queue_depth{service="checkout"} i
# tests/RolloutGate.Tests/Prometheus/PrometheusTestServer.cs mirrors this; change both together.
write_prometheus_test_series() {
  local file="$1" anchor="$2"
  awk -v anchor="$anchor" 'BEGIN {
    n = 180
    print "# HELP rolloutgate_test_error_ratio Test data: share of failed requests."
    print "# TYPE rolloutgate_test_error_ratio gauge"
    for (i = 0; i <= n; i++) printf "rolloutgate_test_error_ratio{service=\"checkout\"} 0.004 %d\n", anchor - (n - i) * 60
    for (i = 0; i <= n; i++) printf "rolloutgate_test_error_ratio{service=\"payments\"} 0.05 %d\n", anchor - (n - i) * 60
    print "# HELP rolloutgate_test_requests Test data: requests served."
    print "# TYPE rolloutgate_test_requests counter"
    for (i = 0; i <= n; i++) printf "rolloutgate_test_requests_total{service=\"checkout\",code=\"200\"} %d %d\n", 600 * i, anchor - (n - i) * 60
    for (i = 0; i <= n; i++) printf "rolloutgate_test_requests_total{service=\"checkout\",code=\"500\"} %d %d\n", 6 * i, anchor - (n - i) * 60
    print "# HELP rolloutgate_test_queue_depth Test data: the sample index."
    print "# TYPE rolloutgate_test_queue_depth gauge"
    for (i = 0; i <= n; i++) printf "rolloutgate_test_queue_depth{service=\"checkout\"} %d %d\n", i, anchor - (n - i) * 60
    print "# EOF"
  }' >"$file"
}

# start_prometheus DATA_DIR PORT [CONFIG]: start Prometheus on 127.0.0.1:PORT over DATA_DIR (backfill it first);
# without CONFIG it scrapes nothing, so the backfilled series are all it has.
start_prometheus() {
  local data="$1" port="$2" config="${3:-}" pid
  mkdir -p "$data"
  if [ -z "$config" ]; then
    config="$data.yml"
    printf 'global:\n  scrape_interval: 1m\n  evaluation_interval: 1m\nscrape_configs: []\n' >"$config"
  fi
  stop_pidfile "$data.pid"
  refuse_taken_port Prometheus "$port" prometheus
  # The one on PATH, which ensure_packages took as installed: Debian's, or one of your own (a release's in /usr/local/bin).
  prometheus --config.file="$config" --storage.tsdb.path="$data" \
    --web.listen-address="127.0.0.1:$port" --log.level=warn >"$data.log" 2>&1 &
  pid=$!
  echo "$pid" >"$data.pid"
  wait_ready Prometheus "http://127.0.0.1:$port/-/ready" "$pid" "$data.log"
  log "Prometheus started on 127.0.0.1:$port (pid $pid)"
}

stop_prometheus() { stop_pidfile "$1.pid"; }

# start_alertmanager DATA_DIR PORT: Alertmanager on 127.0.0.1:PORT, alone (no cluster gossip), notifying no one.
start_alertmanager() {
  local data="$1" port="$2" config pid
  mkdir -p "$data"
  config="$data.yml"
  printf 'route:\n  receiver: none\nreceivers:\n  - name: none\n' >"$config"
  stop_pidfile "$data.pid"
  refuse_taken_port Alertmanager "$port" prometheus-alertmanager
  prometheus-alertmanager --config.file="$config" --storage.path="$data" \
    --web.listen-address="127.0.0.1:$port" --cluster.listen-address= --log.level=warn >"$data.log" 2>&1 &
  pid=$!
  echo "$pid" >"$data.pid"
  wait_ready Alertmanager "http://127.0.0.1:$port/-/ready" "$pid" "$data.log"
  log "Alertmanager started on 127.0.0.1:$port (pid $pid)"
}

stop_alertmanager() { stop_pidfile "$1.pid"; }

# prepare_prometheus_test_data DATA_DIR ANCHOR: a fresh data folder holding the known test series.
prepare_prometheus_test_data() {
  local data="$1" anchor="$2"
  stop_pidfile "$data.pid"
  rm -rf "$data"; mkdir -p "$data"
  write_prometheus_test_series "$data.om" "$anchor"
  promtool tsdb create-blocks-from openmetrics "$data.om" "$data" >"$data.backfill.log" 2>&1 \
    || { cat "$data.backfill.log" >&2; die "promtool could not backfill the test series"; }
}
