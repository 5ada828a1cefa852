#!/usr/bin/python3
"""bench/revoke: how fast the kill switch ends an agent's sessions.

Each run opens SESSIONS live sessions of one agent through airlock, split
across protocols (PostgreSQL after startup; HTTP keep-alive connections
after one request; CONNECT tunnels carrying bytes), then calls
POST /v1/agents/bench/disable and records when each client socket sees
the gateway close it. Reported, over RUNS runs:

  after_answer  last socket closed - disable answer received (what an
                operator waits for after `airlock agents disable` returns;
                negative when every session was gone before the answer)
  after_send    last socket closed - disable request sent (an upper bound
                that includes the admin API round trip)

Between runs the agent is enabled again. Closes are seen by one selector
thread on the client side, so the figures include its wake-up latency.

usage: bench/revoke/bench_revoke.py BUILD_DIR [RUNS] [SESSIONS]
env:   BENCH_REVOKE_MIX=postgres,http,tunnel (protocols to split the sessions
       across), BENCH_REVOKE_WORKERS=2, BENCH_REVOKE_PG_NICE (e.g. 19)
"""
import http.client
import http.server
import multiprocessing
import os
import pwd
import selectors
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

BIN = os.path.abspath(os.path.join(sys.argv[1] if len(sys.argv) > 1 else "build", "airlock"))
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 50
SESSIONS = int(sys.argv[3]) if len(sys.argv) > 3 else 100
PG = "/usr/lib/postgresql/15/bin"
TIMEOUT = 10.0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def as_pg(args):
    return subprocess.run(["runuser", "-u", "postgres", "--"] + args, check=True,
                          capture_output=True, text=True)


def wait_port(port, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


class Web(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


def upstreams(web_port, echo_port, ready):
    """The HTTP upstream and the echo server, in a child process: their
    threads waking up as the gateway closes connections must not compete
    with the measuring thread for this process's interpreter lock."""
    web = http.server.ThreadingHTTPServer(("127.0.0.1", web_port), Web)
    web.daemon_threads = True
    threading.Thread(target=web.serve_forever, daemon=True).start()
    echo_server(echo_port)
    ready.set()
    threading.Event().wait()


def echo_server(port):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(512)

    def serve(c):
        with c:
            while True:
                try:
                    d = c.recv(65536)
                except OSError:
                    return
                if not d:
                    return
                c.sendall(d)

    def loop():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(c,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return srv


def recv_until(s, pred):
    buf = b""
    while not pred(buf):
        d = s.recv(65536)
        if not d:
            raise RuntimeError(f"closed early: {buf[:200]!r}")
        buf += d
    return buf


def open_pg(port, tok):
    s = socket.create_connection(("127.0.0.1", port))
    params = b"user\0bench\0database\0app\0\0"
    s.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
    recv_until(s, lambda b: len(b) >= 9)
    pw = tok.encode() + b"\0"
    s.sendall(b"p" + struct.pack("!i", 4 + len(pw)) + pw)
    # until ReadyForQuery ('Z', length 5, status)
    recv_until(s, lambda b: b"Z\0\0\0\x05I" in b or b.startswith(b"E"))
    return s


def open_http(port, tok):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n\r\n".encode())
    b = recv_until(s, lambda b: b.endswith(b"\r\n\r\nok"))
    assert b.startswith(b"HTTP/1.1 200"), b[:100]
    return s


def open_tunnel(port, echo_port, tok):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"CONNECT 127.0.0.1:{echo_port} HTTP/1.1\r\nHost: 127.0.0.1:{echo_port}\r\n"
              f"Proxy-Authorization: Bearer {tok}\r\n\r\n".encode())
    b = recv_until(s, lambda b: b"\r\n\r\n" in b)
    assert b.startswith(b"HTTP/1.1 200"), b[:100]
    s.sendall(b"x")
    recv_until(s, lambda b: b == b"x")
    return s


def admin_post(admport, token, path):
    c = http.client.HTTPConnection("127.0.0.1", admport, timeout=TIMEOUT)
    t_send = time.perf_counter()
    c.request("POST", path, body=b"{}", headers={"Authorization": "Bearer " + token,
                                                  "Content-Type": "application/json"})
    r = c.getresponse()
    body = r.read()
    t_ans = time.perf_counter()
    c.close()
    if r.status != 200:
        raise RuntimeError(f"{path}: {r.status} {body!r}")
    return t_send, t_ans


def watch(socks):
    """Returns (thread, closed_at dict); the thread records each socket's EOF."""
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    closed = {}

    def run():
        end = time.perf_counter() + TIMEOUT
        while len(closed) < len(socks) and time.perf_counter() < end:
            for key, _ in sel.select(timeout=0.5):
                s = key.fileobj
                try:
                    d = s.recv(65536)
                except (ConnectionResetError, BrokenPipeError):
                    d = b""
                except BlockingIOError:
                    continue
                if not d:
                    closed[s] = time.perf_counter()
                    sel.unregister(s)
        sel.close()

    t = threading.Thread(target=run)
    t.start()
    return t, closed


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def main():
    base = tempfile.mkdtemp(prefix="airlock-bench-revoke-")
    os.chmod(base, 0o755)
    pw = pwd.getpwnam("postgres")
    os.chown(base, pw.pw_uid, pw.pw_gid)
    password = "bench-" + os.urandom(6).hex()
    pwfile = os.path.join(base, "pw")
    open(pwfile, "w").write(password + "\n")
    os.chown(pwfile, pw.pw_uid, pw.pw_gid)
    data = os.path.join(base, "data")
    pgport, aport, hport, tport, admport, web_port, echo_port = (free_port() for _ in range(7))
    ready = multiprocessing.Event()
    ups = multiprocessing.Process(target=upstreams, args=(web_port, echo_port, ready),
                                  daemon=True)
    ups.start()
    ready.wait(10)
    procs = []
    try:
        as_pg([f"{PG}/initdb", "-D", data, "-U", "bench", "--pwfile", pwfile,
               "--auth-host", "scram-sha-256", "--auth-local", "trust"])
        with open(os.path.join(data, "postgresql.conf"), "a") as f:
            f.write(f"port = {pgport}\nlisten_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{base}'\nmax_connections = 400\nfsync = off\n")
        # BENCH_REVOKE_PG_NICE=19 runs PostgreSQL at a lower priority, closer to
        # a database on its own host: its backends exiting together (one per
        # ended session) then compete less with the gateway and this client.
        nice = ["nice", "-n", os.environ["BENCH_REVOKE_PG_NICE"]] \
            if os.environ.get("BENCH_REVOKE_PG_NICE") else []
        as_pg(nice + [f"{PG}/pg_ctl", "-D", data, "-w", "-l", os.path.join(base, "pg.log"),
                      "start"])
        as_pg(["psql", "-h", base, "-p", str(pgport), "-U", "bench", "-d", "postgres", "-qc",
               "CREATE DATABASE app"])
        adir = os.path.join(base, "airlock")
        os.makedirs(adir)
        cfg = os.path.join(adir, "airlock.yaml")
        open(cfg, "w").write(f"""
server: {{ admin_listen: 127.0.0.1:{admport}, data_dir: {adir}/var, workers: {os.environ.get("BENCH_REVOKE_WORKERS", "2")} }}
dev_issuer: true
dev_token_max_ttl: 24h
targets:
  - name: app
    protocol: postgres
    listen: 127.0.0.1:{aport}
    tls: off
    max_connections: 1000
    upstream: {{ host: 127.0.0.1, port: {pgport}, database: app, user: bench, password_env: BENCH_PG_PW }}
  - name: web
    protocol: http
    listen: 127.0.0.1:{hport}
    tls: off
    max_connections: 1000
    upstream: {{ url: "http://127.0.0.1:{web_port}" }}
  - name: tun
    protocol: tcp
    listen: 127.0.0.1:{tport}
    tls: off
    max_connections: 1000
    upstreams: ["127.0.0.1:{echo_port}"]
agents:
  - {{ name: bench, issuer: airlock-dev, subject: bench, owner: bench@example.com }}
policies:
  - {{ name: all, who: [bench], targets: [app], when: {{ sql: [read] }}, action: allow, audit: async }}
  - {{ name: web, who: [bench], targets: [web], when: {{ methods: [GET] }}, action: allow, audit: async }}
  - {{ name: tun, who: [bench], targets: [tun], when: {{ methods: [CONNECT] }}, action: allow }}
""")
        env = dict(os.environ, BENCH_PG_PW=password)
        alog = open(os.path.join(adir, "airlock.log"), "w")
        ap = subprocess.Popen([BIN, "serve", "-c", cfg], env=env, stdout=alog, stderr=alog)
        procs.append(ap)
        for p in (aport, hport, tport, admport):
            wait_port(p)
        token = subprocess.run([BIN, "token", "mint", "-c", cfg, "--agent", "bench", "--ttl",
                                "12h"], check=True, capture_output=True, text=True).stdout.strip()
        admin = open(os.path.join(adir, "var", "admin-token")).read().strip()
        mix = os.environ.get("BENCH_REVOKE_MIX", "postgres,http,tunnel").split(",")
        share = [SESSIONS // len(mix) + (i < SESSIONS % len(mix)) for i in range(len(mix))]
        n_pg = share[mix.index("postgres")] if "postgres" in mix else 0
        n_http = share[mix.index("http")] if "http" in mix else 0
        n_tun = share[mix.index("tunnel")] if "tunnel" in mix else 0
        print(f"{SESSIONS} sessions per run: {n_pg} postgres, {n_http} http keep-alive, "
              f"{n_tun} CONNECT tunnels; {RUNS} runs", flush=True)
        after_ans, after_send, missed = [], [], 0
        for run in range(RUNS):
            socks = [open_pg(aport, token) for _ in range(n_pg)]
            socks += [open_http(hport, token) for _ in range(n_http)]
            socks += [open_tunnel(tport, echo_port, token) for _ in range(n_tun)]
            t, closed = watch(socks)
            t_send, t_ans = admin_post(admport, admin, "/v1/agents/bench/disable")
            t.join()
            if len(closed) < len(socks):
                missed += len(socks) - len(closed)
            else:
                last = max(closed.values())
                after_ans.append((last - t_ans) * 1000)
                after_send.append((last - t_send) * 1000)
            for s in socks:
                s.close()
            admin_post(admport, admin, "/v1/agents/bench/enable")
        if missed:
            print(f"{missed} session(s) were not closed within {TIMEOUT:.0f}s "
                  "(a gateway not hooked to runtime/sessions.h?)")
        if after_ans:
            for name, v in (("after_answer", after_ans), ("after_send", after_send)):
                print(f"{name:13} ms: p50 {pct(v, 50):7.2f}  p99 {pct(v, 99):7.2f}  "
                      f"max {max(v):7.2f}  mean {statistics.mean(v):7.2f}  (n={len(v)})")
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.returncode:
                print(f"airlock exited {p.returncode}; the end of its log:")
                print(open(os.path.join(base, "airlock", "airlock.log")).read()[-4000:])
        ups.terminate()
        subprocess.run(["runuser", "-u", "postgres", "--", f"{PG}/pg_ctl", "-D", data, "-m",
                        "fast", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
