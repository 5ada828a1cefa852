#!/usr/bin/python3
"""A tiny invoices API for the quickstart's `demo-api` HTTP target.

usage: scripts/demo-api.py [--port 8082] [--key-file var/demo-api/key]

It answers only requests carrying `X-Api-Key: <the key file's contents>`:
the credential airlock injects upstream (upstream.headers in
examples/quickstart.yaml) and the agent never holds. Endpoints, all JSON:

    GET    /v1/invoices          the list
    GET    /v1/invoices/ID       one invoice, or 404
    POST   /v1/invoices          create from a JSON body, 201
    DELETE /v1/invoices/ID       delete, 204 (the quickstart policy denies it)
    GET    /admin/...            pretend admin data (the policy denies it)

Each request reaching it is logged to stderr as `demo-api: METHOD PATH STATUS`,
so you can see which requests airlock let through. Stdlib only; in-memory.
"""
import argparse
import hmac
import http.server
import json
import re
import sys
import threading

INVOICES = {
    41: {"id": 41, "customer": "ACME Corp", "total_cents": 129900, "status": "paid"},
    42: {"id": 42, "customer": "Globex", "total_cents": 45000, "status": "open"},
    43: {"id": 43, "customer": "Initech", "total_cents": 9900, "status": "open"},
}
LOCK = threading.Lock()
ONE = re.compile(r"^/v1/invoices/(\d+)$")


def make_handler(key):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "demo-api"
        sys_version = ""

        def log_message(self, *a):
            pass

        def reply(self, status, doc=None):
            data = b"" if doc is None else (json.dumps(doc) + "\n").encode()
            self.send_response(status)
            if doc is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            sys.stderr.write(f"demo-api: {self.command} {self.path} {status}\n")

        def body(self):
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def handle_any(self):
            raw = self.body()
            got = (self.headers.get("X-Api-Key") or "").encode()
            if not hmac.compare_digest(got, key):
                return self.reply(401, {"error": "missing or wrong X-Api-Key"})
            path = self.path.split("?", 1)[0]
            m = ONE.match(path)
            with LOCK:
                if self.command == "GET" and path == "/v1/invoices":
                    return self.reply(200, {"invoices": sorted(INVOICES.values(),
                                                               key=lambda i: i["id"])})
                if self.command == "GET" and m:
                    inv = INVOICES.get(int(m.group(1)))
                    return self.reply(200, inv) if inv else self.reply(404, {"error": "no such invoice"})
                if self.command == "POST" and path == "/v1/invoices":
                    try:
                        doc = json.loads(raw or b"{}")
                        inv = {"id": max(INVOICES) + 1, "customer": str(doc["customer"]),
                               "total_cents": int(doc["total_cents"]), "status": "open"}
                    except (ValueError, KeyError, TypeError):
                        return self.reply(400, {"error": "want {\"customer\": ..., \"total_cents\": N}"})
                    INVOICES[inv["id"]] = inv
                    return self.reply(201, inv)
                if self.command == "DELETE" and m:
                    return self.reply(204) if INVOICES.pop(int(m.group(1)), None) else \
                        self.reply(404, {"error": "no such invoice"})
                if path == "/admin" or path.startswith("/admin/"):
                    return self.reply(200, {"users": ["root"], "note": "airlock should never let this out"})
            return self.reply(404, {"error": "not found"})

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

    return Handler


def main():
    ap = argparse.ArgumentParser(description="the quickstart's demo invoices API")
    ap.add_argument("--port", type=int, default=8082)
    ap.add_argument("--key-file", default="var/demo-api/key")
    a = ap.parse_args()
    with open(a.key_file, "rb") as f:
        key = f.read().strip()
    if not key:
        sys.exit(f"demo-api: {a.key_file} is empty")
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), make_handler(key))
    srv.daemon_threads = True
    sys.stderr.write(f"demo-api: listening on http://127.0.0.1:{a.port}\n")
    sys.stderr.flush()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()


if __name__ == "__main__":
    main()
