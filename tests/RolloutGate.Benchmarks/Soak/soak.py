#!/usr/bin/env python3
"""The soak's load, chaos, resource sampler and final checks (run-soak.sh starts everything it talks to).

Load: every soak service (runbooks soak-1..N, all watching the demo workload) gets a new change as soon as the last one
is over: a signed predeploy, then deployed (now and then cancelled instead); some are rolled back by the pipeline or
stopped mid-watch, some deliveries are sent twice.
Every FAULT_EVERY minutes the demo workload is broken for FAULT_FOR seconds, so the running watches regress: the
driver presses Roll back, Keep or Stop in "Slack" (signed /slack/interactions, now and then first as someone who may
not), or leaves the recommendation to its time-out. Readers fetch the dashboard, inbox, lists, audit pages and reports.
Every EDIT_EVERY seconds one runbook gets a new metadata.version (a team editing its runbooks).
Chaos at fixed minutes: Prometheus restarted, PostgreSQL restarted, the fake Slack answering 500 and then 429.
Every SAMPLE_EVERY seconds one CSV row of the service's resources. At the end: audit chain, evaluation gaps,
duplicated Slack roots, the outbox drained.
"""
import csv
import hashlib
import http.cookiejar
import hmac
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

E = os.environ
BASE = E["SOAK_BASE_URL"]
READER, OPERATOR = E["ROLLOUTGATE_READER_TOKEN"], E["ROLLOUTGATE_OPERATOR_TOKEN"]
WEBHOOK_SECRET, SIGNING_SECRET = E["ROLLOUTGATE_WEBHOOK_SECRET"], E["SOAK_SLACK_SIGNING_SECRET"]
SLACK = E["SOAK_SLACK_URL"]
SERVICES = [f"soak-{i}" for i in range(1, int(E.get("SOAK_SERVICES", "8")) + 1)]
MINUTES = float(E.get("SOAK_MINUTES", "50"))
SAMPLE_EVERY = float(E.get("SOAK_SAMPLE_EVERY", "30"))
FAULT_EVERY, FAULT_FOR = float(E.get("SOAK_FAULT_EVERY", "9")), float(E.get("SOAK_FAULT_FOR", "100"))
CSV_PATH = E["SOAK_CSV"]
PG_PORT, PROM_PORT, SLACK_PORT = E["SOAK_PG_PORT"], E["SOAK_PROMETHEUS_PORT"], E["SOAK_SLACK_PORT"]
DATABASE = E.get("SOAK_DATABASE", "rolloutgate")
SERVICE_PID = E["SOAK_SERVICE_PID"]
COUNTERS_CSV = E.get("SOAK_COUNTERS_CSV", "")
RUNBOOKS, EDIT_EVERY = E["SOAK_RUNBOOKS"], float(E.get("SOAK_EDIT_EVERY", "150"))
# minute offsets of the chaos steps (empty: none)
CHAOS = [c for c in E.get("SOAK_CHAOS", "prometheus@15,postgres@22,slack500@28,slack429@33").split(",") if c]
OWNER, STRANGER = "U024BE7LH", "U0STRANGER"
FINAL = {"completed", "rolled-back", "kept", "stopped", "cancelled", "denied"}
random.seed(int(E.get("SOAK_SEED", "7")))
start = time.time()
stop = threading.Event()
lock = threading.Lock()
stats = {k: 0 for k in ["predeploy", "allow", "deny", "deployed", "retries", "cancelled", "stopped", "pressed",
                        "refusedPresses", "rolledbackSent", "reads", "readErrors", "http5xx", "faults", "runbookEdits"]}
chaos_log = []


def log(msg):
    print(f"[soak {time.time() - start:7.0f}s] {msg}", flush=True)


def bump(key, n=1):
    with lock:
        stats[key] += n


# The dashboard and the inbox take the reader token once (?token=), keep it in a cookie and redirect: a browser's way.
OPENER = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


def http(method, path, body=None, headers=None, base=BASE, timeout=30):
    req = urllib.request.Request(base + path, data=body, method=method, headers=headers or {})
    try:
        with OPENER.open(req, timeout=timeout) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers
    except (urllib.error.URLError, OSError) as e:
        return 0, str(e).encode(), {}


def reader(path, accept="application/json"):
    return http("GET", path, headers={"Authorization": f"Bearer {READER}", "Accept": accept})


def operator(method, path, payload=None):
    return http(method, path, json.dumps(payload).encode() if payload is not None else None,
                {"Authorization": f"Bearer {OPERATOR}", "Content-Type": "application/json"})


def webhook(event, dep, svc, delivery=None):
    body = json.dumps({"event": event, "deploymentId": dep, "service": svc, "environment": "production",
                       "version": f"1.{random.randint(0, 99)}.0", "previousVersion": "1.0.0", "initiator": "soak"}).encode()
    ts = str(int(time.time()))
    sig = hmac.new(WEBHOOK_SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-RolloutGate-Delivery": delivery or f"{dep}-{event}",
               "X-RolloutGate-Timestamp": ts, "X-RolloutGate-Signature": f"sha256={sig}"}
    status, data, _ = http("POST", "/api/v1/deployments", body, headers)
    if random.random() < 0.1 and status in (200, 202):  # a pipeline's retry: the same delivery, the same answer
        status2, data2, _ = http("POST", "/api/v1/deployments", body, headers)
        bump("retries")
        if (status2, json.loads(data2 or b"{}").get("verdict")) != (status, json.loads(data or b"{}").get("verdict")):
            log(f"retry of {dep}-{event} answered {status2} {data2[:200]!r}, first {status}")
    if status >= 500 or status == 0:
        bump("http5xx")
    return status, data


def press(action, dep, user, channel):
    payload = json.dumps({"type": "block_actions", "user": {"id": user}, "channel": {"id": channel},
                          "container": {"channel_id": channel}, "actions": [{"action_id": action, "value": dep}]})
    body = urllib.parse.urlencode({"payload": payload}).encode()
    ts = str(int(time.time()))
    sig = "v0=" + hmac.new(SIGNING_SECRET.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    status, data, _ = http("POST", "/slack/interactions", body, {
        "Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig})
    return status, data


# ---------------------------------------------------------------------------------------------------------------- load
class Lane:
    def __init__(self, svc, index):
        self.svc, self.index, self.n = svc, index, 0
        self.current, self.plan, self.wait_until = None, None, 0
        self.decision, self.rolling_back = None, None
        self.channel = f"C0SOAK{index:03d}"


def lane_step(lane):
    now = time.time()
    if lane.current is None:
        if now < lane.wait_until:
            return
        lane.n += 1
        dep = f"{lane.svc}-{int(start)}-{lane.n}"
        status, data = webhook("predeploy", dep, lane.svc)
        bump("predeploy")
        if status != 200:
            log(f"predeploy {dep}: {status} {data[:300]!r}")
            lane.wait_until = now + 15
            return
        answer = json.loads(data)
        if answer["verdict"] != "allow":
            bump("deny")
            lane.wait_until = now + 20
            return
        bump("allow")
        if random.random() < 0.08:  # the pipeline gives the change up before deploying it
            webhook("cancelled", dep, lane.svc)
            bump("cancelled")
            lane.wait_until = now + random.uniform(0, 5)
            return
        status, data = webhook("deployed", dep, lane.svc)
        if status != 202:
            log(f"deployed {dep}: {status} {data[:300]!r}")
            lane.wait_until = now + 15
            return
        bump("deployed")
        r = random.random()
        lane.current = dep
        lane.plan = ("rolledback", now + random.uniform(20, 120)) if r < 0.05 else ("stop", now + random.uniform(20, 120)) if r < 0.1 else None
        lane.decision = None
        return
    status, data, _ = reader(f"/api/v1/deployments/{urllib.parse.quote(lane.current)}")
    if status != 200:
        if status >= 500 or status == 0:
            bump("http5xx")
        return
    state = json.loads(data)["state"]
    dep = lane.current
    if state in FINAL:
        lane.current, lane.wait_until = None, now + random.uniform(0, 5)
        return
    if state == "watching" and lane.plan and now >= lane.plan[1]:
        if lane.plan[0] == "rolledback":  # the pipeline rolled back by itself
            webhook("rolledback", dep, lane.svc)
            bump("rolledbackSent")
        else:
            operator("POST", f"/api/v1/deployments/{urllib.parse.quote(dep)}/stop", {"actor": "soak", "reason": "soak stop"})
            bump("stopped")
        lane.plan = None
    elif state == "regressed":
        if lane.decision is None:
            r = random.random()
            choice = "rollback" if r < 0.4 else "dismiss" if r < 0.6 else "stop" if r < 0.7 else "timeout"
            lane.decision = (choice, now + random.uniform(5, 40), random.random() < 0.2)
        choice, at, stranger_first = lane.decision
        if choice != "timeout" and now >= at:
            if stranger_first:
                press(choice, dep, STRANGER, lane.channel)
                bump("refusedPresses")
            status, data = press(choice, dep, OWNER, lane.channel)
            if status != 200:
                log(f"press {choice} {dep}: {status} {data[:200]!r}")
            bump("pressed")
            lane.decision = ("done", float("inf"), False)
    elif state == "rolling-back":
        # a failed action (never expected here: the fake receiver answers 200) would wait for a person: after a minute the
        # pipeline rolls back by other means
        if lane.rolling_back is None or lane.rolling_back[0] != dep:
            lane.rolling_back = (dep, now, False)
        elif now - lane.rolling_back[1] > 60 and not lane.rolling_back[2]:
            webhook("rolledback", dep, lane.svc)
            lane.rolling_back = (dep, lane.rolling_back[1], True)
            bump("rolledbackSent")


def load_loop():
    lanes = [Lane(s, i) for i, s in enumerate(SERVICES, 1)]
    while not stop.is_set():
        for lane in lanes:
            try:
                lane_step(lane)
            except Exception as e:  # noqa: BLE001 - the soak goes on; the log says what happened
                log(f"lane {lane.svc}: {e!r}")
        stop.wait(3)


def fault_loop():
    while not stop.wait(FAULT_EVERY * 60):
        status, data, _ = operator("POST", "/demo/faults", {"latency": 2.0, "errorRate": 0.05})
        bump("faults")
        log(f"fault on: {status}")
        stop.wait(FAULT_FOR)
        status, _, _ = operator("DELETE", "/demo/faults")
        log(f"fault off: {status}")


def read_loop():
    pages = ["/dashboard?token=" + READER, "/inbox?token=" + READER, "/api/v1/deployments", "/api/v1/deployments?state=watching",
             "/api/v1/audit/events?limit=500", "/api/v1/reports/summary", "/api/v1/reports/alert-quality",
             "/api/v1/runbooks/soak-1/decisions.md", "/api/v1/audit/verify"]
    while not stop.wait(10):
        try:
            path = random.choice(pages)
            accept = "text/csv" if random.random() < 0.3 and ("deployments" in path or "events" in path or "summary" in path) else "application/json"
            status, data, headers = reader(path, accept)
            bump("reads")
            if status != 200:
                bump("readErrors")
                log(f"read {path.split('?')[0]} ({accept}): {status} {data[:200]!r}")
                if status >= 500 or status == 0:
                    bump("http5xx")
            elif "events" in path and accept == "application/json":  # a few more pages of the audit trail
                nxt = json.loads(data).get("next")
                for _ in range(2):
                    if not nxt:
                        break
                    status, data, _ = reader(nxt[len(BASE):] if nxt.startswith("http") else nxt)
                    nxt = json.loads(data).get("next") if status == 200 else None
            elif path == "/api/v1/deployments" and accept == "application/json":  # one deployment's dashboard page
                items = json.loads(data)
                items = items.get("deployments", items) if isinstance(items, dict) else items
                if items:
                    dep = random.choice(items[:50])["deploymentId"]
                    reader(f"/dashboard/deployments/{urllib.parse.quote(dep)}?token={READER}", "text/html")
                    reader(f"/api/v1/audit/events?deploymentId={urllib.parse.quote(dep)}")
        except Exception as e:  # noqa: BLE001
            log(f"read: {e!r}")


def edit_loop():
    while EDIT_EVERY > 0 and not stop.wait(EDIT_EVERY):
        path = os.path.join(RUNBOOKS, f"{random.choice(SERVICES)}.yaml")
        with open(path) as f:
            text = f.read()
        version = int(re.search(r"^  version: (\d+)$", text, re.M).group(1))
        with open(path, "w") as f:
            f.write(re.sub(r"^  version: \d+$", f"  version: {version + 1}", text, count=1, flags=re.M))
        bump("runbookEdits")


def chaos_loop():
    steps = sorted((float(c.split("@")[1]), c.split("@")[0]) for c in CHAOS)
    for minute, what in steps:
        if stop.wait(max(0, start + minute * 60 - time.time())):
            return
        log(f"chaos: {what}")
        chaos_log.append((round(time.time() - start), what))
        if what in ("prometheus", "postgres"):
            cmd = E["SOAK_RESTART_PROMETHEUS" if what == "prometheus" else "SOAK_RESTART_POSTGRES"]
            done = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True)
            log(f"chaos {what}: exit {done.returncode} {done.stderr.strip()[-300:]}")
        elif what.startswith("slack"):
            code = what[len("slack"):]
            http("POST", "/_mode", code.encode(), base=SLACK)
            stop.wait(float(E.get("SOAK_SLACK_OUTAGE", "180")))
            http("POST", "/_mode", b"ok", base=SLACK)
            log(f"chaos {what}: over")


# -------------------------------------------------------------------------------------------------------------- sample
def proc_status():
    out = {}
    with open(f"/proc/{SERVICE_PID}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def cpu_seconds():
    """The service's CPU time so far, user and system (fields 14 and 15 of /proc/PID/stat, in clock ticks)."""
    with open(f"/proc/{SERVICE_PID}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)


def sh(cmd):
    return subprocess.run(["bash", "-c", cmd], capture_output=True, text=True).stdout.strip()


def psql(sql):
    return sh(f"psql -h 127.0.0.1 -p {PG_PORT} -U postgres -d {DATABASE} -tAc \"{sql}\" 2>/dev/null")


def sockets(port):
    lines = sh(f"ss -tanH '( dport = :{port} )'").splitlines()
    states = [l.split()[0] for l in lines if l.strip()]
    return states.count("ESTAB"), states.count("TIME-WAIT")


def metrics():
    status, data, _ = http("GET", "/metrics", timeout=10)
    values = {}
    if status == 200:
        for line in data.decode().splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name, _, value = line.rpartition(" ")
            try:
                values[name] = float(value)
            except ValueError:
                pass
    return values


def counters():
    """The latest of each runtime counter dotnet-counters wrote (GC heap, allocation), if it runs."""
    latest = {}
    if COUNTERS_CSV and os.path.exists(COUNTERS_CSV):
        with open(COUNTERS_CSV, errors="replace") as f:
            for row in csv.reader(f.readlines()[-400:]):
                if len(row) >= 5:
                    latest[row[2]] = row[4]
    return latest


COLUMNS = ["elapsed_s", "rss_mb", "gc_heap_mb", "gc_committed_mb", "threads", "fds", "pg_conns_service", "pg_conns_all",
           "prom_estab", "prom_time_wait", "slack_estab", "slack_time_wait", "watching", "deployments", "watches_done",
           "evaluations", "outbox_pending", "watch_lag_mean_s", "watch_behind_s", "http_requests", "timers",
           "rss_anon_mb", "rss_file_mb", "rss_shmem_mb", "cpu_s"]


def sample_loop():
    last_lag = (0.0, 0.0)
    with open(CSV_PATH, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(COLUMNS)
        while True:
            try:
                st = proc_status()
                fds = len(os.listdir(f"/proc/{SERVICE_PID}/fd"))
                conns = (psql("SELECT count(*) FILTER (WHERE usename='rolloutgate'), count(*) FROM pg_stat_activity WHERE backend_type='client backend'") or "|").split("|")
                counts = (psql("SELECT count(*) FILTER (WHERE state='watching'), count(*), count(*) FILTER (WHERE watch_until IS NOT NULL AND state NOT IN ('watching','regressed','rolling-back')), "
                               "(SELECT count(*) FROM evaluations), (SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND abandoned_at IS NULL) FROM deployments") or "||||").split("|")
                m = metrics()
                lag_sum = m.get("rolloutgate_watch_evaluation_lag_seconds_sum", 0.0)
                lag_count = m.get("rolloutgate_watch_evaluation_lag_seconds_count", 0.0)
                lag = (lag_sum - last_lag[0]) / (lag_count - last_lag[1]) if lag_count > last_lag[1] else ""
                last_lag = (lag_sum, lag_count)
                behind = next((v for k, v in m.items() if k.startswith("rolloutgate_watch_behind_seconds")), "")
                requests = sum(v for k, v in m.items() if k.startswith("rolloutgate_http_requests_total") or k.startswith("rolloutgate_http_requests{"))
                c = counters()
                heap = sum(float(v) for k, v in c.items() if k.startswith("dotnet.gc.last_collection.heap.size")) if c else ""
                committed = next((v for k, v in c.items() if k.startswith("dotnet.gc.last_collection.memory.committed_size")), "")
                timers = next((v for k, v in c.items() if k.startswith("dotnet.timer.count")), "")
                to_mb = lambda v, div: round(float(v) / div, 1) if v not in ("", None) else ""
                row = [round(time.time() - start), round(int(st["VmRSS"].split()[0]) / 1024, 1), to_mb(heap, 1048576), to_mb(committed, 1048576),
                       st["Threads"], fds, *conns, *sockets(PROM_PORT), *sockets(SLACK_PORT), *counts,
                       round(lag, 3) if lag != "" else "", behind, int(requests), timers,
                       # RSS in its parts: anonymous (the GC heap, native allocations, thread stacks), file-backed (the
                       # runtime and assemblies mapped), shared (the runtime's double-mapped executable memory: JIT code)
                       *(round(int(st[k].split()[0]) / 1024, 1) for k in ("RssAnon", "RssFile", "RssShmem")), cpu_seconds()]
                out.writerow(row)
                f.flush()
            except Exception as e:  # noqa: BLE001
                log(f"sample: {e!r}")
            if stop.wait(SAMPLE_EVERY):
                return


# -------------------------------------------------------------------------------------------------------------- checks
def checks():
    problems = []
    status, data, _ = reader("/api/v1/audit/verify")
    log(f"audit verify: {status} {data[:200]!r}")
    if status != 200 or not json.loads(data).get("ok"):
        problems.append("audit chain")
    gaps = psql("WITH s AS (SELECT deployment_id, metric, at - lag(at) OVER (PARTITION BY deployment_id, metric ORDER BY at) AS step FROM evaluations), "
                "d AS (SELECT deployment_id, min(step) AS interval FROM s GROUP BY deployment_id) "
                "SELECT s.deployment_id || ' ' || s.metric || ' ' || s.step FROM s JOIN d USING (deployment_id) WHERE s.step > d.interval LIMIT 20")
    log(f"evaluation gaps: {gaps or 'none'}")
    if gaps:
        problems.append("evaluation gaps")
    uneven = psql("SELECT count(*) FROM (SELECT deployment_id, count(*) c FROM evaluations GROUP BY deployment_id, metric) x "
                  "GROUP BY deployment_id HAVING count(DISTINCT c) > 1")
    if uneven:
        problems.append(f"metrics of one watch with different counts: {uneven}")
    for _ in range(60):  # the outbox drains once Slack answers again (its backoff is at most RetryMaxDelay)
        pending = psql("SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND abandoned_at IS NULL")
        if pending == "0":
            break
        time.sleep(10)
    abandoned = psql("SELECT count(*) FROM outbox WHERE abandoned_at IS NOT NULL")
    log(f"outbox: pending {pending}, abandoned {abandoned}, delivered {psql('SELECT count(*) FROM outbox WHERE delivered_at IS NOT NULL')}")
    if pending != "0" or abandoned != "0":
        problems.append("outbox not drained")
    status, data, _ = http("GET", "/_stats", base=SLACK)
    slack = json.loads(data)
    log(f"fake Slack: {json.dumps(slack)}")
    if slack["duplicatedRoots"] or slack["rollbacksTwice"] or slack["problems"]:
        problems.append("Slack duplicates or malformed requests")
    roots_expected = psql("SELECT count(DISTINCT deployment_id) FROM outbox WHERE kind='slack.root'")
    log(f"deployments with a root message in the outbox: {roots_expected}, roots at the fake: {slack['roots']}")
    states = psql("SELECT state || '=' || count(*) FROM deployments GROUP BY state ORDER BY state").split()
    log(f"states: {' '.join(states)}")
    log(f"load: {json.dumps(stats)}; chaos: {chaos_log}")
    return problems


def main():
    threads = [threading.Thread(target=t, daemon=True) for t in (load_loop, fault_loop, read_loop, edit_loop, chaos_loop)]
    sampler = threading.Thread(target=sample_loop, daemon=True)
    sampler.start()
    for t in threads:
        t.start()
    stop.wait(MINUTES * 60)
    stop.set()
    operator("DELETE", "/demo/faults")
    http("POST", "/_mode", b"ok", base=SLACK)
    for t in threads:
        t.join(timeout=60)
    sampler.join(timeout=30)
    problems = checks()
    log("soak: " + ("ok" if not problems else "PROBLEMS: " + "; ".join(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
