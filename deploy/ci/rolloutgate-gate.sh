#!/usr/bin/env bash
# The RolloutGate gate for runners without .NET: bash, curl and openssl only. It sends one CD webhook
# (CONTRACT section 4) the way `rolloutgate gate` does and exits the same way:
#   0 allow (or the event was accepted), 1 deny, 2 no usable answer (refused, server error, unreachable).
# `wait` holds a pipeline while the watch runs, as `rolloutgate gate wait` does (deploy/README.md lists its exits).
#
# usage: rolloutgate-gate.sh predeploy|deployed|rolledback|cancelled --deployment-id ID --service S --environment E
#          [--url URL] [--version V] [--previous-version V] [--initiator NAME] [--commit SHA] [--pipeline-url URL]
#          [--at ISO8601] [--delivery-id ID] [--timeout SECONDS] [--retries N] [--json]
#        rolloutgate-gate.sh wait --deployment-id ID --for DURATION [--url URL] [--interval DURATION]
#          [--timeout SECONDS] [--retries N] [--json]   (DURATION: 90s, 30m or 2h; the reader token from ROLLOUTGATE_READER_TOKEN;
#          exit 0 promote, 1 do not promote, 2 no usable answer)
# The secret comes from ROLLOUTGATE_WEBHOOK_SECRET (or a bearer token from ROLLOUTGATE_WEBHOOK_TOKEN), never from an
# argument; the URL from --url or ROLLOUTGATE_URL. The server's JSON answer goes to stdout, a summary to stderr.
#
# Note: `openssl dgst -hmac KEY` takes the key as an argument, so it is visible in the runner's process list for the
# few milliseconds openssl runs. On a runner shared with untrusted jobs, prefer the .NET CLI or a webhook token.
set -uo pipefail

usage_text() { sed -n '7,14p' "$0" | sed 's/^# \{0,1\}//'; }
usage() { usage_text >&2; exit 2; }
fail() { echo "gate: $*" >&2; exit 2; }

# Help wherever it is asked for (`wait --help`), as the .NET CLI gives it: the usage on stdout, exit 0, nothing sent.
for arg in "$@"; do
  case "$arg" in --help|-h) usage_text; exit 0 ;; esac
done
[ "${1:-}" != help ] || { usage_text; exit 0; }
[ $# -ge 1 ] || usage
event="$1"; shift
case "$event" in predeploy|deployed|rolledback|cancelled|wait) ;; *) fail "the event '$event' is not one of predeploy, deployed, rolledback, cancelled" ;; esac

default_url=http://127.0.0.1:8080
url="${ROLLOUTGATE_URL:-$default_url}"
deployment_id="" service="" environment="" version="" previous_version="" initiator="" commit="" pipeline_url="" at=""
delivery_id="" timeout=60 retries=5 given=" " wait_for="" interval=30s
while [ $# -gt 0 ]; do
  # The CLI's --json, the one option without a value: what it asks for, the server's JSON on stdout, is what this script
  # prints anyway, so a pipeline moving between the two keeps its arguments ("--json needs a value" told it otherwise).
  if [ "$1" = --json ]; then
    case "$given" in *" --json "*) fail "--json is given more than once" ;; esac
    given="$given--json "
    shift
    continue
  fi
  [ $# -ge 2 ] || fail "$1 needs a value"
  # The last of two would win unsaid: a webhook about another deployment or service than the one meant.
  case "$given" in *" $1 "*) fail "$1 is given more than once" ;; esac
  given="$given$1 "
  case "$event:$1" in
    *:--url) url="$2" ;;
    *:--deployment-id) deployment_id="$2" ;;
    *:--timeout) timeout="$2" ;;
    *:--retries) retries="$2" ;;
    wait:--for) wait_for="$2" ;;
    wait:--interval) interval="$2" ;;
    wait:*) fail "unknown option '$1' for wait" ;;
    *:--service) service="$2" ;;
    *:--environment) environment="$2" ;;
    *:--version) version="$2" ;;
    *:--previous-version) previous_version="$2" ;;
    *:--initiator) initiator="$2" ;;
    *:--commit) commit="$2" ;;
    *:--pipeline-url) pipeline_url="$2" ;;
    *:--at) at="$2" ;;
    *:--delivery-id) delivery_id="$2" ;;
    *) fail "unknown option '$1'" ;;
  esac
  shift 2
done
# The bounds of the rolloutgate CLI's gate (GateCommand.MaxTimeout, MaxRetries, MaxDeliveryIdLength), refused as it refuses
# them: a pipeline moving between the two keeps its arguments, and a --timeout of a day or --retries 100000 is a typo
# that would hold the pipeline, not patience. Read as decimal (10#): bash arithmetic takes 010 for octal 8 and 09 for none.
[[ "$timeout" =~ ^0*([0-9]{1,4})s?$ ]] && [ "$((10#${BASH_REMATCH[1]}))" -gt 0 ] && [ "$((10#${BASH_REMATCH[1]}))" -le 3600 ] \
  || fail "--timeout '$timeout' is not a whole number of seconds such as 60 or 60s (more than zero, at most 3600, 1h)"
timeout=$((10#${BASH_REMATCH[1]}))
[[ "$retries" =~ ^0*([0-9]{1,3})$ ]] && [ "$((10#${BASH_REMATCH[1]}))" -le 100 ] || fail "--retries '$retries' is not a whole number from 0 to 100"
retries=$((10#${BASH_REMATCH[1]}))
[ "${#delivery_id}" -le 200 ] || fail "--delivery-id is longer than 200 characters"
# The URL as messages show it, as the rolloutgate CLI does: without user info (a proxy's password) or query (it may hold
# a token), which the pipeline's log would keep.
shown="$(printf '%s' "$url" | sed -E 's#^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@#\1#; s#\?.*#?…#')"
# The URL as a "no answer from" message names it, saying how to name another when it is the default, as the CLI does: a
# service started on another port (run.sh's ROLLOUTGATE_PORT) is not asked there.
unanswered="$shown"
[ "${url%/}" != "$default_url" ] || unanswered="$shown (the default; --url or ROLLOUTGATE_URL names another)"
# refuse_user_info TOKEN_VARIABLE: curl sends the URL's user info as basic authentication, but a bearer header replaces it
# unsaid; as the CLI, refuse a URL with user info where the bearer token goes in the Authorization header.
refuse_user_info() {
  [[ "$url" =~ ^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@ ]] || return 0
  fail "--url '$shown' has user info (user:password@), which would go as basic authentication in the Authorization header that the bearer token of $1 takes: a request carries one; drop the user info from the URL${2:-}"
}

work="$(umask 077 && mktemp -d)"
trap 'rm -rf "$work"' EXIT

# in_background COMMAND...: runs it in the background and waits for it, returning its exit status, so that a signal
# `wait` traps (SIGINT, SIGTERM) is handled at once, the command killed, rather than once it ends (bash runs a trap only
# after the foreground command: a request could hold it for --timeout).
in_background() {
  local code
  "$@" & sleeper=$!
  wait "$sleeper"; code=$?
  sleeper=""
  return "$code"
}

# No answer of RolloutGate's comes near 1 MiB: one beyond it (a proxy's page, a runaway stream) is not read, and
# curl, whose files may not grow past it (ulimit -f, in KiB), stops writing there.
max_answer=1048576

# "1 attempt", "2 attempts".
tried() { echo "$1 attempt$( [ "$1" = 1 ] || echo s)"; }

# exchange METHOD URL [curl options]: one request, retried on 5xx, 408, 429 and connection errors at most --retries
# times and never past --timeout, with fresh headers (write_headers) per attempt. Returns with the answer in
# $work/answer and its status in $status; exits 2 when retrying ends without one, on an answer over 1 MiB, or on
# another 4xx (refused).
exchange() {
  local method="$1" target="$2" deadline attempt=0 remaining retry_after delay delay_ms remaining_ms last=""
  shift 2
  deadline=$(( $(date +%s) + timeout ))
  while :; do
    attempt=$((attempt + 1))
    remaining=$(( deadline - $(date +%s) ))
    [ "$remaining" -gt 0 ] || fail "no answer from $unanswered within ${timeout}s ($(tried $((attempt - 1)))); last attempt: ${last:-none}"
    write_headers
    rm -f "$work/answer"
    # In the background as in_background runs a command, with the redirections its own (a trap's message is not curl's).
    # SIGXFSZ ignored, a write past the limit fails and curl ends (exit 23) with the status it had. A runner whose hard
    # limit is lower gets curl without it: an answer beyond 1 MiB is still refused below, once written.
    ( ulimit -f $(( max_answer / 1024 + 1 )) 2>/dev/null; trap '' XFSZ; exec curl -sS -o "$work/answer" -D "$work/answer-headers" -w '%{http_code}' \
      --max-time "$remaining" -X "$method" -H @"$work/headers" "$@" "$target" ) >"$work/status" 2>"$work/curl-error" & sleeper=$!
    wait "$sleeper"; sleeper=""
    status="$(cat "$work/status")"
    if [ -f "$work/answer" ] && [ "$(wc -c <"$work/answer")" -gt "$max_answer" ]; then
      fail "no answer from $shown: answer too large: HTTP $status with more than 1 MiB, which no answer of RolloutGate's is ($(tried "$attempt"))"
    fi
    case "$status" in
      2??) return 0 ;;
      000|5??|408|429) last="$( [ "$status" = 000 ] && head -c 300 "$work/curl-error" || echo "HTTP $status")" ;;
      *) cat "$work/answer"; echo; fail "$event refused: $(problem_text)" ;;
    esac
    if [ "$attempt" -gt "$retries" ]; then
      [ "$status" = 000 ] || { cat "$work/answer"; echo; }
      fail "no usable answer from $unanswered ($(tried "$attempt")); last attempt: $last"
    fi
    # The server's Retry-After in seconds (its 503 while the database is away says 30), at most 15 s; else exponential
    # backoff (1s, 2s, 4s ... at most 15s) with jitter. Never past the deadline.
    retry_after="$(tr -d '\r' <"$work/answer-headers" 2>/dev/null | sed -n 's/^[Rr][Ee][Tt][Rr][Yy]-[Aa][Ff][Tt][Ee][Rr]: *\([0-9][0-9]*\) *$/\1/p' | tail -n 1)"
    if [ -n "$retry_after" ] && [ "$retry_after" -gt 0 ]; then
      [ "$retry_after" -le 15 ] || retry_after=15
      delay_ms=$(( retry_after * 1000 ))
    else
      delay=$(( 1 << (attempt - 1) )); [ "$delay" -le 15 ] || delay=15
      delay_ms=$(( delay * 500 + RANDOM % (delay * 500 + 1) ))
    fi
    remaining_ms=$(( (deadline - $(date +%s)) * 1000 ))
    [ "$delay_ms" -le "$remaining_ms" ] || delay_ms=$remaining_ms
    echo "gate: attempt $attempt failed ($last); retrying in ${delay_ms}ms" >&2
    in_background sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  done
}

# The string value of the first "NAME" key in TEXT, unescaped for reading; fails if there is none. A key can be
# found this way without a JSON parser: inside a JSON string every quote is escaped, so '"NAME":"' is structure
# (whitespace between the tokens is allowed: a proxy may reformat the answer).
json_string_re='"(([^"\\]|\\.)*)"' ws='[[:space:]]*'
json_field() {
  local re="\"$1\"$ws:$ws$json_string_re"
  [[ $2 =~ $re ]] || return 1
  unescape "${BASH_REMATCH[1]}"
}
# Decoded, the text is one line again: every control character (a line break, ESC) written as an escape (\n, \u001B),
# as the CLI's tables and the service's log write them. The text quotes others (an alert's labels in a check's detail,
# a person's reason): decoded as it was, a line break in it printed what read as a line of the script's own, and an
# escape sequence drove the terminal or the CI log.
unescape() {
  local s c code
  s="$(printf '%b' "${1//\\\"/\"}"; printf x)"
  s="${s%x}" s="${s//$'\r'/\\r}" s="${s//$'\n'/\\n}" s="${s//$'\t'/\\t}"
  while [[ $s =~ [[:cntrl:]] ]]; do
    c="${BASH_REMATCH[0]}"
    printf -v code '\\u%04X' "'$c"
    s="${s//"$c"/$code}"
  done
  printf '%s' "$s"
}
# TEXT after its first "KEY" ("${TEXT#*\"KEY\"}" tries every prefix in turn: minutes for an answer near 1 MiB), byte
# for byte (the C locale's . matches any byte); nothing without one.
after() { local LC_ALL=C; [[ $2 =~ \"$1\"(.*) ]] && printf '%s' "${BASH_REMATCH[1]}"; }
# An ISO 8601 time as the CLI prints it (2026-12-06T10:31:00Z), or as it is where date cannot read it.
utc() { date -u -d "$1" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || echo "$1"; }
# aligned N FIRST... SECOND... REST...: N rows, given a column at a time, as "  FIRST  SECOND  REST" lines, the first two
# columns padded to their widest cell, as the CLI's tables (TextTable) are.
aligned() {
  local n="$1" i first_width=0 second_width=0; shift
  local first=("${@:1:n}") second=("${@:n+1:n}") rest=("${@:2*n+1:n}")
  for ((i = 0; i < n; i++)); do
    [ "${#first[$i]}" -le "$first_width" ] || first_width=${#first[$i]}
    [ "${#second[$i]}" -le "$second_width" ] || second_width=${#second[$i]}
  done
  for ((i = 0; i < n; i++)); do
    printf '  %-*s  %-*s  %s\n' "$first_width" "${first[$i]}" "$second_width" "${second[$i]}" "${rest[$i]}"
  done
}

# "HTTP 401 Not authenticated: the signature does not match", from a problem+json answer when there is one; the start of
# anything else. At most 500 characters after the status, as the CLI's, whatever the answer (a proxy's page, a detail of
# a megabyte): it goes to a terminal and a CI log.
problem_text() {
  local body title detail text
  body="$(head -c 100000 "$work/answer")"
  title="$(json_field title "$body")" && title=" $title"
  detail="$(json_field detail "$body")" && detail=": $detail"
  if [ -n "$title$detail" ]; then text="$title$detail"; else text=": $(head -c 2000 "$work/answer")"; fi
  [ "${#text}" -le 500 ] || text="${text:0:500}..."
  echo "HTTP $status$text"
}

if [ "$event" = wait ]; then
  # DURATION (90s, 30m, 2h, or seconds) in whole seconds; empty if it is none.
  seconds() {
    [[ "$1" =~ ^([0-9]+)([smh]?)$ ]] || return 0
    case "${BASH_REMATCH[2]}" in m) echo $((10#${BASH_REMATCH[1]} * 60)) ;; h) echo $((10#${BASH_REMATCH[1]} * 3600)) ;; *) echo $((10#${BASH_REMATCH[1]})) ;; esac
  }
  [ -n "$deployment_id" ] && [ -n "$wait_for" ] || fail "--deployment-id and --for are required"
  for_s="$(seconds "$wait_for")" interval_s="$(seconds "$interval")"
  [ -n "$for_s" ] && [ "$for_s" -gt 0 ] && [ "$for_s" -le 604800 ] || fail "--for '$wait_for' is not a duration such as 30m, 2h or 90s (at most 7 days)"
  [ -n "$interval_s" ] && [ "$interval_s" -gt 0 ] && [ "$interval_s" -le 3600 ] || fail "--interval '$interval' is not a duration such as 30s or 1m (at most 1h)"
  token="${ROLLOUTGATE_READER_TOKEN:-}"
  [ -n "$token" ] || fail "set ROLLOUTGATE_READER_TOKEN to a reader token (RolloutGate__Api__ReaderTokens__N on the server) in the environment"
  refuse_user_info ROLLOUTGATE_READER_TOKEN
  # The token goes to curl through a file, not an argument, so it never shows in the process list.
  printf 'Authorization: Bearer %s\nAccept: application/json\n' "$token" >"$work/headers"
  write_headers() { :; }
  interrupted() {
    [ -z "${sleeper:-}" ] || kill "$sleeper" 2>/dev/null
    echo "gate: wait interrupted by $1 $( [ -n "$state" ] && echo "while deployment '$deployment_id' was $state" || echo "before its first answer"): no verdict, do not promote on it" >&2
    exit 2
  }
  state=""
  trap 'interrupted SIGINT' INT
  trap 'interrupted SIGTERM' TERM
  target="${url%/}/api/v1/deployments/$(printf '%s' "$deployment_id" | od -An -tx1 -v | tr -d ' \n' | sed 's/../%&/g')"

  # The latest evaluation's metrics of the answer, "  NAME  VERDICT  EXPLANATION" each, the columns lined up as the CLI's
  # (the service writes name, value, baseline, threshold, verdict, explanation in that order); $regressed and $blind
  # name those with such a verdict.
  metrics() {
    local rest; rest="$(after latestEvaluation "$body")"
    local names=() verdicts=() explanations=()
    local re="^$ws\{$ws\"name\"$ws:$ws$json_string_re[^{}]*\"verdict\"$ws:$ws$json_string_re($ws,$ws\"explanation\"$ws:$ws$json_string_re)?$ws\}$ws(,|\])"
    regressed="" blind="" evaluated=""
    [[ $rest =~ ^$ws:$ws\{ ]] || return 0
    evaluated="$(utc "$(json_field at "$rest")")"
    rest="$(after metrics "$rest")"
    [[ $rest =~ ^$ws:$ws\[ ]] || return 0
    rest="${rest:${#BASH_REMATCH[0]}}"
    while [[ $rest =~ $re ]]; do
      local name verdict explanation
      name="$(unescape "${BASH_REMATCH[1]}")" verdict="${BASH_REMATCH[3]}" explanation="$(unescape "${BASH_REMATCH[6]}")"
      rest="${rest:${#BASH_REMATCH[0]}}"
      names+=("$name") verdicts+=("$verdict") explanations+=("$explanation")
      case "$verdict" in regressed|breach-of-max|breach-of-min) [ -n "$regressed" ] || regressed="$name $verdict" ;; blind) blind="${blind:+$blind, }$name" ;; esac
      [[ ${BASH_REMATCH[0]} == *"," ]] || break
    done
    # (Not called with none: bash before 4.4 takes an empty "${names[@]}" for unset under set -u.)
    [ "${#names[@]}" -eq 0 ] || aligned "${#names[@]}" "${names[@]}" "${verdicts[@]}" "${explanations[@]}"
  }
  # "7m 12s", "2h 5s", "45s": whole hours, minutes and seconds, those that are not zero.
  span() {
    local h=$(( $1 / 3600 )) m=$(( $1 % 3600 / 60 )) s=$(( $1 % 60 )) out=""
    [ "$h" -eq 0 ] || out="${h}h"
    [ "$m" -eq 0 ] || out="${out:+$out }${m}m"
    [ "$s" -eq 0 ] || out="${out:+$out }${s}s"
    echo "${out:-0s}"
  }
  # How long the watch's next interval may wait past its t (the service's watch.behindSeconds, on its own clock) before
  # the watch counts as behind: the RolloutGateWatchBehind alert's threshold (GateWait.BehindToleranceSeconds).
  behind_tolerance=180
  behind_advice='see RolloutGateWatchBehind in deploy/README.md, "Watching RolloutGate" (does a replica run, is its watch sweep stuck: the log'"'"'s event ids 31xx, does Prometheus answer)'
  # " (stop by bob at ...: reason)": the latest decision, which made the state what it is.
  decision() {
    local rest last=""; rest="$(after decisions "$body")"
    local re="^$ws\{$ws\"at\"$ws:$ws$json_string_re$ws,$ws\"kind\"$ws:$ws$json_string_re$ws,$ws\"actor\"$ws:$ws$json_string_re$ws,$ws\"reason\"$ws:$ws($json_string_re|null)$ws\}$ws(,|\])"
    [[ $rest =~ ^$ws:$ws\[ ]] || return 0
    rest="${rest:${#BASH_REMATCH[0]}}"
    while [[ $rest =~ $re ]]; do
      last=" (${BASH_REMATCH[3]} by $(unescape "${BASH_REMATCH[5]}") at $(utc "${BASH_REMATCH[1]}")"
      [ "${BASH_REMATCH[7]}" = null ] || last="$last: $(unescape "${BASH_REMATCH[8]}")"
      last="$last)"
      rest="${rest:${#BASH_REMATCH[0]}}"
      [[ ${BASH_REMATCH[0]} == *"," ]] || break
    done
    printf '%s' "$last"
  }

  until_s=$(( $(date +%s) + for_s )) progress=""
  while :; do
    exchange GET "$target"
    body="$(cat "$work/answer")"
    answered="$(json_field deploymentId "$body")" state="$(json_field state "$body")"
    unreadable=""
    if [ -z "$answered" ] || [ -z "$state" ]; then
      unreadable="no$( [ -n "$answered" ] || echo " deploymentId")$( [ -n "$answered" ] || [ -n "$state" ] || echo ",")$( [ -n "$state" ] || echo " state")"
    elif [ "$answered" != "$deployment_id" ]; then
      unreadable="it answers for deployment '$answered', not '$deployment_id'"
    fi
    [ -z "$unreadable" ] || { echo "$body"; fail "HTTP $status with an answer this gate cannot read ($unreadable): $(head -c 500 "$work/answer")"; }
    metrics >"$work/table"
    table="$(cat "$work/table")"
    now="$(date +%s)"
    line="$deployment_id $state, ${evaluated:+evaluation $evaluated: }$(printf '%s\n' "$table" | awk 'NF {printf "%s%s %s", sep, $1, $2; sep=", "}')"
    [ -n "$evaluated" ] || line="$deployment_id $state, no evaluation yet"
    [ "$line" = "$progress" ] || { echo "gate: $line" >&2; progress="$line"; }
    exit_code="" reason=""
    case "$state" in
      completed) exit_code=0 reason="completed: the watch ran its full duration without a regression" ;;
      kept) exit_code=0 reason="kept: a regression was dismissed$(decision)" ;;
      regressed) exit_code=1 reason="regressed: RolloutGate recommends a rollback and waits for a decision (rollback, dismiss or stop)" ;;
      rolling-back) exit_code=1 reason="rolling-back: a rollback is under way$(decision)" ;;
      rolled-back) exit_code=1 reason="rolled-back$(decision)" ;;
      stopped) exit_code=1 reason="stopped: RolloutGate no longer watches it$(decision)" ;;
      denied) exit_code=1 reason="denied: the predeploy gate denied it and it was not reported deployed, so it was never watched" ;;
      cancelled) exit_code=1 reason="cancelled: it was never deployed, so there is nothing to promote" ;;
      watching|checking|allowed)
        if [ -n "$regressed" ]; then exit_code=1 reason="$state, and its latest evaluation has $regressed"
        elif [ "$now" -ge "$until_s" ]; then
          behind="" due="$(json_field nextEvaluationDue "$body")"
          [[ $body =~ \"behindSeconds\"$ws:$ws([0-9]+) ]] && behind="${BASH_REMATCH[1]}"
          if [ "$state" != watching ]; then exit_code=2 reason="still $state after $wait_for: its watch has not started (send deployed first)"
          elif [ -n "$behind" ] && [ -n "$due" ] && [ "$behind" -gt "$behind_tolerance" ]; then
            # Nothing evaluated the change since the latest evaluation (if any): its verdict is old news, not a watch.
            exit_code=2 reason="still watching after $wait_for, but the watch is $(span "$behind") behind: the interval due at $(utc "$due") is not evaluated yet ($( [ -n "$evaluated" ] && echo "latest evaluation $evaluated" || echo "no evaluation yet")), so nothing has judged the change since: $behind_advice"
          elif [ -n "$blind" ]; then exit_code=2 reason="still watching after $wait_for, but blind on $blind in its latest evaluation: no data is never healthy"
          else
            watch_until="$(json_field until "$body")"
            watch_end="${watch_until:+ (the watch runs until $(utc "$watch_until"))}"
            if [ -z "$evaluated" ]; then
              exit_code=2 reason="still watching after $wait_for, but no interval has been judged yet$watch_end: wait longer than the runbook's warmup and interval"
            else
              exit_code=0 reason="still watching after $wait_for with no regression, latest evaluation $evaluated$watch_end"
            fi
          fi
        fi ;;
      *) echo "$body"; fail "HTTP $status with an answer this gate cannot read (unknown state '$state'): $(head -c 500 "$work/answer")" ;;
    esac
    if [ -n "$exit_code" ]; then
      echo "$body"
      case "$exit_code" in 0) verdict=PROMOTE ;; 1) verdict="DO NOT PROMOTE" ;; *) verdict="NO VERDICT" ;; esac
      echo "gate: wait $deployment_id: $verdict: $reason" >&2
      [ -z "$table" ] || printf '%s\n' "$table" | sed 's/^/gate: /' >&2
      exit "$exit_code"
    fi
    # The interval, give or take a fifth, so many pipelines do not ask in step; never past the end of --for.
    delay_ms=$(( interval_s * 800 + RANDOM % (interval_s * 400 + 1) ))
    [ "$delay_ms" -le $(( (until_s - now) * 1000 )) ] || delay_ms=$(( (until_s - now) * 1000 ))
    in_background sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  done
fi

[ -n "$deployment_id" ] && [ -n "$service" ] && [ -n "$environment" ] || fail "--deployment-id, --service and --environment are required"
secret="${ROLLOUTGATE_WEBHOOK_SECRET:-}" token="${ROLLOUTGATE_WEBHOOK_TOKEN:-}"
[ -n "$secret" ] || [ -n "$token" ] || fail "set ROLLOUTGATE_WEBHOOK_SECRET (HMAC secret) or ROLLOUTGATE_WEBHOOK_TOKEN (webhook bearer token)"
[ -n "$secret" ] || refuse_user_info ROLLOUTGATE_WEBHOOK_TOKEN ", or sign with ROLLOUTGATE_WEBHOOK_SECRET instead, beside which the user info is sent"
# One id for every attempt: the server answers a repeated delivery id with its first answer and does nothing twice.
[ -n "$delivery_id" ] || delivery_id="$event-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"

json_string() {
  local s="$1"
  s="${s//\\/\\\\}"; s="${s//\"/\\\"}"; s="${s//$'\n'/\\n}"; s="${s//$'\r'/\\r}"; s="${s//$'\t'/\\t}"
  printf '"%s"' "$s"
}
body="{\"event\":$(json_string "$event"),\"deploymentId\":$(json_string "$deployment_id")"
body+=",\"service\":$(json_string "$service"),\"environment\":$(json_string "$environment")"
for pair in "version:$version" "previousVersion:$previous_version" "initiator:$initiator" "commit:$commit" \
            "pipelineUrl:$pipeline_url" "at:$at"; do
  [ -n "${pair#*:}" ] && body+=",\"${pair%%:*}\":$(json_string "${pair#*:}")"
done
body+="}"

printf '%s' "$body" >"$work/body"
# The token goes to curl through a file, not an argument, so it never shows in the process list.
[ -n "$secret" ] || printf 'Authorization: Bearer %s\n' "$token" >"$work/auth"

write_headers() {
  if [ -n "$secret" ]; then
    # Fresh timestamp and signature per attempt: HMAC-SHA256(secret, "{timestamp}.{raw body}").
    local ts sig
    ts="$(date +%s)"
    sig="$({ printf '%s.' "$ts"; cat "$work/body"; } | openssl dgst -sha256 -hmac "$secret" | awk '{print $NF}')"
    printf 'X-RolloutGate-Timestamp: %s\nX-RolloutGate-Signature: sha256=%s\n' "$ts" "$sig" >"$work/headers"
  else
    cp "$work/auth" "$work/headers"
  fi
  printf 'Content-Type: application/json\nX-RolloutGate-Delivery: %s\n' "$delivery_id" >>"$work/headers"
}
exchange POST "${url%/}/api/v1/deployments" --data-binary @"$work/body"

cat "$work/answer"; echo
# A delivery id the server has seen gets that delivery's first answer, whatever this body is: not this event's answer.
if tr -d '\r' <"$work/answer-headers" | grep -Eqi '^X-RolloutGate-Replayed: *other-body *$'; then
  fail "delivery id '$delivery_id' was used before for another body: the answer is that delivery's, and this $event was not applied; give each event its own --delivery-id"
fi
# The answer's checks as the CLI prints them, a table of name, status and detail (the service writes them in that
# order), or a line saying there are none.
checks() {
  local rest names=(CHECK) statuses=(STATUS) details=(DETAIL)
  local re="^$ws\{$ws\"name\"$ws:$ws$json_string_re$ws,$ws\"status\"$ws:$ws$json_string_re$ws,$ws\"detail\"$ws:$ws$json_string_re$ws\}$ws(,|\])"
  rest="$(after checks "$(cat "$work/answer")")"
  [[ $rest =~ ^$ws:$ws\[$ws ]] || return 0
  rest="${rest:${#BASH_REMATCH[0]}}"
  if [[ $rest == "]"* ]]; then
    echo "  no checks listed: the built-in rules passed and the runbook has no pre-deploy checks"
    return 0
  fi
  while [[ $rest =~ $re ]]; do
    names+=("$(unescape "${BASH_REMATCH[1]}")") statuses+=("$(unescape "${BASH_REMATCH[3]}")") details+=("$(unescape "${BASH_REMATCH[5]}")")
    rest="${rest:${#BASH_REMATCH[0]}}"
    [[ ${BASH_REMATCH[0]} == *"," ]] || break
  done
  [ "${#names[@]}" -gt 1 ] || return 0
  aligned "${#names[@]}" "${names[@]}" "${statuses[@]}" "${details[@]}"
}
if [ "$event" = predeploy ]; then
  # On stderr with the verdict, as the wait's metrics: stdout is the server's JSON alone.
  if grep -Eq '"verdict" *: *"allow"' "$work/answer"; then echo "gate: predeploy $deployment_id: allow" >&2; checks | sed 's/^/gate: /' >&2; exit 0; fi
  if grep -Eq '"verdict" *: *"deny"' "$work/answer"; then echo "gate: predeploy $deployment_id: deny" >&2; checks | sed 's/^/gate: /' >&2; exit 1; fi
  fail "predeploy answered HTTP $status without a verdict"
fi
echo "gate: $event $deployment_id: accepted (HTTP $status)" >&2
exit 0
