#!/usr/bin/env python3
"""Example receiver for cvd's release webhooks.

It checks each request as every receiver should, then hands the event on:

  * Cvd-Signature must be "sha256=" + hex HMAC-SHA256, keyed with the
    endpoint's secret, of Cvd-Timestamp + "." + the body;
  * Cvd-Timestamp must be within WINDOW seconds of this host's clock;
  * an event ID seen before is acknowledged and dropped (cvd retries until
    it gets a 2xx, so the same event may come twice).

A good event is printed as one line ("INCIDENT CVE TITLE URL") or, with
--exec, its JSON is given on stdin to a command (a chat bridge, an IRC
bot, a site build). Run it behind a TLS proxy when cvd reaches it over
the network.

  webhook-receiver.py --secret-file /etc/cvd/chat.secret --listen 127.0.0.1:8099 \
      [--seen-file /var/lib/cvd-hook/seen] [--exec /usr/local/bin/announce-chat]
"""

import argparse
import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WINDOW = 300
MAX_BODY = 1 << 20


class Receiver(BaseHTTPRequestHandler):
    server_version = "cvd-webhook-receiver"

    def answer(self, code, text):
        body = (text + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        cfg = self.server.cfg
        try:
            length = int(self.headers.get("Content-Length", "-1"))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            return self.answer(413, "body missing or too large")
        body = self.rfile.read(length)
        ts = self.headers.get("Cvd-Timestamp", "")
        sig = self.headers.get("Cvd-Signature", "")
        mac = hmac.new(cfg.secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest("sha256=" + mac, sig):
            return self.answer(401, "bad signature")
        if not ts.isdigit() or abs(time.time() - int(ts)) > WINDOW:
            return self.answer(401, "stale timestamp")
        try:
            event = json.loads(body)
            event_id = str(event["id"])
        except (ValueError, KeyError, TypeError):
            return self.answer(400, "not a cvd event")
        with cfg.lock:
            if event_id in cfg.seen:
                return self.answer(200, "already seen")
            if not handle(cfg, event, body):
                return self.answer(500, "handler failed; retry later")
            cfg.seen.add(event_id)
            if cfg.seen_file:
                with open(cfg.seen_file, "a") as f:
                    f.write(event_id + "\n")
        self.answer(200, "ok")

    def log_message(self, fmt, *args):
        sys.stderr.write("webhook-receiver: %s\n" % (fmt % args))


def handle(cfg, event, body):
    if cfg.exec:
        return subprocess.run(cfg.exec, input=body, shell=True).returncode == 0
    line = " ".join(str(event.get(k) or "-") for k in ("incident", "cve", "title", "url"))
    print(line, flush=True)
    return True


def main():
    p = argparse.ArgumentParser(description="Receive and verify cvd release webhooks.")
    p.add_argument("--secret-file", required=True)
    p.add_argument("--listen", default="127.0.0.1:8099")
    p.add_argument("--seen-file", help="remember handled event IDs across restarts")
    p.add_argument("--exec", help="shell command that gets each event's JSON on stdin")
    cfg = p.parse_args()
    with open(cfg.secret_file, "rb") as f:
        cfg.secret = f.read().strip()
    cfg.seen = set()
    if cfg.seen_file and os.path.exists(cfg.seen_file):
        with open(cfg.seen_file) as f:
            cfg.seen = {l.strip() for l in f if l.strip()}
    cfg.lock = threading.Lock()
    host, _, port = cfg.listen.rpartition(":")
    srv = ThreadingHTTPServer((host, int(port)), Receiver)
    srv.cfg = cfg
    print("listening on %s" % cfg.listen, file=sys.stderr, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
