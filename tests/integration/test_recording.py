"""Session recording end to end (docs/recordings.md): a real PostgreSQL
session (psycopg, simple and extended protocol, masking) and HTTP exchanges
through airlock are recorded, closed recordings are gzip files whose SHA-256
is in the session's closing audit event, `airlock replay --json` gives back
what happened, `airlock audit verify` catches a changed or missing recording,
nothing secret is in a recording, and a full disk refuses actions."""
import glob
import gzip
import hashlib
import http.server
import json
import os
import subprocess
import threading
import time

import psycopg
import pytest
import requests

from conftest import free_port, free_ports, run

CFG = """
server:
  admin_listen: {admin}
  data_dir: {data}
  workers: 2
  drain_timeout: 5s
dev_issuer: true
targets:
  - name: appdb
    protocol: postgres
    listen: 127.0.0.1:{pgport}
    tls: off
    upstream:
      host: 127.0.0.1
      port: {upport}
      database: app
      user: airlock_up
      password_env: AIRLOCK_TEST_UPSTREAM_PW
  - name: api
    protocol: http
    listen: 127.0.0.1:{httpport}
    tls: off
    upstream:
      url: http://127.0.0.1:{webport}
      headers:
        X-Upstream-Key: {env: AIRLOCK_TEST_API_KEY}
    http:
      redact_params: [api_key]
agents:
  - { name: bot, issuer: airlock-dev, subject: bot, owner: bot-owner@example.com }
policies:
  - { name: reads, who: ["*"], targets: [appdb], when: { sql: [read] }, action: allow }
  - { name: writes, who: ["*"], targets: [appdb], when: { sql: [write] }, action: allow }
  - { name: web, who: ["*"], targets: [api], when: { methods: [GET, POST] }, action: allow }
masking:
  - { targets: [appdb, api], detectors: [email] }
recordings:
  max_rows: 3
{extra}
"""

UPSTREAM_KEY = "upstream-key-" + os.urandom(6).hex()
SECRET_EMAIL = "alice.secret@example.com"
WAIT = 15


class Web:
    """HTTP upstream echoing what it got; /user answers with an e-mail address."""

    def __init__(self):
        self.port = free_port()

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _send(self, code, body, ctype="application/json"):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Set-Cookie", "session=upstream-cookie-value")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path.startswith("/user"):
                    self._send(200, json.dumps({"id": 7, "email": SECRET_EMAIL}).encode())
                elif self.path.startswith("/bin"):
                    self._send(200, bytes(range(256)), "application/octet-stream")
                else:
                    self._send(200, b'{"ok":true}')

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                self._send(201, json.dumps({"got": len(body)}).encode())

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def env(gateway, pg, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRLOCK_TEST_UPSTREAM_PW", pg.password)
    monkeypatch.setenv("AIRLOCK_TEST_API_KEY", UPSTREAM_KEY)
    pg.psql_local("DROP TABLE IF EXISTS people; CREATE TABLE people(id int, name text, email text);"
                  "INSERT INTO people SELECT g, 'name' || g, 'user' || g || '@example.org' "
                  "FROM generate_series(1, 5) g;"
                  f"INSERT INTO people VALUES (99, 'alice', '{SECRET_EMAIL}');"
                  "GRANT ALL ON people TO PUBLIC", db="app")
    web = Web()

    class Env:
        pass

    e = Env()
    e.pg, e.web, e.tmp = pg, web, tmp_path
    e.pgport, e.httpport = free_ports(2, avoid=(pg.port, web.port))
    e.data = tmp_path / "var"
    e.rec_dir = e.data / "recordings"

    def start(extra=""):
        text = (CFG.replace("{upport}", str(pg.port)).replace("{webport}", str(web.port))
                .replace("{pgport}", str(e.pgport)).replace("{httpport}", str(e.httpport))
                .replace("{extra}", extra))
        e.g = gateway(text)
        return e.g

    e.start = start
    yield e
    web.stop()


def mint(e, agent="bot"):
    r = run(["token", "mint", "-c", e.g.cfg, "--agent", agent])
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def pg_connect(e, tok):
    return psycopg.connect(host="127.0.0.1", port=e.pgport, user="bot", dbname="app",
                           password=tok, sslmode="disable", connect_timeout=WAIT,
                           application_name="rec-test")


def audit_events(e, kind):
    r = run(["audit", "query", "-c", e.g.cfg, "--kind", kind, "--json", "--limit", "1000"])
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def wait_session_event(e, sid):
    deadline = time.time() + WAIT
    while time.time() < deadline:
        for ev in audit_events(e, "session_end"):
            if ev["session_id"] == sid:
                return ev
        time.sleep(0.1)
    raise AssertionError(f"no closing session event for {sid}:\n" + e.g.logs())


def session_ids(e, protocol):
    """The sessions of `protocol` in the audit log, oldest first; waits for
    the first one (async events commit within the flush interval)."""
    deadline = time.time() + WAIT
    while True:
        r = run(["audit", "query", "-c", e.g.cfg, "--json", "--limit", "1000"])
        assert r.returncode == 0, r.stderr
        ids = list(dict.fromkeys(ev["session_id"] for ev in reversed(json.loads(r.stdout))
                                 if ev.get("protocol") == protocol and ev.get("session_id")))
        if ids or time.time() > deadline:
            return ids
        time.sleep(0.05)


def replay_json(e, sid):
    r = run(["replay", sid, "-c", e.g.cfg, "--json"])
    assert r.returncode == 0, r.stdout + r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def read_recording(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        return [json.loads(line) for line in f.read().splitlines()]


def all_recording_bytes(e):
    out = b""
    for p in glob.glob(str(e.rec_dir / "**" / "*"), recursive=True):
        if os.path.isfile(p):
            with open(p, "rb") as f:
                data = f.read()
            out += gzip.decompress(data) if p.endswith(".gz") else data
    return out


def psql_session(e, tok):
    """One session: simple queries, a prepared statement with parameters, a
    refused statement, an upstream error, more rows than max_rows."""
    with pg_connect(e, tok) as c:
        c.autocommit = True
        cur = c.cursor()
        cur.execute("SELECT id, name FROM people WHERE id <= 2 ORDER BY id", prepare=False)
        assert cur.fetchall() == [(1, "name1"), (2, "name2")]
        cur.execute("SELECT id, name FROM people WHERE id = %s AND name = %s", (3, "name3"))
        assert cur.fetchall() == [(3, "name3")]
        cur.execute("SELECT email FROM people WHERE id = 99")
        masked = cur.fetchone()[0]
        assert masked != SECRET_EMAIL
        cur.execute("SELECT id FROM people ORDER BY id")
        assert len(cur.fetchall()) == 6
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            cur.execute("DROP TABLE people")
        with pytest.raises(psycopg.errors.UndefinedTable):
            cur.execute("SELECT * FROM no_such_table")
        cur.execute("SELECT 1")
    return masked


def test_pg_session_recorded_and_replayed(env):
    e = env
    e.start()
    tok = mint(e)
    masked = psql_session(e, tok)
    sid = session_ids(e, "postgres")[-1]
    ev = wait_session_event(e, sid)
    # the closing event names the compressed file and its hash
    assert ev["kind"] == "session_end" and ev["agent"] == "bot" and ev["target"] == "appdb"
    path = e.rec_dir / ev["recording"]
    assert str(ev["recording"]).endswith(sid + ".jsonl.gz")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == ev["recording_sha256"]
    assert ev["bytes_up"] > 0 and ev["bytes_down"] > 0
    assert not glob.glob(str(e.rec_dir / "**" / (sid + ".jsonl")), recursive=True)

    lines = replay_json(e, sid)
    assert lines == read_recording(path)
    head = lines[0]
    assert head["type"] == "session" and head["session_id"] == sid
    assert head["protocol"] == "postgres" and head["target"] == "appdb"
    types = [l["type"] for l in lines]
    assert types[-1] == "close"
    assert any(l["type"] == "startup" and l["user"] == "bot" and l["database"] == "app"
               and l["application_name"] == "rec-test" for l in lines)
    assert any(l["type"] == "identity" and l["agent"] == "bot" for l in lines)
    ts = [l["t"] for l in lines[1:]]
    assert ts == sorted(ts)

    # simple query: statement, decision, rows, tag
    i = next(k for k, l in enumerate(lines)
             if l["type"] == "query" and "id <= 2" in l["sql"])
    assert lines[i]["decision"] == "allow" and lines[i]["rule"] == "reads"
    assert [l["values"] for l in lines[i + 1:i + 3]] == [["1", "name1"], ["2", "name2"]]
    done = lines[i + 3]
    assert done["type"] == "complete" and done["tag"] == "SELECT 2" and done["rows"] == 2
    assert done["rows_recorded"] == 2 and done["rows_truncated"] is False
    assert done["duration_us"] >= 0

    # extended protocol: Parse with the statement, Bind with the parameters
    p = next(k for k, l in enumerate(lines) if l["type"] == "parse" and "name = $2" in l["sql"])
    b = next(l for l in lines[p:] if l["type"] == "bind")
    assert b["params"] == [{"base64": "AAM="}, "name3"]  # psycopg sends the int in binary
    rows = [l for l in lines[p:] if l["type"] == "row"][:1]
    assert rows[0]["values"] == ["3", "name3"]

    # masked value recorded masked, exactly as the client got it
    m = next(k for k, l in enumerate(lines) if l.get("sql", "").endswith("id = 99"))
    assert next(l for l in lines[m:] if l["type"] == "row")["values"] == [masked]

    # row cap
    c = next(k for k, l in enumerate(lines) if l.get("sql") == "SELECT id FROM people ORDER BY id")
    seg = lines[c + 1:]
    done = next(l for l in seg if l["type"] == "complete")
    assert done["rows"] == 6 and done["rows_recorded"] == 3 and done["rows_truncated"] is True
    assert len([l for l in seg[:seg.index(done)] if l["type"] == "row"]) == 3

    # refused and failed statements
    d = next(l for l in lines if l.get("sql") == "DROP TABLE people")
    assert d["decision"] == "deny"
    err = lines[lines.index(d) + 1]
    assert err["type"] == "error" and err["sqlstate"] == "42501" and err["source"] == "airlock"
    u = next(l for l in lines if l["type"] == "error" and l["source"] == "upstream")
    assert u["sqlstate"] == "42P01"

    # human view: in order, with the statements and rows
    r = run(["replay", sid, "-c", e.g.cfg, "--speed", "0"])
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.index("id <= 2") < out.index("DROP TABLE people") < out.index("no_such_table")
    assert "name1" in out and "42501" in out

    # nothing secret: token, upstream password, unmasked value
    blob = all_recording_bytes(e)
    assert tok.encode() not in blob and tok.split(".")[2].encode() not in blob
    assert e.pg.password.encode() not in blob
    assert SECRET_EMAIL.encode() not in blob

    # the audit chain and the recording verify; a changed byte does not
    r = run(["audit", "verify", "-c", e.g.cfg])
    assert r.returncode == 0, r.stdout + r.stderr
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    r = run(["audit", "verify", "-c", e.g.cfg])
    assert r.returncode == 1
    assert "recording changed" in r.stdout + r.stderr and sid in r.stdout + r.stderr
    path.unlink()
    r = run(["audit", "verify", "-c", e.g.cfg])
    assert r.returncode == 1 and "recording missing" in r.stdout + r.stderr


def test_http_session_recorded_and_replayed(env):
    e = env
    e.start()
    tok = mint(e)
    base = f"http://127.0.0.1:{e.httpport}"
    with requests.Session() as s:
        s.headers["Authorization"] = "Bearer " + tok
        s.headers["Cookie"] = "agent-cookie=agent-cookie-secret"
        r = s.get(base + "/user?api_key=query-secret-value&x=1", timeout=WAIT)
        assert r.status_code == 200 and SECRET_EMAIL not in r.text
        masked_body = r.text
        r = s.post(base + "/items", data=b'{"name":"widget"}',
                   headers={"Content-Type": "application/json"}, timeout=WAIT)
        assert r.status_code == 201
        r = s.get(base + "/bin", timeout=WAIT)
        assert r.content == bytes(range(256))
        r = s.delete(base + "/items/1", timeout=WAIT)
        assert r.status_code == 403
    sid = session_ids(e, "http")[-1]
    ev = wait_session_event(e, sid)
    lines = replay_json(e, sid)
    assert lines[0]["protocol"] == "http" and lines[-1]["type"] == "close"
    reqs = [l for l in lines if l["type"] == "request"]
    resps = [l for l in lines if l["type"] == "response"]
    assert [q["method"] for q in reqs] == ["GET", "POST", "GET", "DELETE"]
    q0 = reqs[0]
    assert q0["target"].startswith("/user?") and "query-secret-value" not in q0["target"]
    hdrs = {k.lower(): v for k, v in q0["headers"]}
    assert hdrs["authorization"] == "[redacted]" and hdrs["cookie"] == "[redacted]"
    assert q0["decision"] == "allow"
    assert resps[0]["status"] == 200 and resps[0]["body"] == masked_body
    rh = {k.lower(): v for k, v in resps[0]["headers"]}
    assert rh["set-cookie"] == "[redacted]"
    assert reqs[1]["body"] == '{"name":"widget"}' and reqs[1]["body_bytes"] == 17
    assert resps[1]["status"] == 201
    import base64
    assert base64.b64decode(resps[2]["body"]["base64"]) == bytes(range(256))
    assert resps[2]["body_bytes"] == 256
    assert reqs[3]["decision"] == "deny" and resps[3]["status"] == 403
    blob = all_recording_bytes(e)
    for secret in (tok, UPSTREAM_KEY, "agent-cookie-secret", "upstream-cookie-value",
                   "query-secret-value", SECRET_EMAIL):
        assert secret.encode() not in blob, secret
    assert ev["recording_sha256"] == hashlib.sha256(
        (e.rec_dir / ev["recording"]).read_bytes()).hexdigest()


def test_http_body_cap(env):
    e = env
    e.start("  max_body_bytes: 100")
    tok = mint(e)
    big = b"x" * 5000
    r = requests.post(f"http://127.0.0.1:{e.httpport}/up", data=big,
                      headers={"Authorization": "Bearer " + tok}, timeout=WAIT)
    assert r.status_code == 201
    sid = session_ids(e, "http")[-1]
    wait_session_event(e, sid)
    req = next(l for l in replay_json(e, sid) if l["type"] == "request")
    assert req["body"] == "x" * 100 and req["body_bytes"] == 5000 and req["body_truncated"]


def test_recording_disabled(env):
    e = env
    e.start("  enabled: false")
    tok = mint(e)
    with pg_connect(e, tok) as c:
        c.execute("SELECT 1")
    time.sleep(0.3)
    assert not glob.glob(str(e.rec_dir / "**" / "*.jsonl*"), recursive=True)


def test_open_recording_finalized_after_crash(env):
    """SIGKILL with a session open: the next start compresses the plain file
    and writes its closing event (reason: recovered)."""
    e = env
    g = e.start()
    tok = mint(e)
    c = pg_connect(e, tok)
    c.execute("SELECT 1")
    sid = session_ids(e, "postgres")[-1]
    deadline = time.time() + WAIT
    while not glob.glob(str(e.rec_dir / "**" / (sid + ".jsonl")), recursive=True):
        assert time.time() < deadline, "open recording never appeared"
        time.sleep(0.05)
    g.proc.kill()
    g.proc.wait()
    c.close()
    g.stop = lambda: 0  # killed on purpose: not the fixture's clean exit
    g.log.close()
    g2 = e.start()
    ev = wait_session_event(env, sid)
    assert ev["reason"].startswith("recovered")
    assert (env.rec_dir / ev["recording"]).exists()
    r = run(["audit", "verify", "-c", g2.cfg])
    assert r.returncode == 0, r.stdout + r.stderr


def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root?): " + r.stderr.strip())


def umount(path):
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path):
    """Fills the file system holding path; returns the filler file."""
    f = os.path.join(path, "filler")
    fd = os.open(f, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError:
                    break
    finally:
        os.close(fd)
    return f


@pytest.mark.parametrize("mode", ["refuse", "continue"])
def test_disk_full(env, mode):
    e = env
    mount_tmpfs(e.rec_dir, "2m")
    try:
        e.start(f"  on_failure: {mode}")
        tok = mint(e)
        with pg_connect(e, tok) as c:
            c.autocommit = True
            c.execute("SELECT 1")
            time.sleep(0.2)
            filler = fill(str(e.rec_dir))
            # writes start failing: the next statements give the recorder
            # lines it cannot write
            deadline = time.time() + WAIT
            refused = None
            while time.time() < deadline:
                try:
                    c.execute("SELECT id, name, email FROM people")
                except psycopg.Error as ex:
                    refused = ex
                    break
                if mode == "continue" and time.time() > deadline - WAIT + 2:
                    break
                time.sleep(0.05)
            if mode == "refuse":
                assert refused is not None, ("statements were not refused with the disk full\n"
                                             + e.g.logs())
                assert refused.sqlstate == "58030"
                assert "recording" in str(refused) and "on_failure" in str(refused)
                # still refused while full, on every protocol
                with pytest.raises(psycopg.Error):
                    c.execute("SELECT 1")
                hr = requests.get(f"http://127.0.0.1:{e.httpport}/x",
                                  headers={"Authorization": "Bearer " + tok}, timeout=WAIT)
                assert hr.status_code == 503, hr.text
                assert hr.json()["error"] == "recording_failed"
                assert "on_failure" in hr.json()["reason"]
                # space again: the recorder retries and actions pass
                os.unlink(filler)
                deadline = time.time() + WAIT
                while True:
                    try:
                        c.execute("SELECT 1")
                        break
                    except psycopg.Error:
                        assert time.time() < deadline, "never recovered after space came back"
                        time.sleep(0.2)
                evs = audit_events(e, "decision")
                assert any(x.get("reason") == "recording_failed" for x in evs)
            else:
                assert refused is None, f"refused in continue mode: {refused}"
                os.unlink(filler)
        assert "session recording failed" in e.g.logs()
    finally:
        if getattr(e, "g", None):
            e.g.stop()
        umount(e.rec_dir)


def test_psql_session_replayed(env):
    """The psql CLI: what `airlock replay` shows is what psql printed."""
    e = env
    e.start()
    tok = mint(e)
    penv = dict(os.environ, PGPASSWORD=tok, PGSSLMODE="disable", PGCONNECT_TIMEOUT="10")
    stmts = ["SELECT id, name FROM people WHERE id IN (4, 5) ORDER BY id",
             "DROP TABLE people",
             "SELECT count(*) FROM people"]
    args = ["psql", "-h", "127.0.0.1", "-p", str(e.pgport), "-U", "bot", "-d", "app", "-At",
            "-v", "ON_ERROR_STOP=0"]
    for q in stmts:
        args += ["-c", q]
    r = subprocess.run(args, env=penv, capture_output=True, text=True, timeout=30)
    assert r.stdout.splitlines() == ["4|name4", "5|name5", "6"], r.stdout + r.stderr
    assert "denied by policy" in r.stderr
    sid = session_ids(e, "postgres")[-1]
    wait_session_event(e, sid)
    lines = replay_json(e, sid)
    assert [l["sql"] for l in lines if l["type"] == "query"] == stmts
    assert [l["decision"] for l in lines if l["type"] == "query"] == ["allow", "deny", "allow"]
    rows = ["|".join(l["values"]) for l in lines if l["type"] == "row"]
    assert rows == r.stdout.splitlines()
    assert [l["tag"] for l in lines if l["type"] == "complete"] == ["SELECT 2", "SELECT 1"]
    assert any(l["type"] == "startup" and l["application_name"] == "psql" for l in lines)
    assert lines[-1]["type"] == "close"
    shown = run(["replay", sid, "-c", e.g.cfg, "--speed", "0"]).stdout
    for q in stmts:
        assert q in shown
    assert "4" in shown and "name5" in shown


@pytest.mark.parametrize("rule", ["age", "size"])
def test_retention_removes_and_audits(env, rule):
    """A closed recording past retention is removed at the next start (and
    every minute after), with a `recording` audit event; verify still passes
    because the removal is in the chain. A missing file without one fails."""
    e = env
    g = e.start()
    tok = mint(e)
    with pg_connect(e, tok) as c:
        c.execute("SELECT 1")
    sid = session_ids(e, "postgres")[-1]
    ev = wait_session_event(e, sid)
    path = e.rec_dir / ev["recording"]
    assert path.exists()
    g.stop()
    if rule == "age":
        old = time.time() - 100 * 86400
        os.utime(path, (old, old))
        g = e.start()
        want = "retention: older than 90d"
    else:
        g = e.start("  max_bytes: 1")
        want = "retention: over max_bytes"
    deadline = time.time() + WAIT
    removed = []
    while time.time() < deadline and not removed:
        removed = [x for x in audit_events(e, "recording") if x.get("recording") == ev["recording"]]
        time.sleep(0.1)
    assert removed, "no removal event:\n" + g.logs()
    assert removed[0]["reason"] == want and removed[0]["action"] == "remove"
    assert removed[0]["recording_sha256"] == ev["recording_sha256"]
    assert not path.exists()
    r = run(["audit", "verify", "-c", g.cfg])
    assert r.returncode == 0, r.stdout + r.stderr
    r = run(["replay", sid, "-c", g.cfg])
    assert r.returncode == 1 and "no recording" in r.stderr
