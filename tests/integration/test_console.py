"""The admin web console (GET / on the admin listener) in a real browser:
Debian's chromium, headless, driven by playwright-core
(tests/console/console_test.js; `npm ci` in tests/console installs it).

An agent's DDL is held by an `approve` rule in `wait` mode on the
PostgreSQL gateway; an approver signs in to the console with their bearer
token, sees the exact statement, approves it, and the held statement
completes."""
import json
import os
import shutil
import subprocess
import threading
import time

import psycopg
import pytest

from conftest import ROOT, free_port, run

CONSOLE_DIR = os.path.join(ROOT, "tests", "console")
CHROMIUM = "/usr/bin/chromium"

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
agents:
  - { name: bot, issuer: airlock-dev, subject: bot, owner: bot-owner@example.com, groups: [bots] }
  - { name: alice, issuer: airlock-dev, subject: alice, owner: o@example.com, groups: [dba, approvers, security] }
admin:
  roles: { approver: [approvers], auditor: [security] }
policies:
  - { name: reads, who: ["*"], targets: [appdb], when: { sql: [read] }, action: allow }
  - name: schema-changes
    who: [bot]
    targets: [appdb]
    when: { sql: [ddl] }
    action: approve
    approvers: [dba]
    mode: wait
    timeout: 2m
"""

# The comment holds markup: the console must show it as text, not run it.
SQL = "CREATE TABLE console_held (a int) /* <img src=x onerror=alert(1)><b>bold</b> */"


def need_browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium is not installed (scripts/install-deps)")
    if not shutil.which("node"):
        pytest.skip("node is not installed (scripts/install-deps)")
    if not os.path.isdir(os.path.join(CONSOLE_DIR, "node_modules", "playwright-core")):
        pytest.skip("playwright-core is not installed: cd tests/console && npm ci")


def mint(cfg, agent):
    r = run(["token", "mint", "-c", cfg, "--agent", agent])
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_console_headers(gateway, pg, monkeypatch):
    monkeypatch.setenv("AIRLOCK_TEST_UPSTREAM_PW", pg.password)
    g = gateway(CFG.replace("{pgport}", str(free_port())).replace("{upport}", str(pg.port)))
    st, hdrs, body = g.get("/")
    h = {k.lower(): v for k, v in hdrs.items()}
    assert st == 200 and h["content-type"].startswith("text/html")
    csp = h["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert h["x-frame-options"] == "DENY"
    assert h["x-content-type-options"] == "nosniff"
    assert '<script src="/console.js"' in body and "<script>" not in body
    st, hdrs, js = g.get("/console.js")
    assert st == 200 and "javascript" in {k.lower(): v for k, v in hdrs.items()}["content-type"]
    assert "innerHTML" not in js  # every value is rendered with textContent
    st, _, _ = g.get("/console.css")
    assert st == 200
    st, _, _ = g.get("/nope.js")
    assert st == 404


def test_console_approves_held_statement(gateway, pg, monkeypatch, tmp_path):
    need_browser()
    monkeypatch.setenv("AIRLOCK_TEST_UPSTREAM_PW", pg.password)
    pgport = free_port()
    g = gateway(CFG.replace("{pgport}", str(pgport)).replace("{upport}", str(pg.port)))
    pg.psql_local("DROP TABLE IF EXISTS console_held", db="app")
    bot = mint(g.cfg, "bot")
    tok = tmp_path / "alice.token"
    tok.write_text(mint(g.cfg, "alice") + "\n")

    outcome = {}

    def held():
        try:
            with psycopg.connect(host="127.0.0.1", port=pgport, user="bot", dbname="app",
                                 password=bot, sslmode="disable", connect_timeout=10,
                                 autocommit=True) as conn:
                t0 = time.time()
                conn.execute(SQL)
                outcome["ok"] = time.time() - t0
        except Exception as e:  # reported below
            outcome["error"] = repr(e)

    t = threading.Thread(target=held, daemon=True)
    t.start()
    # the statement is held, not refused
    deadline = time.time() + 15
    pending = []
    while time.time() < deadline and not pending:
        st, _, body = g.get("/v1/approvals?state=pending", tok.read_text().strip())
        pending = [r for r in json.loads(body) if r["action"].startswith("CREATE TABLE console_held")]
        time.sleep(0.2)
    assert pending, g.logs()
    assert t.is_alive() and not outcome, outcome

    r = subprocess.run(["node", os.path.join(CONSOLE_DIR, "console_test.js"), g.admin, str(tok),
                        "CREATE TABLE console_held"],
                       cwd=CONSOLE_DIR, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, CHROMIUM=CHROMIUM))
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout.strip().splitlines()[-1])
    assert rep["login_visible"] and "refused" in rep["bad_login_error"]
    assert "alice" in rep["who"] and rep["token_in_session_storage"]
    assert rep["card_id"] == pending[0]["id"]
    assert rep["action_text"] == SQL  # exact, as text
    assert rep["injected_elements"] == 0
    assert "bot-owner@example.com" in rep["card_text"] and "schema-changes" in rep["card_text"]
    assert "approved" in rep["status"], rep
    assert rep["audit_rows"] > 0
    assert rep["csp_violations"] == [], rep
    assert not [e for e in rep["console_errors"] if "Content Security Policy" in e], rep

    t.join(30)
    assert outcome.get("ok") is not None, outcome
    assert pg.psql_local("SELECT to_regclass('console_held') IS NOT NULL", db="app").strip() == "t"
    st, _, body = g.get(f"/v1/approvals/{rep['card_id']}", tok.read_text().strip())
    doc = json.loads(body)
    assert doc["state"] == "approved"
    assert any(v["reason"] == "looks fine, from the console" for v in doc["votes"])


def test_console_session_timeline(gateway, pg, monkeypatch, tmp_path):
    """The session timeline: a recording opened by id (a closed session) and
    from the live sessions table; recorded markup stays text."""
    need_browser()
    from test_replay import pg_lines, uuid7, write_recording
    monkeypatch.setenv("AIRLOCK_TEST_UPSTREAM_PW", pg.password)
    pgport = free_port()
    g = gateway(CFG.replace("{pgport}", str(pgport)).replace("{upport}", str(pg.port)))
    hostile = '<img src=x onerror="window.__xss=1"><b>bold</b><script>window.__xss=1</script>'
    sid = uuid7(tail="7abc-8def-00000000c0de")
    lines = pg_lines(sid)
    lines[2]["sql"] = "SELECT name FROM orders /* " + hostile + " */"
    lines[3]["values"] = [hostile, {"base64": "AAEC"}]
    lines[0]["target"] = hostile
    write_recording(tmp_path / "var", sid, lines)  # after start: a closed recording
    tok = tmp_path / "alice.token"
    tok.write_text(mint(g.cfg, "alice") + "\n")
    bot = mint(g.cfg, "bot")
    with psycopg.connect(host="127.0.0.1", port=pgport, user="bot", dbname="app", password=bot,
                         sslmode="disable", connect_timeout=10, autocommit=True) as conn:
        conn.execute("SELECT 1")
        st, _, body = g.get("/v1/sessions", tok.read_text().strip())
        live = [s["id"] for s in json.loads(body)["sessions"]]
        assert len(live) == 1, body
        r = subprocess.run(["node", os.path.join(CONSOLE_DIR, "timeline_test.js"), g.admin,
                            str(tok), sid, uuid7(tail="7abc-8def-00000000dead"), live[0]],
                           cwd=CONSOLE_DIR, capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, CHROMIUM=CHROMIUM))
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout.strip().splitlines()[-1])
    rows = rep["rows"]
    # [t, type, statement/request, decision, result, duration], all as text
    assert ["+0.100s", "query", lines[2]["sql"], "allow (rule reads)", "", ""] in rows, rows
    assert ["+0.110s", "row", hostile + " | (base64) AAEC", "", "", ""] in rows, rows
    assert ["+0.130s", "complete", "SELECT 3", "", "3 rows", "4.1 ms"] in rows, rows
    assert ["+0.300s", "query", "DROP TABLE orders",
            "deny (rule no-ddl): schema changes need approval", "", ""] in rows, rows
    assert ["+0.301s", "error", "airlock: DROP TABLE is not allowed", "error (airlock)",
            "SQLSTATE 42501", ""] in rows, rows
    assert rows[-1][1] == "close" and "56789" in rows[-1][4]
    assert [x[1] for x in rows][:3] == ["identity", "query", "row"]
    assert hostile in rep["head"] and sid in rep["head"]
    assert rep["injected_elements"] == 0 and not rep["xss"], rep
    assert rep["error"] == ""
    assert "not_found" in rep["missing_error"] and rep["missing_rows"] == 0, rep
    assert "36 characters" in rep["bad_id_error"]
    assert rep["live_input"] == live[0]
    assert rep["csp_violations"] == [], rep
    assert not [e for e in rep["console_errors"] if "Content Security Policy" in e], rep
