"""The HTTP gateway: a real Python upstream on loopback, driven with http.client
and raw sockets (for what a polite client library would never send)."""
import hashlib
import http.client
import http.server
import json
import socket
import threading
import time

import pytest

from conftest import free_port, jwks_doc, Issuer, make_key, mint, run, std_claims

CFG = """
server:
  admin_listen: {admin}
  data_dir: {data}
  workers: 2
  drain_timeout: 5s
dev_issuer: true
issuers:
  - { name: t, issuer: "https://issuer.test", audience: api://airlock, jwks_file: "{jwks}", clock_skew: 0s }
targets:
  - name: api
    protocol: http
    listen: 127.0.0.1:{port}
    tls: off
    http: { header_timeout: 3s, idle_timeout: 4s }
    upstream:
      url: http://127.0.0.1:{upport}/base
      headers:
        X-Api-Key: { env: AIRLOCK_TEST_API_KEY }
agents:
  - { name: bot, issuer: airlock-dev, subject: bot, owner: o@example.com, groups: [bots] }
  - { name: ro, issuer: airlock-dev, subject: ro, owner: o@example.com }
  - { name: ext, issuer: t, subject: agent-1, owner: o@example.com }
policies:
  - { name: reads, who: ["*"], targets: [api], when: { methods: [GET, HEAD] }, action: allow }
  - name: bot-writes
    who: [bot]
    targets: [api]
    when: { methods: [POST], paths: ["/v1/**"] }
    action: allow
  - { name: bot-puts, who: [bot], targets: [api], when: { methods: [PUT], paths: ["/v1/**"] }, action: allow, audit: async }
  - name: no-admin
    who: ["*"]
    targets: [api]
    when: { paths: ["/admin/**"] }
    action: deny
    message: admin is off limits
  - { name: no-evil-host, who: ["*"], targets: [api], when: { hosts: [evil.example] }, action: deny }
  - { name: deletes, who: ["*"], targets: [api], when: { methods: [DELETE] }, action: approve, approvers: [admins], mode: retry }
"""

API_KEY = "upstream-secret-123"
BIG = 20 * 1024 * 1024


class Upstream:
    """Echoes method, path, headers and body (sha256 + text) as JSON.
    /big streams BIG bytes; /close-delimited ends its body by closing."""

    def __init__(self):
        self.port = free_port()
        up = self
        self.requests = []

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _body(self):
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b""):
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.read(2)
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _handle(self):
                body = self._body()
                up.requests.append(self.path)
                if self.path.endswith("/big"):
                    self.send_response(200)
                    self.send_header("Content-Length", str(BIG))
                    self.end_headers()
                    block = b"x" * 65536
                    for _ in range(BIG // len(block)):
                        self.wfile.write(block)
                    return
                if self.path.endswith("/close-delimited"):
                    self.send_response(200)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(b"until-eof" * 1000)
                    self.close_connection = True
                    return
                doc = {"method": self.command, "path": self.path,
                       "headers": [[k, v] for k, v in self.headers.items()],
                       "body_len": len(body), "body_sha": hashlib.sha256(body).hexdigest(),
                       "body": body[:200].decode(errors="replace")}
                data = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "keep-alive, X-Hop")
                self.send_header("X-Hop", "must-not-reach-client")
                self.send_header("Keep-Alive", "timeout=5")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream():
    u = Upstream()
    yield u
    u.stop()


def cfg_text(tmp_path, port, upport):
    jw = tmp_path / "jwks.json"
    jw.write_text(json.dumps(jwks_doc(make_key("ES256"))))
    return (CFG.replace("{port}", str(port)).replace("{upport}", str(upport))
            .replace("{jwks}", str(jw)))


@pytest.fixture
def gw(gateway, upstream, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRLOCK_TEST_API_KEY", API_KEY)
    port = free_port()
    g = gateway(cfg_text(tmp_path, port, upstream.port))
    g.port = port
    g.upstream = upstream
    return g


def token(g, agent="bot", *extra):
    r = run(["token", "mint", "-c", g.cfg, "--agent", agent, *extra])
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def conn(g):
    return http.client.HTTPConnection("127.0.0.1", g.port, timeout=20)


def req(g, method, path, tok=None, body=None, headers=None, c=None):
    own = c is None
    c = c or conn(g)
    h = dict(headers or {})
    if tok:
        h["Authorization"] = "Bearer " + tok
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    if own:
        c.close()
    return r.status, r, data


def echo(data):
    doc = json.loads(data)
    doc["h"] = {k.lower(): v for k, v in doc["headers"]}
    return doc


def raw(g, data, read_all=True):
    s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
    s.sendall(data)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
            if not read_all and b"\r\n\r\n" in out:
                break
    except socket.timeout:
        pass
    s.close()
    return out


# ---- policy ------------------------------------------------------------------------


def test_allow_forwards_with_base_path_and_query(gw):
    tok = token(gw)
    st, r, data = req(gw, "GET", "/v1/items?limit=5&x=%41", tok)
    assert st == 200, data
    d = echo(data)
    assert d["method"] == "GET" and d["path"] == "/base/v1/items?limit=5&x=%41"


def test_deny_and_approve_by_method_and_path(gw):
    tok_ro, tok_bot = token(gw, "ro"), token(gw, "bot")
    st, _, data = req(gw, "POST", "/v1/items", tok_ro, body=b"{}")
    assert st == 403
    assert json.loads(data) == {"error": "denied", "rule": None, "message": None,
                                "reason": "no_matching_rule"}
    st, _, data = req(gw, "POST", "/v1/items", tok_bot, body=b"{}")
    assert st == 200 and echo(data)["body"] == "{}"
    st, _, data = req(gw, "POST", "/v2/items", tok_bot, body=b"{}")
    assert st == 403 and json.loads(data)["error"] == "denied"
    st, _, data = req(gw, "DELETE", "/v1/items/1", tok_bot)
    assert st == 403
    d = json.loads(data)
    assert d["error"] == "approval_required" and d["rule"] == "deletes" and d["message"]
    st, _, data = req(gw, "GET", "/admin/users", tok_bot)
    assert st == 403
    assert json.loads(data) == {"error": "denied", "rule": "no-admin",
                                "message": "admin is off limits", "reason": "denied_by_rule"}
    assert not [p for p in gw.upstream.requests if "admin" in p]


@pytest.mark.parametrize("path", ["/v1/../admin/x", "/%2e%2e/admin/x", "//admin/x",
                                  "/admin;x/y", "/v1/%2E%2E/admin/", "/admin"])
def test_path_tricks_are_normalized_then_denied(gw, path):
    st, _, data = req(gw, "GET", path, token(gw))
    assert st == 403, (path, data)
    assert json.loads(data)["rule"] == "no-admin"
    assert not [p for p in gw.upstream.requests if "admin" in p]


@pytest.mark.parametrize("path,reason", [("/a%2Fb", "encoded_slash"),
                                         ("/a%00b", "encoded_nul"),
                                         ("/a%3Bb", "encoded_semicolon")])
def test_unnormalizable_paths_are_400(gw, path, reason):
    st, _, data = req(gw, "GET", path, token(gw))
    assert st == 400 and json.loads(data) == {"error": "bad_request", "reason": reason}


def test_policy_sees_the_host(gw):
    tok = token(gw)
    st, _, data = req(gw, "GET", "/v1/x", tok, headers={"Host": "EVIL.example:8080"})
    assert st == 403 and json.loads(data)["rule"] == "no-evil-host"
    assert req(gw, "GET", "/v1/x", tok, headers={"Host": "good.example"})[0] == 200


def test_upstream_sees_the_normalized_path(gw):
    st, _, data = req(gw, "GET", "/v1/./a//b/%7Euser;p", token(gw))
    assert st == 200 and echo(data)["path"] == "/base/v1/a/b/~user"


# ---- identity ---------------------------------------------------------------------------


def test_401s(gw):
    st, r, data = req(gw, "GET", "/v1/items")
    assert st == 401 and r.getheader("WWW-Authenticate") == 'Bearer realm="airlock"'
    st, r, _ = req(gw, "GET", "/v1/items", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert st == 401 and r.getheader("WWW-Authenticate") == 'Bearer realm="airlock"'
    tok = token(gw)
    bad = tok[:-5] + ("A" if tok[-5] != "A" else "B") + tok[-4:]
    st, r, data = req(gw, "GET", "/v1/items", bad)
    assert st == 401
    assert r.getheader("WWW-Authenticate") == \
        'Bearer error="invalid_token", error_description="bad_signature"'
    st, r, _ = req(gw, "GET", "/v1/items", "not-a-token")
    assert st == 401
    assert r.getheader("WWW-Authenticate") == \
        'Bearer error="invalid_token", error_description="malformed"'
    assert not gw.upstream.requests


def test_expired_token_and_recheck_on_keepalive(gw):
    ext = lambda ttl: mint(make_key("ES256"), "ES256", std_claims("https://issuer.test", ttl=ttl))
    st, r, _ = req(gw, "GET", "/v1/a", ext(-5))
    assert st == 401
    assert r.getheader("WWW-Authenticate") == \
        'Bearer error="invalid_token", error_description="expired"'
    tok = ext(2)
    c = conn(gw)
    st, _, _ = req(gw, "GET", "/v1/a", tok, c=c)
    assert st == 200
    time.sleep(2.5)
    st, r, _ = req(gw, "GET", "/v1/a", tok, c=c)
    assert st == 401
    assert r.getheader("WWW-Authenticate") == \
        'Bearer error="invalid_token", error_description="expired"'
    # the connection stays usable with a fresh token
    st, _, _ = req(gw, "GET", "/v1/a", token(gw), c=c)
    assert st == 200
    c.close()


# ---- headers ---------------------------------------------------------------------------


def test_headers_stripped_injected_and_added(gw):
    tok = token(gw)
    st, r, data = req(gw, "GET", "/v1/h", tok, headers={
        "Connection": "keep-alive, X-Secret-Hop", "X-Secret-Hop": "1", "Keep-Alive": "300",
        "Proxy-Authorization": "Basic eA==", "TE": "trailers", "Upgrade-Insecure-Requests": "1",
        "X-Api-Key": "agent-tries-its-own", "Forwarded": "for=6.6.6.6", "X-Custom": "kept",
        "X-Request-Id": "req-abc.123", "X-Forwarded-For": "6.6.6.6"})
    assert st == 200
    h = echo(data)["h"]
    assert "authorization" not in h
    assert h["x-api-key"] == API_KEY
    for gone in ("x-secret-hop", "keep-alive", "proxy-authorization", "te"):
        assert gone not in h, gone
    assert "x-forwarded-for" not in h
    assert h["x-custom"] == "kept" and h["upgrade-insecure-requests"] == "1"
    assert h["x-request-id"] == "req-abc.123"
    assert h["forwarded"] == "for=127.0.0.1;proto=http"
    assert h["host"] == f"127.0.0.1:{gw.upstream.port}"
    # response side: hop-by-hop from the upstream removed, request id echoed
    assert r.getheader("X-Hop") is None and r.getheader("Keep-Alive") is None
    assert r.getheader("X-Request-Id") == "req-abc.123"
    assert API_KEY not in gw.logs()


def test_request_id_created_when_absent(gw):
    st, r, data = req(gw, "GET", "/v1/h", token(gw), headers={"X-Request-Id": "bad id!"})
    rid = echo(data)["h"]["x-request-id"]
    assert len(rid) == 36 and rid.count("-") == 4
    assert r.getheader("X-Request-Id") == rid


# ---- bodies and connections ---------------------------------------------------------------


def test_chunked_request_body(gw):
    tok = token(gw)
    parts = [b"a" * 1000, b"b" * 70000, b"c"]

    def gen():
        yield from parts

    c = conn(gw)
    c.request("POST", "/v1/upload", body=gen(), encode_chunked=True,
              headers={"Authorization": "Bearer " + tok, "Transfer-Encoding": "chunked"})
    r = c.getresponse()
    d = echo(r.read())
    c.close()
    body = b"".join(parts)
    assert r.status == 200
    assert d["h"]["transfer-encoding"] == "chunked"
    assert d["body_len"] == len(body) and d["body_sha"] == hashlib.sha256(body).hexdigest()


def test_large_streamed_response(gw):
    tok = token(gw)
    c = conn(gw)
    c.request("GET", "/v1/big", headers={"Authorization": "Bearer " + tok})
    r = c.getresponse()
    n = 0
    while True:
        b = r.read(1 << 20)
        if not b:
            break
        n += len(b)
    assert r.status == 200 and n == BIG
    # and the connection is still good
    st, _, _ = req(gw, "GET", "/v1/after", tok, c=c)
    assert st == 200
    c.close()


def test_close_delimited_response_is_rechunked(gw):
    tok = token(gw)
    c = conn(gw)
    st, r, data = req(gw, "GET", "/v1/close-delimited", tok, c=c)
    assert st == 200 and data == b"until-eof" * 1000
    assert r.getheader("Transfer-Encoding") == "chunked"
    st, _, _ = req(gw, "GET", "/v1/again", tok, c=c)  # a new upstream connection
    assert st == 200
    c.close()


def test_keepalive_many_requests_one_connection(gw):
    tok = token(gw)
    c = conn(gw)
    for i in range(10):
        st, _, data = req(gw, "GET", f"/v1/n/{i}", tok, c=c)
        assert st == 200 and echo(data)["path"] == f"/base/v1/n/{i}"
    # HEAD: the upstream's Content-Length passes, no body follows
    st, r, data = req(gw, "HEAD", "/v1/head", tok, c=c)
    assert st == 200 and data == b"" and int(r.getheader("Content-Length")) > 0
    # a refused request with a body does not break the connection
    st, _, _ = req(gw, "POST", "/v2/x", tok, body=b"z" * 5000, c=c)
    assert st == 403
    st, _, _ = req(gw, "GET", "/v1/last", tok, c=c)
    assert st == 200
    c.close()


def test_async_audit_body_on_reused_upstream(gw):
    tok = token(gw)
    c = conn(gw)
    assert req(gw, "GET", "/v1/warm", tok, c=c)[0] == 200  # upstream connected
    for n in (10, 100000):
        body = bytes(range(256)) * (n // 256) + b"e" * (n % 256)
        st, _, data = req(gw, "PUT", "/v1/put", tok, body=body, c=c)
        d = echo(data)
        assert st == 200 and d["method"] == "PUT"
        assert d["body_len"] == len(body) and d["body_sha"] == hashlib.sha256(body).hexdigest()
    c.close()


def test_idle_and_slow_heads_are_closed(gw):
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    s.sendall(b"GET /v1/x HTTP/1.1\r\nHost: x\r\n")  # never finished
    t0 = time.time()
    assert s.recv(100) == b""
    assert 2 <= time.time() - t0 < 8
    s.close()
    c = conn(gw)
    assert req(gw, "GET", "/v1/x", token(gw), c=c)[0] == 200
    time.sleep(1.5)  # idle less than idle_timeout: still usable
    assert req(gw, "GET", "/v1/y", token(gw), c=c)[0] == 200
    c.close()
    # idle longer than idle_timeout: the server closed it
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    t0 = time.time()
    assert s.recv(100) == b""
    assert 2 <= time.time() - t0 < 8
    s.close()


def test_pipelined_requests(gw):
    tok = token(gw).encode()
    one = b"GET /v1/p HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + b"\r\n\r\n"
    last = one.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    out = raw(gw, one + one + last)
    assert out.count(b"HTTP/1.1 200 OK") == 3


def test_smuggling_cl_te_is_400(gw):
    tok = token(gw).encode()
    out = raw(gw, b"POST /v1/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok +
              b"\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 ")
    body = out.split(b"\r\n\r\n", 1)[1]
    assert json.loads(body) == {"error": "bad_request", "reason": "cl_and_te"}
    assert not gw.upstream.requests


def test_bare_lf_is_400(gw):
    out = raw(gw, b"GET /v1/x HTTP/1.1\nHost: x\n\n")
    assert out.startswith(b"HTTP/1.1 400 ")
    assert json.loads(out.split(b"\r\n\r\n", 1)[1])["reason"] == "bare_lf"


def test_connect_and_other_upgrades_refused(gw):
    tok = token(gw).encode()
    out = raw(gw, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 501 ")
    assert b"protocol: tcp" in out
    out = raw(gw, b"GET /v1/ws HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok +
              b"\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 501 ")
    out = raw(gw, b"POST /v1/ws HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok +
              b"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 ") and b"bad_upgrade" in out
    assert not gw.upstream.requests


def test_upstream_down_is_502(gateway, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRLOCK_TEST_API_KEY", API_KEY)
    port = free_port()
    g = gateway(cfg_text(tmp_path, port, free_port()))
    g.port = port
    st, _, data = req(g, "GET", "/v1/x", token(g))
    assert st == 502 and json.loads(data)["error"] == "bad_gateway"


def test_bad_upstream_response_is_502(gateway, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRLOCK_TEST_API_KEY", API_KEY)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def serve():
        c, _ = srv.accept()
        c.recv(65536)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx")
        time.sleep(0.5)
        c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    port = free_port()
    g = gateway(cfg_text(tmp_path, port, srv.getsockname()[1]))
    g.port = port
    st, _, data = req(g, "GET", "/v1/x", token(g))
    assert st == 502
    assert "duplicate_content_length" in json.loads(data)["reason"]
    t.join(5)
    srv.close()


# ---- audit ------------------------------------------------------------------------------


def test_audit_events(gw):
    tok = token(gw)
    assert req(gw, "GET", "/v1/items?token=abc123&limit=2", tok)[0] == 200
    assert req(gw, "GET", "/admin/x", tok)[0] == 403
    assert req(gw, "GET", "/v1/items")[0] == 401
    time.sleep(0.5)
    r = run(["audit", "query", "-c", gw.cfg, "--json", "--target", "api"])
    assert r.returncode == 0, r.stderr
    evs = json.loads(r.stdout)
    assert evs and all(e["protocol"] == "http" for e in evs)
    allow = [e for e in evs if e["kind"] == "decision" and e["decision"] == "allow"]
    assert allow[0]["action"] == "GET /v1/items?token=REDACTED&limit=2"
    assert allow[0]["rule"] == "reads" and allow[0]["agent"] == "bot"
    assert "abc123" not in r.stdout
    res = [e for e in evs if e["kind"] == "result"]
    assert res and res[0]["status"] == "200" and res[0]["ref_id"] == allow[0]["id"]
    assert res[0]["duration_ms"] >= 0
    deny = [e for e in evs if e["decision"] == "deny" and e["kind"] == "decision"]
    assert deny[0]["action"] == "GET /admin/x" and deny[0]["rule"] == "no-admin"
    auth = [e for e in evs if e["kind"] == "auth"]
    assert auth and auth[0]["reason"] == "missing_token"


def test_config_errors_are_precise(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("""dev_issuer: true
targets:
  - name: api
    protocol: http
    listen: 127.0.0.1:9
    tls: off
    upstream:
      url: ftp://x
      headers:
        Host: { env: X }
        X-Key: { evn: X }
""")
    r = run(["check", "-c", str(p)])
    assert r.returncode != 0
    assert f"{p}:8:12: targets[0].upstream.url must start with http:// or https://" in r.stderr \
        or f"{p}:8:12: targets[0].upstream.url must start with http:// or https://" in r.stdout
    out = r.stdout + r.stderr
    assert f"{p}:10:9: targets[0].upstream.headers: airlock sets or frames 'Host'" in out
    assert "unknown key 'evn' in targets[0].upstream.headers.X-Key" in out


# ---- TLS on both sides --------------------------------------------------------------------


def make_certs(d):
    """A throwaway CA and a leaf for 127.0.0.1 (openssl CLI)."""
    import subprocess
    sh = lambda *a: subprocess.run(list(a), check=True, capture_output=True, cwd=d)
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
       "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=airlock-test-ca",
       "-days", "1", "-addext", "basicConstraints=critical,CA:TRUE",
       "-addext", "keyUsage=critical,keyCertSign")
    sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    sh("openssl", "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
       "-CAcreateserial", "-out", "leaf.pem", "-days", "1", "-extfile", "ext.cnf")
    return d / "ca.pem", d / "leaf.pem", d / "leaf.key"


def test_tls_listener_and_https_upstream(gateway, monkeypatch, tmp_path):
    import ssl
    monkeypatch.setenv("AIRLOCK_TEST_API_KEY", API_KEY)
    ca, cert, key = make_certs(tmp_path)
    up = Upstream()
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(cert, key)
    up.server.socket = sctx.wrap_socket(up.server.socket, server_side=True)
    try:
        port = free_port()
        text = cfg_text(tmp_path, port, up.port).replace(
            "    tls: off\n", f"    tls: required\n    tls_cert_file: {cert}\n"
                             f"    tls_key_file: {key}\n").replace(
            "url: http://", f"ca_file: {ca}\n      url: https://")
        g = gateway(text)
        cctx = ssl.create_default_context(cafile=str(ca))
        c = http.client.HTTPSConnection("127.0.0.1", port, context=cctx, timeout=20)
        tok = token(g)
        for i in range(3):
            c.request("POST", f"/v1/t/{i}", body=b"q" * 100000,
                      headers={"Authorization": "Bearer " + tok})
            r = c.getresponse()
            d = echo(r.read())
            assert r.status == 200 and d["body_len"] == 100000
            assert d["path"] == f"/base/v1/t/{i}"
            assert d["h"]["forwarded"] == "for=127.0.0.1;proto=https"
            assert d["h"]["x-api-key"] == API_KEY
        c.close()
    finally:
        up.stop()


def test_https_upstream_with_wrong_ca_is_502(gateway, monkeypatch, tmp_path):
    import ssl
    monkeypatch.setenv("AIRLOCK_TEST_API_KEY", API_KEY)
    ca, cert, key = make_certs(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    other_ca, _, _ = make_certs(other)
    up = Upstream()
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(cert, key)
    up.server.socket = sctx.wrap_socket(up.server.socket, server_side=True)
    try:
        port = free_port()
        g = gateway(cfg_text(tmp_path, port, up.port).replace(
            "url: http://", f"ca_file: {other_ca}\n      url: https://"))
        g.port = port
        st, _, data = req(g, "GET", "/v1/x", token(g))
        assert st == 502, data
        assert "certificate" in json.loads(data)["reason"]
        assert not up.requests
    finally:
        up.stop()


def test_rotated_key_waits_for_the_jwks_refetch(gateway, upstream, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRLOCK_TEST_API_KEY", API_KEY)
    idp = Issuer()
    try:
        k1 = make_key("ES256", kid="k1", fresh=True)
        idp.keys = [k1]
        port = free_port()
        g = gateway(cfg_text(tmp_path, port, upstream.port).replace(
            "issuers:\n", f"issuers:\n  - {{ name: idp, issuer: {idp.url}, audience: api://airlock }}\n")
            .replace("agents:\n", "agents:\n  - { name: rot, issuer: idp, subject: agent-1, owner: o@example.com }\n"))
        g.port = port
        deadline = time.time() + 10
        while idp.hits["jwks"] == 0 and time.time() < deadline:
            time.sleep(0.05)
        c = conn(g)
        assert req(g, "GET", "/v1/a", mint(k1, "ES256", std_claims(idp.url)), c=c)[0] == 200
        k2 = make_key("ES256", kid="k2", fresh=True)
        idp.keys = [k1, k2]
        before = idp.hits["jwks"]
        st, _, data = req(g, "GET", "/v1/b", mint(k2, "ES256", std_claims(idp.url)), c=c)
        assert st == 200, data
        assert idp.hits["jwks"] == before + 1
        stranger = make_key("ES256", kid="nope", fresh=True)
        st, r, _ = req(g, "GET", "/v1/c", mint(stranger, "ES256", std_claims(idp.url)), c=c)
        assert st == 401 and "unknown_kid" in r.getheader("WWW-Authenticate")
        c.close()
    finally:
        idp.stop()
