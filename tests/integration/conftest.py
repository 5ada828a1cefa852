"""Shared fixtures: the airlock binary, configs, a real OIDC issuer, a gateway.

Tokens are minted by jwcrypto (an implementation independent of airlock);
the issuer serves discovery and JWKS over real HTTP on loopback.
"""
import http.server
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import pytest
from jwcrypto import jwk, jwt

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("AIRLOCK_BIN", os.path.join(ROOT, "build", "airlock"))

ALGS = {
    "RS256": ("RSA", 2048), "RS384": ("RSA", 2048), "RS512": ("RSA", 2048),
    "PS256": ("RSA", 2048), "PS384": ("RSA", 2048), "PS512": ("RSA", 2048),
    "ES256": ("EC", "P-256"), "ES384": ("EC", "P-384"), "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", "Ed25519"),
}
_KEY_CACHE = {}


def make_key(alg, kid=None, fresh=False):
    """A jwcrypto private key for alg (RSA keys are cached: slow to make)."""
    kty, param = ALGS[alg]
    cache_key = (alg, kid)
    if not fresh and cache_key in _KEY_CACHE:
        return _KEY_CACHE[cache_key]
    kid = kid or f"{alg.lower()}-key"
    if kty == "RSA":
        k = jwk.JWK.generate(kty="RSA", size=param, kid=kid)
    elif kty == "EC":
        k = jwk.JWK.generate(kty="EC", crv=param, kid=kid)
    else:
        k = jwk.JWK.generate(kty="OKP", crv=param, kid=kid)
    if not fresh:
        _KEY_CACHE[cache_key] = k
    return k


def jwks_doc(*keys):
    return {"keys": [json.loads(k.export_public()) for k in keys]}


def mint(key, alg, claims, header_extra=None, kid=True):
    header = {"alg": alg, "typ": "JWT"}
    if kid:
        header["kid"] = key.get("kid")
    if header_extra:
        header.update(header_extra)
    t = jwt.JWT(header=header, claims=claims)
    t.make_signed_token(key)
    return t.serialize()


def std_claims(iss, sub="agent-1", aud="api://airlock", ttl=300, **extra):
    now = int(time.time())
    c = {"iss": iss, "sub": sub, "aud": aud, "iat": now, "nbf": now, "exp": now + ttl}
    c.update(extra)
    return c


_HANDED_OUT = set()


def free_port():
    """A free port not handed out before in this test process (two calls in
    a row can otherwise get the same port back from the kernel)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p not in _HANDED_OUT:
            _HANDED_OUT.add(p)
            return p


def free_ports(n, avoid=()):
    """n distinct free ports, none in avoid: every socket stays bound until
    all are chosen (free_port twice can return the same port)."""
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
            if p not in avoid and p not in _HANDED_OUT:
                ports.append(p)
                _HANDED_OUT.add(p)
    finally:
        for s in socks:
            s.close()
    return ports


def run(args, input=None, timeout=30, env=None):
    return subprocess.run([BIN] + args, input=input, capture_output=True, text=True,
                          timeout=timeout, env=env)


class Issuer:
    """An OIDC issuer on loopback: discovery, JWKS, counters, outage switch."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.keys = []
        self.hits = {"discovery": 0, "jwks": 0}
        self.down = False
        self.discovery_issuer = None  # override the issuer in the document
        self.max_age = None
        issuer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if issuer.down:
                    self.send_response(503)
                    self.end_headers()
                    return
                if self.path == "/.well-known/openid-configuration":
                    issuer.hits["discovery"] += 1
                    body = {"issuer": issuer.discovery_issuer or issuer.url,
                            "jwks_uri": issuer.url + "/jwks.json"}
                elif self.path == "/jwks.json":
                    issuer.hits["jwks"] += 1
                    body = jwks_doc(*issuer.keys)
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if issuer.max_age is not None:
                    self.send_header("Cache-Control", f"max-age={issuer.max_age}")
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def issuer():
    i = Issuer()
    yield i
    i.stop()


def write_config(tmp_path, text, name="airlock.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


class Gateway:
    def __init__(self, cfg_path, admin_port, tmp_path):
        self.cfg = cfg_path
        self.admin = f"http://127.0.0.1:{admin_port}"
        self.log_path = tmp_path / "airlock.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([BIN, "serve", "-c", cfg_path], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("airlock exited early:\n" + self.logs())
            try:
                with urllib.request.urlopen(self.admin + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("airlock did not become healthy:\n" + self.logs())

    def logs(self):
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def get(self, path, token=None, timeout=10):
        req = urllib.request.Request(self.admin + path)
        if token is not None:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode()

    def post(self, path, body, token=None, timeout=10):
        req = urllib.request.Request(self.admin + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        if token is not None:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read().decode())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read().decode() or "null")

    def whoami(self, token):
        st, hdrs, body = self.get("/v1/whoami", token)
        return st, hdrs, json.loads(body) if body else None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture
def gateway(tmp_path):
    """Factory: gateway(config_text_with_{admin}_placeholder) -> Gateway."""
    started = []

    def start(text):
        port = free_port()
        cfg = write_config(tmp_path, text.replace("{admin}", f"127.0.0.1:{port}")
                           .replace("{data}", str(tmp_path / "var")))
        g = Gateway(cfg, port, tmp_path)
        started.append(g)
        return g

    yield start
    for g in started:
        rc = g.stop()
        assert rc == 0, "airlock did not exit 0 on SIGTERM:\n" + g.logs()


# ---- a real PostgreSQL for the gateway tests -----------------------------------

PG_BIN = "/usr/lib/postgresql/15/bin"


class PgServer:
    """A throwaway cluster in a temp dir, run as the `postgres` OS user,
    listening on 127.0.0.1 with SCRAM-SHA-256 for `airlock_up`."""

    def __init__(self, base, auth="scram-sha-256"):
        import pwd
        import shutil
        self.dir = os.path.join(base, "pgdata")
        self.port = free_port()
        self.password = "up-secret-" + os.urandom(6).hex()
        os.makedirs(base, exist_ok=True)
        pw = pwd.getpwnam("postgres")
        os.chown(base, pw.pw_uid, pw.pw_gid)
        pwfile = os.path.join(base, "pw")
        with open(pwfile, "w") as f:
            f.write(self.password + "\n")
        os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        self._as_pg([f"{PG_BIN}/initdb", "-D", self.dir, "-U", "airlock_up", "--pwfile", pwfile,
                     "--auth-host", auth, "--auth-local", "trust", "-E", "UTF8"])
        # TLS too (the test CA's server certificate is valid for 127.0.0.1),
        # for the gateway's upstream verify-full tests; plaintext stays allowed.
        tlsdir = os.path.join(ROOT, "tests", "data", "tls")
        for f in ("server.pem", "server.key"):
            shutil.copy(os.path.join(tlsdir, f), os.path.join(self.dir, f))
            os.chown(os.path.join(self.dir, f), pw.pw_uid, pw.pw_gid)
            os.chmod(os.path.join(self.dir, f), 0o600)
        with open(os.path.join(self.dir, "postgresql.conf"), "a") as f:
            f.write("ssl = on\nssl_cert_file = 'server.pem'\nssl_key_file = 'server.key'\n")
            f.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{base}'\nfsync = off\n"
                    f"password_encryption = '{'md5' if auth == 'md5' else 'scram-sha-256'}'\n")
        self._as_pg([f"{PG_BIN}/pg_ctl", "-D", self.dir, "-w", "-l",
                     os.path.join(base, "pg.log"), "start"])
        self.base = base
        self.psql_local("CREATE DATABASE app")
        if auth == "md5":
            self.psql_local(f"ALTER ROLE airlock_up PASSWORD '{self.password}'")
        shutil.which("psql")

    def _as_pg(self, args):
        r = subprocess.run(["runuser", "-u", "postgres", "--"] + args, capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {r.stdout}{r.stderr}")
        return r

    def psql_local(self, sql, db="postgres"):
        return self._as_pg(["psql", "-h", self.base, "-p", str(self.port), "-U", "airlock_up",
                            "-d", db, "-v", "ON_ERROR_STOP=1", "-qAtc", sql]).stdout

    def stop(self):
        subprocess.run(["runuser", "-u", "postgres", "--", f"{PG_BIN}/pg_ctl", "-D", self.dir,
                        "-m", "immediate", "stop"], capture_output=True)


@pytest.fixture(scope="module")
def pg():
    import shutil
    import tempfile
    # Outside pytest's root-only tree: the postgres user must reach it.
    base = tempfile.mkdtemp(prefix="airlock-pg-")
    os.chmod(base, 0o755)
    s = PgServer(base)
    yield s
    s.stop()
    shutil.rmtree(base, ignore_errors=True)
