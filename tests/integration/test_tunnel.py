"""CONNECT tunnels (protocol: tcp): a real PostgreSQL session through the
tunnel, an echo upstream for bytes and timing, and raw sockets for what a
polite client would never send."""
import json
import os
import signal
import socket
import ssl
import threading
import time

import psycopg
import pytest

from conftest import ROOT, free_port, free_ports, run

CFG = """
server:
  admin_listen: {admin}
  data_dir: {data}
  workers: 2
  drain_timeout: 3s
dev_issuer: true
targets:
  - name: db
    protocol: tcp
    listen: 127.0.0.1:{port}
    tls: off
    auth_timeout: 3s
    upstreams: ["127.0.0.1:{pgport}", "localhost:{echoport}", "127.0.0.1:{deadport}",
                "127.0.0.1:{blockport}", "127.0.0.1:{hangport}"]
    upstream: { connect_timeout: 1s }
  - name: db-grace
    protocol: tcp
    listen: 127.0.0.1:{graceport}
    tls: off
    session_grace: 3s
    upstreams: ["localhost:{echoport}"]
{extra_targets}
agents:
{agents}
policies:
  - { name: tunnels, who: ["group:bots"], targets: [db, db-grace], when: { methods: [CONNECT] }, action: allow }
  - name: blocked
    who: ["*"]
    targets: [db]
    when: { hosts: ["127.0.0.1:{blockport}"] }
    action: deny
    message: not this one
"""

AGENTS = """  - { name: bot, issuer: airlock-dev, subject: bot, owner: o@example.com, groups: [bots] }
  - { name: other, issuer: airlock-dev, subject: other, owner: o@example.com }
"""


class Echo:
    """Echoes every byte; on EOF from the client, half-closes back."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self.stopped = True
        self.sock.close()


class Hang:
    """A listener whose accept queue is full and never drained: the kernel
    drops further SYNs, so a connect to it hangs (for the 504 case)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        for _ in range(4):
            f = socket.socket()
            f.setblocking(False)
            try:
                f.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self.fillers.append(f)
        time.sleep(0.2)

    def stop(self):
        for f in self.fillers:
            f.close()
        self.sock.close()


@pytest.fixture
def echo():
    e = Echo()
    yield e
    e.stop()


@pytest.fixture
def hang():
    h = Hang()
    yield h
    h.stop()


def cfg_text(ports, agents=AGENTS, extra_targets=""):
    t = CFG.replace("{agents}", agents).replace("{extra_targets}", extra_targets)
    for k, v in ports.items():
        t = t.replace("{" + k + "}", str(v))
    return t


@pytest.fixture
def gw(gateway, pg, echo, hang):
    port, grace, dead, block = free_ports(4, avoid=(pg.port, echo.port, hang.port))
    ports = {"port": port, "graceport": grace, "pgport": pg.port,
             "echoport": echo.port, "deadport": dead, "blockport": block,
             "hangport": hang.port}
    g = gateway(cfg_text(ports))
    g.ports = ports
    g.port = ports["port"]
    g.pg = pg
    return g


def token(g, agent="bot", *extra):
    r = run(["token", "mint", "-c", g.cfg, "--agent", agent, *extra])
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def read_head(s):
    """Reads up to the end of an HTTP head; returns (status, head, rest)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0
    return status, head.decode(errors="replace"), rest


def read_all(s):
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        out += chunk
    return out


def connect(g, authority, tok=None, extra=b"", headers="", port=None):
    s = socket.create_connection(("127.0.0.1", port or g.port), timeout=15)
    auth = f"Proxy-Authorization: Bearer {tok}\r\n" if tok else ""
    s.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{auth}{headers}\r\n"
              .encode() + extra)
    status, head, rest = read_head(s)
    return s, status, head, rest


def refusal(g, data):
    """Sends raw bytes; returns (status, head, json body) of the answer."""
    s = socket.create_connection(("127.0.0.1", g.port), timeout=15)
    s.sendall(data)
    out = read_all(s)
    s.close()
    head, _, body = out.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, head.decode(), json.loads(body) if body else None


def audit(g, *args):
    time.sleep(0.3)
    r = run(["audit", "query", "-c", g.cfg, "--json", *args])
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def wait_for(pred, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    return pred()


class Forwarder:
    """What a tunnel-unaware client (psycopg) connects to: each connection
    asks airlock for a CONNECT tunnel, then splices bytes both ways."""

    def __init__(self, g, authority, tok):
        self.g, self.authority, self.tok = g, authority, tok
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.statuses = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _serve(self, c):
        u, status, _, rest = connect(self.g, self.authority, self.tok)
        u.settimeout(None)
        self.statuses.append(status)
        if status != 200:
            c.close()
            u.close()
            return
        if rest:
            c.sendall(rest)
        t = threading.Thread(target=self._pipe, args=(u, c), daemon=True)
        t.start()
        self._pipe(c, u)
        t.join(30)
        c.close()
        u.close()

    def stop(self):
        self.sock.close()


def pg_connect(fwd, pg, **kw):
    return psycopg.connect(host="127.0.0.1", port=fwd.port, user="airlock_up",
                           password=pg.password, dbname="app", connect_timeout=10, **kw)


# ---- a real PostgreSQL session ----------------------------------------------------------


@pytest.mark.parametrize("sslmode", ["disable", "require"])
def test_postgres_session_through_the_tunnel(gw, sslmode):
    fwd = Forwarder(gw, f"127.0.0.1:{gw.pg.port}", token(gw))
    try:
        with pg_connect(fwd, gw.pg, sslmode=sslmode) as c:
            cur = c.cursor()
            cur.execute("CREATE TEMP TABLE t (id int, v text)")
            cur.executemany("INSERT INTO t VALUES (%s, %s)", [(i, "x" * i) for i in range(200)])
            cur.execute("SELECT count(*), sum(length(v)) FROM t")
            assert cur.fetchone() == (200, sum(range(200)))
            # several MiB down the tunnel
            cur.execute("SELECT string_agg(md5(g::text), '') FROM generate_series(1, 100000) g")
            assert len(cur.fetchone()[0]) == 32 * 100000
            cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            assert cur.fetchone()[0] == (sslmode == "require")
        assert fwd.statuses == [200]
    finally:
        fwd.stop()
    # PostgreSQL exits on Terminate with the client's TLS close_notify still
    # unread, so its kernel may answer with a reset, which can reach the
    # tunnel before the client's FIN: an upstream_error "reset" ending.
    res = wait_for(lambda: [e for e in audit(gw, "--target", "db", "--kind", "result")
                            if e["reason"] in ("client_closed", "upstream_closed") or
                            (e["reason"] == "upstream_error" and "reset" in (e["error"] or ""))])
    assert res, [(e["kind"], e["decision"], e["reason"], e["error"])
                 for e in audit(gw, "--target", "db")]
    assert res[0]["bytes_down"] > 32 * 100000 and res[0]["bytes_up"] > 0
    assert res[0]["protocol"] == "tcp"
    assert res[0]["decision"] == ("ok" if res[0]["reason"] != "upstream_error" else "error")


# ---- refusals ------------------------------------------------------------------------------


def test_bad_tokens_are_407(gw):
    auth = f"127.0.0.1:{gw.pg.port}"
    good = token(gw)
    h, p, sig = good.split(".")
    forged = f"{h}.{p}.{sig[:-4]}AAAA"
    cases = [
        (f"Proxy-Authorization: Bearer not-a-jwt\r\n", "malformed"),
        (f"Proxy-Authorization: Bearer {forged}\r\n", "bad_signature"),
        ("Proxy-Authorization: Bearer\r\n", "malformed"),
        (f"Proxy-Authorization: Bearer {good} junk\r\n", "malformed"),
        (f"Proxy-Authorization: Bearer {good}\r\nProxy-Authorization: Bearer {good}\r\n",
         "duplicate_authorization"),
    ]
    for hdrs, reason in cases:
        st, head, body = refusal(gw, f"CONNECT {auth} HTTP/1.1\r\nHost: {auth}\r\n{hdrs}\r\n"
                                 .encode())
        assert st == 407, (hdrs, head)
        assert head.startswith("HTTP/1.1 407 Proxy Authentication Required\r\n")
        want = f'Proxy-Authenticate: Bearer error="invalid_token", error_description="{reason}"'
        assert want in head, head
        assert body["reason"] == reason
    evs = audit(gw, "--target", "db", "--kind", "auth")
    assert {"malformed", "bad_signature", "duplicate_authorization"} <= {e["reason"] for e in evs}
    assert good not in json.dumps(evs)


def test_missing_proxy_authorization_is_407(gw):
    auth = f"127.0.0.1:{gw.pg.port}"
    tok = token(gw)
    for hdrs in ["", "Proxy-Authorization: Basic Ym90OnB3\r\n",
                 f"Authorization: Bearer {tok}\r\n"]:  # the origin's field is not the proxy's
        st, head, body = refusal(gw, f"CONNECT {auth} HTTP/1.1\r\nHost: {auth}\r\n{hdrs}\r\n"
                                 .encode())
        assert st == 407, head
        assert 'Proxy-Authenticate: Bearer error="invalid_token", ' \
               'error_description="missing_token"' in head
        assert body == {"error": "unauthorized", "reason": "missing_token",
                        "detail": "send 'Proxy-Authorization: Bearer <token>'"}
    assert [e for e in audit(gw, "--target", "db", "--kind", "auth")
            if e["reason"] == "missing_token" and e["status"] == "407"]


def test_host_port_not_listed_is_403(gw, echo):
    tok = token(gw)
    for auth in ["127.0.0.1:1", f"127.0.0.1:{echo.port}",  # listed as localhost: no resolving
                 f"[::1]:{echo.port}", f"localhost.:{echo.port}", f"localhost:{gw.pg.port}",
                 f"127.0.0.2:{gw.pg.port}"]:
        s, st, head, rest = connect(gw, auth, tok)
        body = json.loads(rest + read_all(s))
        s.close()
        assert st == 403, (auth, head)
        assert body["error"] == "denied" and body["rule"] is None
        assert body["reason"] == "connect_target_not_allowed" and auth in body["message"]
    # a name matches case-insensitively (RFC 3986 §6.2.2.1)
    s, st, _, _ = connect(gw, f"LocalHost:{echo.port}", tok)
    s.close()
    assert st == 200
    evs = audit(gw, "--target", "db", "--kind", "decision")
    deny = [e for e in evs if e["reason"] == "connect_target_not_allowed"]
    assert deny and deny[-1]["action"] == "CONNECT 127.0.0.1:1" and deny[-1]["agent"] == "bot"


def test_policy_deny_and_no_rule_are_403(gw, echo):
    s, st, _, rest = connect(gw, f"127.0.0.1:{gw.ports['blockport']}", token(gw))
    body = json.loads(rest + read_all(s))
    s.close()
    assert st == 403
    assert body == {"error": "denied", "rule": "blocked", "message": "not this one",
                    "reason": "denied_by_rule"}
    s, st, _, rest = connect(gw, f"localhost:{echo.port}", token(gw, "other"))
    body = json.loads(rest + read_all(s))
    s.close()
    assert st == 403 and body["rule"] is None and body["reason"] == "no_matching_rule"
    evs = audit(gw, "--target", "db", "--kind", "decision", "--decision", "deny")
    assert {"denied_by_rule", "no_matching_rule"} <= {e["reason"] for e in evs}


def test_non_connect_methods_are_405(gw):
    tok = token(gw)
    for req in [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                b"POST /q?secret=1 HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Bearer " +
                tok.encode() + b"\r\nContent-Length: 3\r\n\r\nabc",
                b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n"]:
        st, head, body = refusal(gw, req)
        assert st == 405, head
        assert "\r\nAllow: CONNECT" in head
        assert body["error"] == "method_not_allowed"
    evs = audit(gw, "--target", "db", "--kind", "decision")
    assert [e for e in evs if e["reason"] == "method_not_allowed" and e["action"] == "POST /q"]


def test_malformed_heads_are_400(gw):
    cases = [(b"CONNECT 127.0.0.1 HTTP/1.1\r\nHost: x\r\n\r\n", "bad_target"),  # no port
             (b"CONNECT a:1 HTTP/1.1\nHost: x\r\n\r\n", "bare_lf"),
             (b"CONNECT a:1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab",
              "connect_with_body"),
             (b"CONNECT a:1 HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
              "head_too_large")]
    for req, reason in cases:
        st, _, body = refusal(gw, req)
        assert st == 400 and body == {"error": "bad_request", "reason": reason}


def test_upstream_down_is_502(gw):
    auth = f"127.0.0.1:{gw.ports['deadport']}"
    s, st, _, rest = connect(gw, auth, token(gw))
    body = json.loads(rest + read_all(s))
    s.close()
    assert st == 502 and body["error"] == "bad_gateway"
    res = wait_for(lambda: [e for e in audit(gw, "--target", "db", "--kind", "result")
                            if e["status"] == "502"])
    assert res[0]["reason"] == "upstream_unreachable" and res[0]["action"] == f"CONNECT {auth}"


def test_upstream_connect_timeout_is_504(gw):
    t0 = time.time()
    s, st, _, rest = connect(gw, f"127.0.0.1:{gw.ports['hangport']}", token(gw))
    body = json.loads(rest + read_all(s))
    s.close()
    assert st == 504 and body["error"] == "gateway_timeout", body
    assert 0.8 < time.time() - t0 < 10
    res = wait_for(lambda: [e for e in audit(gw, "--target", "db", "--kind", "result")
                            if e["status"] == "504"])
    assert res[0]["reason"] == "upstream_connect_timeout"


def test_slow_head_is_closed_after_auth_timeout(gw):
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=15)
    s.sendall(b"CONNECT a:1 HTTP/1.1\r\n")
    t0 = time.time()
    assert read_all(s) == b""
    assert 2 < time.time() - t0 < 10
    s.close()


# ---- the tunnel ----------------------------------------------------------------------------


def test_pipelined_bytes_after_the_head_are_forwarded(gw, echo):
    tok = token(gw)
    s, st, _, rest = connect(gw, f"localhost:{echo.port}", tok, extra=b"hello, pipelined")
    assert st == 200
    got = rest
    while len(got) < 16:
        got += s.recv(100)
    assert got == b"hello, pipelined"
    s.sendall(b"more")
    assert s.recv(100) == b"more"
    s.close()


def test_audit_has_bytes_and_duration(gw, echo):
    s, st, head, rest = connect(gw, f"localhost:{echo.port}", token(gw))
    assert st == 200 and head == "HTTP/1.1 200 Connection established"
    up = os.urandom(300000)
    s.sendall(up)
    got = rest
    while len(got) < len(up):
        got += s.recv(65536)
    assert got == up
    time.sleep(0.5)
    s.shutdown(socket.SHUT_WR)  # half-close: the echo answers with EOF
    assert read_all(s) == b""
    s.close()

    def result():
        evs = audit(gw, "--target", "db")
        return [e for e in evs if e["kind"] == "result" and e["bytes_up"] == len(up)]
    res = wait_for(result)
    assert res, [(e["kind"], e["decision"], e["reason"], e["error"])
                 for e in audit(gw, "--target", "db")]
    r = res[0]
    assert r["bytes_down"] == len(up) and r["decision"] == "ok"
    assert r["reason"] == "client_closed" and r["status"] == "200"
    assert r["duration_ms"] >= 500
    dec = [e for e in audit(gw, "--target", "db", "--kind", "decision")
           if e["id"] == r["ref_id"]]
    assert dec and dec[0]["action"] == f"CONNECT localhost:{echo.port}"
    assert dec[0]["decision"] == "allow" and dec[0]["rule"] == "tunnels"
    assert dec[0]["agent"] == "bot" and dec[0]["protocol"] == "tcp"


def test_large_transfer_with_a_slow_reader(gw, echo):
    """Backpressure: 16 MiB each way, the client reading slowly at first."""
    s, st, _, rest = connect(gw, f"localhost:{echo.port}", token(gw))
    assert st == 200
    data = os.urandom(16 * 1024 * 1024)
    sender = threading.Thread(target=s.sendall, args=(data,), daemon=True)
    sender.start()
    time.sleep(1.5)  # nothing read: queues fill, readers must pause
    got = bytearray(rest)
    while len(got) < len(data):
        chunk = s.recv(1 << 20)
        assert chunk
        got += chunk
    sender.join(10)
    assert bytes(got) == data
    s.close()


def test_upstream_close_half_closes_the_client(gw, echo):
    s, st, _, _ = connect(gw, f"localhost:{echo.port}", token(gw))
    assert st == 200
    s.sendall(b"last words")
    s.shutdown(socket.SHUT_WR)
    assert read_all(s) == b"last words"
    s.close()


def test_token_expiry_closes_the_tunnel(gw, echo):
    tok = token(gw, "bot", "--ttl", "3s")
    s, st, _, _ = connect(gw, f"localhost:{echo.port}", tok)
    assert st == 200
    s.sendall(b"ping")
    assert s.recv(10) == b"ping"
    t0 = time.time()
    s.settimeout(15)
    assert read_all(s) == b""  # closed by airlock, not by us
    assert time.time() - t0 < 8
    s.close()
    res = wait_for(lambda: [e for e in audit(gw, "--target", "db", "--kind", "result")
                            if e["reason"] == "token_expired"])
    assert res and res[0]["decision"] == "terminated" and res[0]["bytes_up"] == 4


def test_session_grace_outlives_the_token(gw, echo):
    tok = token(gw, "bot", "--ttl", "2s")
    s, st, _, _ = connect(gw, f"localhost:{echo.port}", tok, port=gw.ports["graceport"])
    assert st == 200
    t0 = time.time()
    time.sleep(3.0)  # past exp, within exp + session_grace (3s)
    s.sendall(b"still here")
    assert s.recv(20) == b"still here"
    s.settimeout(15)
    assert read_all(s) == b""
    assert 3.5 < time.time() - t0 < 10
    s.close()
    res = wait_for(lambda: [e for e in audit(gw, "--target", "db-grace", "--kind", "result")
                            if e["reason"] == "token_expired"])
    assert res


def test_reload_without_the_agent_closes_the_tunnel(gw, echo):
    s, st, _, _ = connect(gw, f"localhost:{echo.port}", token(gw))
    assert st == 200
    with open(gw.cfg) as f:
        text = f.read()
    with open(gw.cfg, "w") as f:
        f.write(text.replace(
            "  - { name: bot, issuer: airlock-dev, subject: bot, owner: o@example.com, "
            "groups: [bots] }\n", ""))
    gw.signal(signal.SIGHUP)
    s.settimeout(20)
    t0 = time.time()
    assert read_all(s) == b""
    assert time.time() - t0 < 15
    s.close()
    res = wait_for(lambda: [e for e in audit(gw, "--target", "db", "--kind", "result")
                            if e["reason"] == "unknown_agent"])
    assert res and res[0]["decision"] == "terminated"


def test_drain_keeps_tunnels_until_drain_timeout(gw, echo):
    s, st, _, _ = connect(gw, f"localhost:{echo.port}", token(gw))
    assert st == 200
    t0 = time.time()
    gw.signal(signal.SIGTERM)
    time.sleep(0.5)
    s.sendall(b"during drain")  # an open tunnel goes on while draining
    assert s.recv(20) == b"during drain"
    s.settimeout(20)
    assert read_all(s) == b""
    assert 2 < time.time() - t0 < 15  # drain_timeout: 3s
    assert gw.proc.wait(20) == 0
    res = [e for e in audit(gw, "--target", "db", "--kind", "result") if e["reason"] == "drain"]
    assert res and res[0]["decision"] == "terminated" and res[0]["bytes_up"] == 12


def test_max_connections(gateway, echo):
    port = free_port()
    g = gateway(f"""
server: {{ admin_listen: "{{admin}}", data_dir: "{{data}}", workers: 1 }}
dev_issuer: true
targets:
  - {{ name: one, protocol: tcp, listen: "127.0.0.1:{port}", tls: off, max_connections: 1,
      upstreams: ["localhost:{echo.port}"] }}
agents:
  - {{ name: bot, issuer: airlock-dev, subject: bot, owner: o@example.com }}
policies:
  - {{ name: t, who: [bot], targets: [one], action: allow }}
""")
    g.port = port
    s, st, _, _ = connect(g, f"localhost:{echo.port}", token(g))
    assert st == 200
    st2, _, body = refusal(g, b"CONNECT x:1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert st2 == 503 and body["error"] == "too_many_connections"
    s.close()
    time.sleep(0.5)
    s, st, _, _ = connect(g, f"localhost:{echo.port}", token(g))
    assert st == 200
    s.close()


def test_tls_listener(gateway, echo, tmp_path):
    tls = os.path.join(ROOT, "tests", "data", "tls")
    port = free_port()
    g = gateway(f"""
server: {{ admin_listen: "{{admin}}", data_dir: "{{data}}", workers: 1 }}
dev_issuer: true
targets:
  - name: sec
    protocol: tcp
    listen: 127.0.0.1:{port}
    tls: required
    tls_cert_file: {tls}/server.pem
    tls_key_file: {tls}/server.key
    upstreams: ["localhost:{echo.port}"]
agents:
  - {{ name: bot, issuer: airlock-dev, subject: bot, owner: o@example.com }}
policies:
  - {{ name: t, who: [bot], targets: [sec], action: allow }}
""")
    ctx = ssl.create_default_context(cafile=os.path.join(tls, "ca.pem"))
    raw = socket.create_connection(("127.0.0.1", port), timeout=15)
    s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    tok = token(g)
    s.sendall(f"CONNECT localhost:{echo.port} HTTP/1.1\r\nHost: x\r\n"
              f"Proxy-Authorization: Bearer {tok}\r\n\r\nearly".encode())
    st, _, rest = read_head(s)
    assert st == 200
    while len(rest) < 5:
        rest += s.recv(10)
    assert rest == b"early"
    s.sendall(b"x" * 100000)
    got = b""
    while len(got) < 100000:
        got += s.recv(65536)
    assert got == b"x" * 100000
    s.close()
    # plaintext to a TLS listener gets nothing
    p = socket.create_connection(("127.0.0.1", port), timeout=15)
    p.sendall(f"CONNECT localhost:{echo.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert not read_all(p).startswith(b"HTTP/1.1 ")
    p.close()


# ---- config --------------------------------------------------------------------------------


def test_config_errors_are_precise(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("""dev_issuer: true
targets:
  - name: a
    protocol: tcp
    listen: 127.0.0.1:9
    tls: off
  - name: b
    protocol: tcp
    listen: 127.0.0.1:10
    tls: optional
    upstreams: ["db:5432", "db:0", "[::1", "DB:5432"]
    upstream: { host: db, connect_timeout: 2s }
  - name: c
    protocol: http
    upstreams: ["x:1"]
    upstream: { url: "http://127.0.0.1:1" }
  - name: d
    protocol: tcp
    upstreams: []
""")
    r = run(["check", "-c", str(p)])
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert f"{p}:5:5: targets[0]: a tcp target with 'listen' needs 'upstreams: [host:port, " \
           "...]'" in out
    assert f"{p}:10:10: targets[1]: a tcp listener takes 'tls: required' or 'tls: off'" in out
    assert f"{p}:11:28: targets[1].upstreams[1] has an invalid port" in out
    assert f"{p}:11:36: targets[1].upstreams[2] has an unclosed '['" in out
    assert f"{p}:11:44: targets[1].upstreams[3]: duplicate entry 'DB:5432'" in out
    assert f"{p}:12:17: targets[1].upstream.host does not apply to a tcp target; list the " \
           "addresses a CONNECT may reach in 'upstreams: [host:port, ...]'" in out
    assert "upstream.connect_timeout does not apply" not in out
    assert f"{p}:15:5: targets[2].upstreams applies to tcp targets only; this target's " \
           "protocol is http" in out
    assert f"{p}:19:16: targets[3].upstreams must be a non-empty list" in out


def test_config_ok_and_connect_timeout_default(tmp_path):
    p = tmp_path / "ok.yaml"
    p.write_text("""dev_issuer: true
targets:
  - { name: a, protocol: tcp, listen: "127.0.0.1:9", tls: off, upstreams: ["db.internal:5432", "[::1]:22"] }
""")
    r = run(["check", "-c", str(p)])
    assert r.returncode == 0, r.stdout + r.stderr
