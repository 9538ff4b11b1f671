#!/usr/bin/env python3
"""A local stand-in for the Slack Web API (and a rollback webhook receiver) for the soak test.

Answers chat.postMessage, chat.update, chat.postEphemeral and conversations.history as Slack documents them
(https://docs.slack.dev/reference/methods/): POST, `Authorization: Bearer <bot token>`, JSON bodies for chat.*, form
fields for conversations.history; `{"ok": true, "channel", "ts"}`, or `{"ok": false, "error"}` for a request Slack would
refuse (unknown channel or message, no text, a thread_ts that names no root). Top-level messages keep their metadata
and come back, newest first, from conversations.history (oldest, limit, cursor, include_all_metadata).

Control: `POST /_mode` with body `ok`, `500` or `429` makes every Web API call answer that way from then on;
`GET /_stats` gives counts per method and answer, root messages per deployment (from the metadata RolloutGate attaches)
and the rollback webhooks received. `POST /rollback` receives a runbook's `webhook` rollback action: checks the
signature (CONTRACT section 4's scheme) with the secret in SOAK_ROLLBACK_SECRET and answers 200.
Usage: fake_slack.py PORT BOT_TOKEN ROLLBACK_SECRET
"""
import hashlib
import hmac
import json
import sys
import threading
import time
import urllib.parse
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, BOT_TOKEN, ROLLBACK_SECRET = int(sys.argv[1]), sys.argv[2], sys.argv[3]
lock = threading.Lock()
mode = "ok"
calls = Counter()
channels = defaultdict(list)          # channel -> [message dict], in posting order (top-level only)
by_ts = {}                             # ts -> (channel, message)
roots_by_deployment = Counter()        # deployment_id -> top-level messages carrying it
replies = Counter()
rollbacks = Counter()
problems = []
last_ts = [0.0]


def next_ts():
    with lock:
        now = max(time.time(), last_ts[0] + 0.000001)
        last_ts[0] = now
        return f"{now:.6f}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def problem(self, text):
        with lock:
            problems.append(text)
            del problems[:-50]

    def do_GET(self):
        if self.path == "/_stats":
            with lock:
                dup = {d: n for d, n in roots_by_deployment.items() if n > 1}
                self.answer(200, {
                    "mode": mode, "calls": dict(calls), "roots": len(roots_by_deployment), "rootMessages": sum(roots_by_deployment.values()),
                    "duplicatedRoots": dup, "replies": sum(replies.values()), "rollbacks": sum(rollbacks.values()),
                    "rollbacksTwice": {d: n for d, n in rollbacks.items() if n > 1}, "problems": problems[-20:]})
            return
        self.answer(404, {"ok": False, "error": "unknown_method"})

    def body(self):
        """The request body, sent with a Content-Length or chunked (as .NET's HttpClient sends JSON content)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_POST(self):
        global mode
        raw = self.body()
        path = self.path.split("?")[0]
        if path == "/_mode":
            mode = raw.decode().strip() or "ok"
            self.answer(200, {"mode": mode})
            return
        if path == "/rollback":
            self.rollback(raw)
            return
        if not path.startswith("/api/"):
            self.answer(404, {"ok": False, "error": "unknown_method"})
            return
        method = path[len("/api/"):]
        if mode == "500":
            with lock:
                calls[f"{method} 500"] += 1
            self.answer(500, {"ok": False, "error": "internal_error"})
            return
        if mode == "429":
            with lock:
                calls[f"{method} 429"] += 1
            self.answer(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "30"})
            return
        if self.headers.get("Authorization") != f"Bearer {BOT_TOKEN}":
            self.problem(f"{method}: wrong or missing bot token")
            self.answer(200, {"ok": False, "error": "invalid_auth"})
            return
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        try:
            if method == "conversations.history":
                if ctype != "application/x-www-form-urlencoded":
                    self.problem(f"{method}: content type {ctype}")
                args = {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode(), keep_blank_values=True).items()}
            else:
                if ctype != "application/json":
                    self.problem(f"{method}: content type {ctype}")
                args = json.loads(raw or b"{}")
        except ValueError:
            self.answer(200, {"ok": False, "error": "invalid_arguments"})
            return
        handler = {"chat.postMessage": self.post, "chat.update": self.update, "chat.postEphemeral": self.ephemeral,
                   "conversations.history": self.history}.get(method)
        if handler is None:
            self.answer(200, {"ok": False, "error": "unknown_method"})
            return
        body = handler(args)
        with lock:
            calls[f"{method} {'ok' if body.get('ok') else body.get('error')}"] += 1
        self.answer(200, body)

    def post(self, a):
        channel = a.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not a.get("text") and not a.get("blocks"):
            return {"ok": False, "error": "no_text"}
        ts = next_ts()
        message = {"type": "message", "ts": ts, "text": a.get("text"), "blocks": a.get("blocks")}
        thread = a.get("thread_ts")
        with lock:
            if thread:
                if thread not in by_ts or by_ts[thread][0] != channel:
                    return {"ok": False, "error": "thread_not_found"}
                replies[thread] += 1
            else:
                meta = a.get("metadata")
                if meta:
                    message["metadata"] = meta
                    dep = (meta.get("event_payload") or {}).get("deployment_id")
                    if dep:
                        roots_by_deployment[dep] += 1
                channels[channel].append(message)
            by_ts[ts] = (channel, message)
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def update(self, a):
        channel, ts = a.get("channel"), a.get("ts")
        with lock:
            if ts not in by_ts:
                return {"ok": False, "error": "message_not_found"}
            if by_ts[ts][0] != channel:
                return {"ok": False, "error": "channel_not_found"}
            if not a.get("text") and not a.get("blocks"):
                return {"ok": False, "error": "no_text"}
            by_ts[ts][1]["text"] = a.get("text")
        return {"ok": True, "channel": channel, "ts": ts, "text": a.get("text")}

    def ephemeral(self, a):
        if not a.get("channel") or not a.get("user"):
            return {"ok": False, "error": "channel_not_found" if not a.get("channel") else "user_not_in_channel"}
        return {"ok": True, "message_ts": next_ts()}

    def history(self, a):
        channel = a.get("channel")
        oldest = float(a.get("oldest") or 0)
        limit = max(1, min(int(a.get("limit") or 100), 999))
        start = int(a.get("cursor") or 0)
        with lock:
            found = [m for m in reversed(channels.get(channel, [])) if float(m["ts"]) > oldest]
        page = found[start:start + limit]
        if a.get("include_all_metadata") != "true":
            page = [{k: v for k, v in m.items() if k != "metadata"} for m in page]
        more = start + limit < len(found)
        return {"ok": True, "messages": page, "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""}}

    def rollback(self, raw):
        ts = self.headers.get("X-RolloutGate-Timestamp", "")
        want = "sha256=" + hmac.new(ROLLBACK_SECRET.encode(), f"{ts}.".encode() + raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, self.headers.get("X-RolloutGate-Signature", "")):
            self.problem("rollback webhook: bad signature")
            self.answer(401, {"error": "bad signature"})
            return
        dep = json.loads(raw).get("deploymentId")
        with lock:
            rollbacks[dep] += 1
        self.answer(200, {"accepted": True})


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
