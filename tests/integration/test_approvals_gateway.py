"""Approvals in the gateways (docs/approvals.md, src/proto/approval_hold.c): an
`approve` verdict on a real PostgreSQL statement or HTTP request becomes a
request; `retry` refuses at once with the id, `wait` holds the action until
an approver decides through the admin API (POST /v1/approvals/ID/approve or
/deny, with the approver agent's dev token). Grants let the same action
through afterwards; a disconnect while held cancels the request; a restart
abandons a pending `wait` request."""
import http.server
import json
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import psycopg
import pytest

from conftest import BIN, Gateway, free_port, run, write_config

CFG = """
server:
  admin_listen: {admin}
  data_dir: {data}
  workers: 2
  drain_timeout: 3s
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
agents:
  - { name: bot, issuer: airlock-dev, subject: bot, owner: bot-owner@example.com, groups: [bots] }
  - { name: alice, issuer: airlock-dev, subject: alice, owner: o@example.com, groups: [dba] }
admin:
  roles: { approver: [dba] }
policies:
  - { name: reads, who: ["*"], targets: [appdb], when: { sql: [read] }, action: allow }
  - { name: web-read, who: ["*"], targets: [api], when: { methods: [GET] }, action: allow }
  - name: retry-ddl
    who: [bot]
    targets: [appdb]
    when: { sql: [ddl], tables: ["r_*"] }
    action: approve
    approvers: [dba]
    mode: retry
    grant: once
    timeout: 10m
  - name: wait-ddl
    who: [bot]
    targets: [appdb]
    when: { sql: [ddl], tables: ["w_*"] }
    action: approve
    approvers: [dba]
    mode: wait
    grant: once
    timeout: 10m
  - name: quick-ddl
    who: [bot]
    targets: [appdb]
    when: { sql: [ddl], tables: ["q_*"] }
    action: approve
    approvers: [dba]
    mode: wait
    timeout: 2s
  - name: timed-writes
    who: [bot]
    targets: [appdb]
    when: { sql: [write], tables: ["d_*"] }
    action: approve
    approvers: [dba]
    mode: retry
    grant: 10m
    timeout: 10m
  - name: web-put
    who: [bot]
    targets: [api]
    when: { methods: [PUT] }
    action: approve
    approvers: [dba]
    mode: retry
    timeout: 10m
  - name: web-post
    who: [bot]
    targets: [api]
    when: { methods: [POST] }
    action: approve
    approvers: [dba]
    mode: wait
    timeout: 10m
"""

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
WAIT = 20  # seconds anything may take on a loaded box


class Web:
    """HTTP upstream that records each request it gets."""

    def __init__(self):
        self.port = free_port()
        self.seen = []
        web = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _answer(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                web.seen.append((self.command, self.path, body))
                out = json.dumps({"ok": True, "got": body.decode()}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = _answer
            do_POST = _answer
            do_PUT = _answer

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def env(gateway, pg, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRLOCK_TEST_UPSTREAM_PW", pg.password)
    web = Web()
    ports = {"pgport": free_port(), "httpport": free_port()}
    text = CFG.replace("{upport}", str(pg.port)).replace("{webport}", str(web.port))
    for k, v in ports.items():
        text = text.replace("{" + k + "}", str(v))

    class Env:
        pass

    e = Env()
    e.text, e.pg, e.web, e.tmp = text, pg, web, tmp_path
    e.g = gateway(text)
    e.__dict__.update(ports)
    e.tokens = {}
    yield e
    web.stop()


def mint(e, agent):
    if agent not in e.tokens:
        r = run(["token", "mint", "-c", e.g.cfg, "--agent", agent])
        assert r.returncode == 0, r.stderr
        e.tokens[agent] = r.stdout.strip()
    return e.tokens[agent]


class Notice:
    def __init__(self, severity, sqlstate, message_primary):
        self.severity, self.sqlstate, self.message_primary = severity, sqlstate, message_primary


def connect(e, agent="bot"):
    conn = psycopg.connect(host="127.0.0.1", port=e.pgport, user=agent, dbname="app",
                           password=mint(e, agent), sslmode="disable", connect_timeout=10,
                           autocommit=True)
    conn.notices = []

    def keep(d):  # a Diagnostic is valid only during the call: copy it
        conn.notices.append(Notice(d.severity, d.sqlstate, d.message_primary))

    conn.add_notice_handler(keep)
    return conn


def vote(e, rid, op, body=None, agent="alice"):
    st, doc = e.g.post(f"/v1/approvals/{rid}/{op}", body or {}, token=mint(e, agent))
    assert st == 200, (st, doc)
    return doc


def approval(e, rid):
    st, _, body = e.g.get(f"/v1/approvals/{rid}", token=mint(e, "alice"))
    assert st == 200, body
    doc = json.loads(body)
    return doc.get("request", doc)


def wait_state(e, rid, state):
    end = time.time() + WAIT
    while time.time() < end:
        doc = approval(e, rid)
        if doc["state"] == state:
            return doc
        time.sleep(0.1)
    raise AssertionError(f"request {rid} never became {state}: {doc}")


def pending(e):
    st, _, body = e.g.get("/v1/approvals?state=pending", token=mint(e, "alice"))
    assert st == 200, body
    doc = json.loads(body)
    return doc if isinstance(doc, list) else doc.get("approvals", doc.get("requests"))


def audit(e, *args):
    r = run(["audit", "query", "-c", e.g.cfg, "--json", "--limit", "1000", *args])
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def wait_audit(e, pred):
    end = time.time() + WAIT
    evs = []
    while time.time() < end:
        evs = audit(e)
        if pred(evs):
            return evs
        time.sleep(0.2)
    raise AssertionError(f"audit never matched: {json.dumps(evs)[-3000:]}")


def exists(e, table):
    return e.pg.psql_local(f"SELECT to_regclass('public.{table}') IS NOT NULL", db="app").strip()


class Held:
    """Runs one statement on a connection in a thread (it is held)."""

    def __init__(self, conn, sql):
        self.conn, self.sql = conn, sql
        self.error = None
        self.done = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        try:
            self.conn.execute(self.sql)
        except Exception as ex:  # noqa: BLE001 - the test reads it
            self.error = ex
        self.done.set()

    def request_id(self):
        """The id the NoticeResponse named."""
        end = time.time() + WAIT
        while time.time() < end:
            for n in self.conn.notices:
                m = UUID.search(n.message_primary or "")
                if m:
                    return m.group(0), n
            if self.done.is_set():
                raise AssertionError(f"not held: {self.error!r}")
            time.sleep(0.05)
        raise AssertionError("no NoticeResponse with a request id")


# ---- PostgreSQL: retry mode -----------------------------------------------------------

def test_retry_refuses_with_id_then_passes_once_after_approval(env):
    e = env
    with connect(e) as conn:
        with pytest.raises(psycopg.Error) as ei:
            conn.execute("CREATE TABLE r_one (a int)")
        assert ei.value.sqlstate == "42501"
        msg = ei.value.diag.message_primary
        rid = UUID.search(msg).group(0)
        assert msg == (f"airlock: approval required (request {rid}); ask an approver: "
                       f"airlock approvals approve {rid}")
        # the session goes on
        assert conn.execute("SELECT 1").fetchone() == (1,)
        # the same action again while pending: the same request back
        with pytest.raises(psycopg.Error) as ei:
            conn.execute("CREATE TABLE r_one (a int);")
        assert rid in ei.value.diag.message_primary
        assert exists(e, "r_one") == "f"
        out = vote(e, rid, "approve")
        assert json.dumps(out).find("approved") >= 0
        conn.execute("CREATE TABLE r_one (a int)")
        assert exists(e, "r_one") == "t"
        # a `once` grant is used up: the next identical action asks again
        with pytest.raises(psycopg.Error) as ei:
            conn.execute("CREATE TABLE r_one (a int)")
        rid2 = UUID.search(ei.value.diag.message_primary).group(0)
        assert rid2 != rid
    evs = wait_audit(e, lambda evs: any((ev.get("reason") or "").startswith("approval_grant:")
                                        for ev in evs))
    pend = [ev for ev in evs if ev.get("approval_id") == rid and ev.get("decision") == "pending"]
    assert pend and pend[0]["rule"] == "retry-ddl"
    used = [ev for ev in evs if (ev.get("reason") or "").startswith("approval_grant:")]
    assert used[0]["approval_id"] == rid and used[0]["decision"] == "allow"
    assert UUID.fullmatch(used[0]["reason"].split(":", 1)[1])


def test_duration_grant_covers_repeats(env):
    e = env
    e.pg.psql_local("CREATE TABLE IF NOT EXISTS d_log (a int)", db="app")
    with connect(e) as conn:
        with pytest.raises(psycopg.Error) as ei:
            conn.execute("INSERT INTO d_log VALUES (1)")
        rid = UUID.search(ei.value.diag.message_primary).group(0)
        vote(e, rid, "approve")
        for _ in range(3):
            conn.execute("INSERT INTO d_log VALUES (1)")
        # another action is not covered by this fingerprint's grant
        with pytest.raises(psycopg.Error) as ei:
            conn.execute("INSERT INTO d_log VALUES (2)")
        assert ei.value.sqlstate == "42501"
    assert e.pg.psql_local("SELECT count(*) FROM d_log WHERE a = 1", db="app").strip() == "3"


# ---- PostgreSQL: wait mode -----------------------------------------------------------

def test_wait_approved_statement_completes(env):
    e = env
    with connect(e) as conn:
        h = Held(conn, "CREATE TABLE w_ok (a int)")
        rid, notice = h.request_id()
        assert notice.severity == "NOTICE" and notice.sqlstate == "01000"
        assert f"airlock approvals approve {rid}" in notice.message_primary
        # other sessions are not held
        with connect(e) as other:
            assert other.execute("SELECT 2").fetchone() == (2,)
        assert not h.done.wait(0.5), "the statement ran before approval"
        assert exists(e, "w_ok") == "f"
        vote(e, rid, "approve")
        assert h.done.wait(WAIT) and h.error is None, h.error
        assert exists(e, "w_ok") == "t"
        assert conn.execute("SELECT 3").fetchone() == (3,)
    wait_audit(e, lambda evs: any(ev.get("approval_id") == rid and ev.get("decision") == "allow"
                                  for ev in evs))


def test_wait_denied_reason_reaches_the_client(env):
    e = env
    with connect(e) as conn:
        h = Held(conn, "CREATE TABLE w_no (a int)")
        rid, _ = h.request_id()
        vote(e, rid, "deny", {"reason": "not during the freeze"})
        assert h.done.wait(WAIT)
        assert isinstance(h.error, psycopg.Error) and h.error.sqlstate == "42501"
        assert "not during the freeze" in h.error.diag.message_primary
        assert rid in h.error.diag.message_primary
        assert conn.execute("SELECT 4").fetchone() == (4,)
    assert exists(e, "w_no") == "f"
    wait_audit(e, lambda evs: any(ev.get("approval_id") == rid
                                  and ev.get("reason") == "approval_denied" for ev in evs))


def test_wait_times_out(env):
    e = env
    with connect(e) as conn:
        t0 = time.time()
        h = Held(conn, "CREATE TABLE q_slow (a int)")
        rid, _ = h.request_id()
        assert h.done.wait(WAIT)
        assert time.time() - t0 >= 1.5
        assert isinstance(h.error, psycopg.Error) and h.error.sqlstate == "42501"
        assert "timed out" in h.error.diag.message_primary
        assert conn.execute("SELECT 5").fetchone() == (5,)
    assert approval(e, rid)["state"] == "timed_out"
    assert exists(e, "q_slow") == "f"


def test_disconnect_while_held_cancels(env):
    e = env
    conn = connect(e)
    h = Held(conn, "CREATE TABLE w_gone (a int)")
    rid, _ = h.request_id()
    # cut the socket under the waiting client
    socket.socket(fileno=conn.pgconn.socket).shutdown(socket.SHUT_RDWR)
    doc = wait_state(e, rid, "cancelled")
    assert doc.get("reason") == "client_disconnected"
    h.done.wait(WAIT)
    conn.close()
    assert exists(e, "w_gone") == "f"


def test_restart_abandons_pending_wait_request(env):
    e = env
    conn = connect(e)
    h = Held(conn, "CREATE TABLE w_restart (a int)")
    rid, _ = h.request_id()
    # the process dies with the held client (no chance to cancel)
    e.g.proc.kill()
    e.g.proc.wait()
    h.done.wait(WAIT)
    conn.close()
    e.g.proc.returncode = 0  # killed on purpose; the fixture checks clean exits
    port = int(e.g.admin.rsplit(":", 1)[1])
    g2 = Gateway(e.g.cfg, port, e.tmp)
    try:
        e.g = g2
        doc = approval(e, rid)
        assert doc["state"] == "abandoned"
        assert doc.get("reason") == "restart"
    finally:
        assert g2.stop() == 0, g2.logs()


# ---- HTTP ---------------------------------------------------------------------------------

def http_post(e, body, path="/orders", method="POST"):
    req = urllib.request.Request(f"http://127.0.0.1:{e.httpport}{path}", data=body,
                                 method=method,
                                 headers={"Authorization": "Bearer " + mint(e, "bot"),
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=WAIT + 10) as r:
            return r.status, json.loads(r.read().decode())
    except urllib.error.HTTPError as ex:
        return ex.code, json.loads(ex.read().decode() or "null")


class HeldHttp:
    def __init__(self, e, body):
        self.result = None
        self.done = threading.Event()

        def go():
            self.result = http_post(e, body)
            self.done.set()

        threading.Thread(target=go, daemon=True).start()


def one_pending(e, target):
    end = time.time() + WAIT
    while time.time() < end:
        reqs = [r for r in pending(e) if r["target"] == target]
        if reqs:
            return reqs[0]
        time.sleep(0.05)
    raise AssertionError("no pending request")


def test_http_wait_approve_forwards(env):
    e = env
    h = HeldHttp(e, b'{"n": 1}')
    req = one_pending(e, "api")
    assert req["action"].startswith("POST /orders") and req["mode"] == "wait"
    assert not h.done.wait(0.5)
    assert not [s for s in e.web.seen if s[0] == "POST"], "bytes reached the upstream"
    vote(e, req["id"], "approve")
    assert h.done.wait(WAIT)
    st, doc = h.result
    assert st == 200 and doc["got"] == '{"n": 1}'
    assert [s for s in e.web.seen if s[0] == "POST"] == [("POST", "/orders", b'{"n": 1}')]


def test_http_wait_deny_403(env):
    e = env
    h = HeldHttp(e, b'{"n": 2}')
    req = one_pending(e, "api")
    vote(e, req["id"], "deny", {"reason": "orders are frozen"})
    assert h.done.wait(WAIT)
    st, doc = h.result
    assert st == 403
    assert doc["error"] == "approval_denied" and doc["approval_id"] == req["id"]
    assert "orders are frozen" in doc["message"]
    assert not [s for s in e.web.seen if s[0] == "POST"]


def test_http_retry_403_with_id_then_grant(env):
    e = env
    st, doc = http_post(e, b"{}", "/items/7", "PUT")
    assert st == 403
    rid = doc["approval_id"]
    assert UUID.fullmatch(rid)
    assert doc["error"] == "approval_required" and doc["rule"] == "web-put"
    assert f"airlock approvals approve {rid}" in doc["message"]
    assert not [s for s in e.web.seen if s[0] == "PUT"]
    vote(e, rid, "approve")
    st, doc = http_post(e, b"{}", "/items/7", "PUT")
    assert st == 200
    # `once`: used up
    st, doc = http_post(e, b"{}", "/items/7", "PUT")
    assert st == 403 and doc["approval_id"] != rid
    evs = wait_audit(e, lambda evs: any(ev.get("approval_id") == rid and ev.get("decision")
                                        == "allow" for ev in evs))
    used = [ev for ev in evs if ev.get("approval_id") == rid and ev.get("decision") == "allow"]
    assert used[0]["reason"].startswith("approval_grant:")


def test_http_disconnect_while_held_cancels(env):
    e = env
    s = socket.create_connection(("127.0.0.1", e.httpport), timeout=WAIT)
    s.sendall(("POST /orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + mint(e, "bot")
               + "\r\nContent-Length: 2\r\n\r\n{}").encode())
    req = one_pending(e, "api")
    s.close()
    doc = wait_state(e, req["id"], "cancelled")
    assert doc.get("reason") == "client_disconnected"
    assert not [x for x in e.web.seen if x[0] == "POST"]
