#!/usr/bin/env bash
# The RolloutGate gate for runners without .NET: bash, curl and openssl only. It sends one CD webhook
# (CONTRACT section 4) the way `rolloutgate gate` does and exits the same way:
#   0 allow (or the event was accepted), 1 deny, 2 no usable answer (refused, server error, unreachable).
#
# usage: rolloutgate-gate.sh predeploy|deployed|rolledback|cancelled --deployment-id ID --service S --environment E
#          [--url URL] [--version V] [--previous-version V] [--initiator NAME] [--commit SHA] [--pipeline-url URL]
#          [--at ISO8601] [--delivery-id ID] [--timeout SECONDS] [--retries N]
# The secret comes from ROLLOUTGATE_WEBHOOK_SECRET (or a bearer token from ROLLOUTGATE_WEBHOOK_TOKEN), never from an
# argument; the URL from --url or ROLLOUTGATE_URL. The server's JSON answer goes to stdout, a one-line summary to stderr.
#
# Note: `openssl dgst -hmac KEY` takes the key as an argument, so it is visible in the runner's process list for the
# few milliseconds openssl runs. On a runner shared with untrusted jobs, prefer the .NET CLI or a webhook token.
set -uo pipefail

usage() { sed -n '6,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
fail() { echo "gate: $*" >&2; exit 2; }

[ $# -ge 1 ] || usage
event="$1"; shift
case "$event" in predeploy|deployed|rolledback|cancelled) ;; *) fail "the event '$event' is not one of predeploy, deployed, rolledback, cancelled" ;; esac

url="${ROLLOUTGATE_URL:-http://127.0.0.1:8080}"
deployment_id="" service="" environment="" version="" previous_version="" initiator="" commit="" pipeline_url="" at=""
delivery_id="" timeout=60 retries=5 given=" "
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || fail "$1 needs a value"
  # The last of two would win unsaid: a webhook about another deployment or service than the one meant.
  case "$given" in *" $1 "*) fail "$1 is given more than once" ;; esac
  given="$given$1 "
  case "$1" in
    --url) url="$2" ;;
    --deployment-id) deployment_id="$2" ;;
    --service) service="$2" ;;
    --environment) environment="$2" ;;
    --version) version="$2" ;;
    --previous-version) previous_version="$2" ;;
    --initiator) initiator="$2" ;;
    --commit) commit="$2" ;;
    --pipeline-url) pipeline_url="$2" ;;
    --at) at="$2" ;;
    --delivery-id) delivery_id="$2" ;;
    --timeout) timeout="${2%s}" ;;
    --retries) retries="$2" ;;
    *) fail "unknown option '$1'" ;;
  esac
  shift 2
done
[ -n "$deployment_id" ] && [ -n "$service" ] && [ -n "$environment" ] || fail "--deployment-id, --service and --environment are required"
[[ "$timeout" =~ ^[0-9]+$ ]] && [ "$timeout" -gt 0 ] || fail "--timeout is a whole number of seconds, such as 60 or 60s"
[[ "$retries" =~ ^[0-9]+$ ]] || fail "--retries is a whole number"
secret="${ROLLOUTGATE_WEBHOOK_SECRET:-}" token="${ROLLOUTGATE_WEBHOOK_TOKEN:-}"
[ -n "$secret" ] || [ -n "$token" ] || fail "set ROLLOUTGATE_WEBHOOK_SECRET (HMAC secret) or ROLLOUTGATE_WEBHOOK_TOKEN (webhook bearer token)"
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

work="$(umask 077 && mktemp -d)"
trap 'rm -rf "$work"' EXIT
printf '%s' "$body" >"$work/body"
# The token goes to curl through a file, not an argument, so it never shows in the process list.
[ -n "$secret" ] || printf 'Authorization: Bearer %s\n' "$token" >"$work/auth"

deadline=$(( $(date +%s) + timeout ))
attempt=0
while :; do
  attempt=$((attempt + 1))
  remaining=$(( deadline - $(date +%s) ))
  [ "$remaining" -gt 0 ] || fail "no answer within ${timeout}s ($((attempt - 1)) attempts); last attempt: ${last:-none}"
  : >"$work/headers"
  if [ -n "$secret" ]; then
    # Fresh timestamp and signature per attempt: HMAC-SHA256(secret, "{timestamp}.{raw body}").
    ts="$(date +%s)"
    sig="$({ printf '%s.' "$ts"; cat "$work/body"; } | openssl dgst -sha256 -hmac "$secret" | awk '{print $NF}')"
    printf 'X-RolloutGate-Timestamp: %s\nX-RolloutGate-Signature: sha256=%s\n' "$ts" "$sig" >"$work/headers"
  else
    cp "$work/auth" "$work/headers"
  fi
  status="$(curl -sS -o "$work/answer" -D "$work/answer-headers" -w '%{http_code}' --max-time "$remaining" -X POST \
    -H "Content-Type: application/json" -H "X-RolloutGate-Delivery: $delivery_id" -H @"$work/headers" \
    --data-binary @"$work/body" "${url%/}/api/v1/deployments" 2>"$work/curl-error")"
  case "$status" in
    2??) break ;;
    000|5??|408|429) last="$( [ "$status" = 000 ] && head -c 300 "$work/curl-error" || echo "HTTP $status")" ;;
    *) cat "$work/answer"; echo; fail "$event refused: HTTP $status: $(head -c 1000 "$work/answer")" ;;
  esac
  if [ "$attempt" -gt "$retries" ]; then
    [ "$status" = 000 ] || { cat "$work/answer"; echo; }
    fail "no usable answer from $url ($attempt attempts); last attempt: $last"
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
  sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
done

cat "$work/answer"; echo
# A delivery id the server has seen gets that delivery's first answer, whatever this body is: not this event's answer.
if tr -d '\r' <"$work/answer-headers" | grep -Eqi '^X-RolloutGate-Replayed: *other-body *$'; then
  fail "delivery id '$delivery_id' was used before for another body: the answer is that delivery's, and this $event was not applied; give each event its own --delivery-id"
fi
if [ "$event" = predeploy ]; then
  if grep -Eq '"verdict" *: *"allow"' "$work/answer"; then echo "gate: predeploy $deployment_id: allow" >&2; exit 0; fi
  if grep -Eq '"verdict" *: *"deny"' "$work/answer"; then echo "gate: predeploy $deployment_id: deny" >&2; exit 1; fi
  fail "predeploy answered HTTP $status without a verdict"
fi
echo "gate: $event $deployment_id: accepted (HTTP $status)" >&2
exit 0
