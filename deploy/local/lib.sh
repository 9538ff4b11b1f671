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
    if ! command -v "$cmd" >/dev/null 2>&1 && ! pg_bin_has "$cmd"; then missing+=("$pkg"); fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

pg_bin_has() { [ -n "$(pg_bindir 2>/dev/null)" ] && [ -x "$(pg_bindir)/$1" ]; }

pg_bindir() {
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then pg_config --bindir; return; fi
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && echo "$d"
}

ensure_dotnet() {
  command -v dotnet >/dev/null 2>&1 || die "the .NET 10 SDK is required (dotnet on PATH)"
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
      echo "$fallback"; return
    fi
  fi
  echo "$preferred"
}

# start_postgres DATA_DIR PORT: initialise once, start if not running, create role and database 'rolloutgate'.
start_postgres() {
  local data="$1" port="$2" bin
  bin="$(pg_bindir)" || die "PostgreSQL server programs not found"
  if [ ! -f "$data/PG_VERSION" ]; then
    log "initialising PostgreSQL in $data"
    as_pg_user "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  fi
  if as_pg_user "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    log "PostgreSQL already running on port $port"
  else
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
