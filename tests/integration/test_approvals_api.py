"""Approvals through the admin API and `airlock approvals`: requests raised by
a real agent through the PostgreSQL gateway (rules in `retry` mode, so each
attempt is refused at once with the request id), then listed, approved and
denied by other principals with their own dev tokens.

Needs the PostgreSQL gateway's approval wiring (src/proto/approval_hold.c):
a statement an `approve` rule holds in retry mode fails with an error that
names the request id."""
import json
import re
import time

import psycopg
import pytest

from conftest import free_port, run

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
    listen: 127.0.0.1:{p1}
    tls: off
    upstream:
      host: 127.0.0.1
      port: {upport}
      database: app
      user: airlock_up
      password_env: AIRLOCK_TEST_UPSTREAM_PW
  - name: twodb
    protocol: postgres
    listen: 127.0.0.1:{p2}
    tls: off
    upstream:
      host: 127.0.0.1
      port: {upport}
      database: app
      user: airlock_up
      password_env: AIRLOCK_TEST_UPSTREAM_PW
  - name: fastdb
    protocol: postgres
    listen: 127.0.0.1:{p3}
    tls: off
    upstream:
      host: 127.0.0.1
      port: {upport}
      database: app
      user: airlock_up
      password_env: AIRLOCK_TEST_UPSTREAM_PW
agents:
  - { name: bot, issuer: airlock-dev, subject: bot, owner: bot-owner@example.com, groups: [bots] }
  - { name: selfy, issuer: airlock-dev, subject: selfy, owner: o@example.com, groups: [dba, approvers] }
  - { name: alice, issuer: airlock-dev, subject: alice, owner: o@example.com, groups: [dba, approvers] }
  - { name: bob, issuer: airlock-dev, subject: bob, owner: o@example.com, groups: [dba, approvers] }
  - { name: carol, issuer: airlock-dev, subject: carol, owner: o@example.com, groups: [approvers] }
  - { name: dave, issuer: airlock-dev, subject: dave, owner: o@example.com, groups: [dba] }
  - { name: aud, issuer: airlock-dev, subject: aud, owner: o@example.com, groups: [security] }
admin:
  roles: { admin: [oncall], approver: [approvers], auditor: [security] }
policies:
  - { name: reads, who: ["*"], targets: [appdb, twodb, fastdb], when: { sql: [read] }, action: allow }
  - name: schema-changes
    who: [bot, selfy]
    targets: [appdb]
    when: { sql: [ddl] }
    action: approve
    approvers: [dba]
    mode: retry
    timeout: 10m
  - name: two-person
    who: [bot]
    targets: [twodb]
    when: { sql: [ddl] }
    action: approve
    approvers: [dba]
    min_approvals: 2
    mode: retry
    timeout: 10m
  - name: quick
    who: [bot]
    targets: [fastdb]
    when: { sql: [ddl] }
    action: approve
    approvers: [dba]
    mode: retry
    timeout: 2s
"""

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
FIELDS = {"id", "agent", "target", "action", "rule", "state", "requested_at", "expires_at"}


@pytest.fixture
def env(gateway, pg, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRLOCK_TEST_UPSTREAM_PW", pg.password)
    ports = {"p1": free_port(), "p2": free_port(), "p3": free_port()}
    text = CFG.replace("{upport}", str(pg.port))
    for k, v in ports.items():
        text = text.replace("{" + k + "}", str(v))

    class Env:
        pass

    e = Env()
    e.g = gateway(text)
    e.pg = pg
    e.__dict__.update(ports)
    e.tmp = tmp_path
    e.tokens = {}
    return e


def mint(e, agent):
    if agent not in e.tokens:
        r = run(["token", "mint", "-c", e.g.cfg, "--agent", agent])
        assert r.returncode == 0, r.stderr
        e.tokens[agent] = r.stdout.strip()
    return e.tokens[agent]


def token_file(e, agent):
    p = e.tmp / f"{agent}.token"
    p.write_text(mint(e, agent) + "\n")
    return str(p)


def cli(e, agent, *args):
    """`airlock approvals ...` as agent (its token via --server/--token-file);
    agent None = the bootstrap token via -c."""
    if agent is None:
        return run(["approvals", *args, "-c", e.g.cfg])
    return run(["approvals", *args, "--server", e.g.admin, "--token-file", token_file(e, agent)])


def raise_request(e, port, sql, agent="bot"):
    """Runs sql through the gateway as agent; an approve rule in retry mode
    refuses it, naming the request. Returns (request id, error text)."""
    with psycopg.connect(host="127.0.0.1", port=port, user=agent, dbname="app",
                         password=mint(e, agent), sslmode="disable", connect_timeout=10,
                         autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as ei:
            conn.execute(sql)
    msg = str(ei.value)
    m = UUID.search(msg)
    assert m, f"the refusal names no approval request (gateway wiring missing?): {msg!r}"
    return m.group(0), msg


def run_sql(e, port, sql, agent="bot"):
    with psycopg.connect(host="127.0.0.1", port=port, user=agent, dbname="app",
                         password=mint(e, agent), sslmode="disable", connect_timeout=10,
                         autocommit=True) as conn:
        conn.execute(sql)


def api_get(e, path, agent=None):
    st, _, body = e.g.get(path, mint(e, agent) if agent else bootstrap(e))
    return st, json.loads(body) if body else None


def api_post(e, path, body, agent=None):
    return e.g.post(path, body, mint(e, agent) if agent else bootstrap(e))


def bootstrap(e):
    import pathlib
    return (pathlib.Path(e.tmp) / "var" / "admin-token").read_text().strip()


def audit_events(e, approval_id, want=1):
    """The admin audit events naming approval_id, once at least `want` of
    them have been written (async events reach the store within a flush)."""
    deadline = time.time() + 10
    while True:
        st, evs = api_get(e, "/v1/audit?kind=admin&limit=200", "aud")
        assert st == 200, evs
        mine = [ev for ev in evs if ev.get("approval_id") == approval_id]
        if len(mine) >= want or time.time() > deadline:
            return mine
        time.sleep(0.2)


# ---- tests ---------------------------------------------------------------------

def test_list_fields_and_approve_via_api(env):
    rid, msg = raise_request(env, env.p1, "CREATE TABLE appr_api_1 (a int)")
    st, lst = api_get(env, "/v1/approvals?state=pending", "alice")
    assert st == 200 and isinstance(lst, list)
    mine = [r for r in lst if r["id"] == rid]
    assert len(mine) == 1
    r = mine[0]
    assert FIELDS <= set(r), set(r)
    assert (r["agent"], r["target"], r["rule"], r["state"]) == ("bot", "appdb", "schema-changes",
                                                                 "pending")
    assert r["action"].startswith("CREATE TABLE appr_api_1")
    st, one = api_get(env, f"/v1/approvals/{rid}", "aud")  # auditors may read
    assert st == 200 and one["id"] == rid

    # a principal without the approver role is refused before the library looks
    st, body = api_post(env, f"/v1/approvals/{rid}/approve", {}, "dave")
    assert st == 403 and body["error"] == "forbidden", body
    st, body = api_post(env, f"/v1/approvals/{rid}/approve", {}, "aud")
    assert st == 403, body

    st, body = api_post(env, f"/v1/approvals/{rid}/approve", {"for": "15m", "reason": "ok"},
                        "alice")
    assert st == 200, body
    assert body["state"] == "approved" and body["grant_id"] and body["grant_kind"] == "duration"
    st, body2 = api_post(env, f"/v1/approvals/{rid}/approve", {}, "bob")
    assert st == 409 and body2["error"] == "not_pending" and body2["state"] == "approved"
    # the grant lets the same statement through now
    run_sql(env, env.p1, "CREATE TABLE appr_api_1 (a int)")
    assert env.pg.psql_local("SELECT to_regclass('appr_api_1') IS NOT NULL", db="app").strip() == "t"
    evs = audit_events(env, rid, want=2)
    ok = [ev for ev in evs if ev["kind"] == "admin" and ev["decision"] == "allow"]
    assert ok and body["grant_id"] in ok[0]["reason"] and ok[0]["agent"] == "alice"
    refused = [ev for ev in evs if ev["kind"] == "admin" and ev["decision"] == "deny"]
    assert refused and refused[0]["reason"] == "not_pending"


def test_unknown_bad_grant_and_role_errors(env):
    rid, _ = raise_request(env, env.p1, "CREATE TABLE appr_api_2 (a int)")
    st, body = api_post(env, "/v1/approvals/0190f5c2-0000-7000-8000-000000000000/approve", {},
                        "alice")
    assert st == 404 and body["error"] == "unknown_request" and body["reason"] == "unknown_request"
    st, body = api_get(env, "/v1/approvals/0190f5c2-0000-7000-8000-000000000000", "alice")
    assert st == 404 and body["error"] == "unknown_request"
    st, body = api_post(env, f"/v1/approvals/{rid}/approve", {"for": "30d"}, "alice")
    assert st == 400 and body["error"] == "bad_grant"
    st, body = api_post(env, f"/v1/approvals/{rid}/deny", {}, "alice")
    assert st == 400 and body["error"] == "reason_required"
    st, body = api_get(env, "/v1/approvals?state=nope", "alice")
    assert st == 400 and body["error"] == "bad_filter"
    st, _, _ = env.g.get("/v1/approvals")
    assert st == 401
    # still pending after all that
    st, one = api_get(env, f"/v1/approvals/{rid}", "alice")
    assert one["state"] == "pending"


def test_self_approval_and_group_checks(env):
    rid, _ = raise_request(env, env.p1, "CREATE TABLE appr_api_3 (a int)", agent="selfy")
    st, body = api_post(env, f"/v1/approvals/{rid}/approve", {}, "selfy")
    assert st == 403 and body["error"] == "self_approval", body
    st, body = api_post(env, f"/v1/approvals/{rid}/deny", {"reason": "no"}, "selfy")
    assert st == 403 and body["error"] == "self_approval", body
    # carol holds the approver role but not the rule's dba group
    st, body = api_post(env, f"/v1/approvals/{rid}/approve", {}, "carol")
    assert st == 403 and body["error"] == "not_an_approver", body
    r = cli(env, "carol", "approve", rid)
    assert r.returncode == 1 and "not_an_approver" in r.stderr, r.stderr
    evs = audit_events(env, rid, want=4)
    assert {"self_approval", "not_an_approver"} <= {ev["reason"] for ev in evs}
    st, one = api_get(env, f"/v1/approvals/{rid}", "alice")
    assert one["state"] == "pending"


def test_min_approvals_two(env):
    rid, _ = raise_request(env, env.p2, "CREATE TABLE appr_api_4 (a int)")
    st, body = api_post(env, f"/v1/approvals/{rid}/approve", {}, "alice")
    assert st == 200 and body["state"] == "pending" and (body["approvals"], body["needed"]) == (1, 2)
    st, body = api_post(env, f"/v1/approvals/{rid}/approve", {}, "alice")
    assert st == 409 and body["error"] == "already_voted"
    r = cli(env, "bob", "approve", rid, "--reason", "second pair of eyes")
    assert r.returncode == 0, r.stderr
    assert "approved" in r.stdout and "grant" in r.stdout
    st, one = api_get(env, f"/v1/approvals/{rid}", "alice")
    assert one["state"] == "approved" and len([v for v in one["votes"] if v["vote"] == "approve"]) == 2


def test_deny_with_reason_via_cli(env):
    rid, _ = raise_request(env, env.p1, "DROP TABLE IF EXISTS appr_api_5")
    r = cli(env, "alice", "deny", rid)
    assert r.returncode == 2  # --reason is required
    r = cli(env, "alice", "deny", rid, "--reason", "not during the freeze")
    assert r.returncode == 0, r.stderr
    st, one = api_get(env, f"/v1/approvals/{rid}", "alice")
    assert one["state"] == "denied" and one["reason"] == "not during the freeze"
    r = cli(env, "bob", "approve", rid)
    assert r.returncode == 1 and "not_pending" in r.stderr
    evs = audit_events(env, rid, want=2)
    assert any(ev["decision"] == "allow" and "not during the freeze" in ev["reason"] for ev in evs)


def test_cli_list_json_and_table(env):
    rid, _ = raise_request(env, env.p1, "CREATE TABLE appr_api_6 (a int)")
    r = cli(env, "alice", "list", "--state", "pending", "--json")
    assert r.returncode == 0, r.stderr
    arr = json.loads(r.stdout)
    assert isinstance(arr, list)
    mine = [x for x in arr if x["id"] == rid]
    assert mine and FIELDS <= set(mine[0]) and all(x["state"] == "pending" for x in arr)
    r = cli(env, None, "list")  # bootstrap token via -c
    assert r.returncode == 0, r.stderr
    line = [ln for ln in r.stdout.splitlines() if ln.startswith(rid)]
    assert line and "schema-changes" in line[0] and "pending" in line[0]
    assert "CREATE TABLE appr_api_6" in line[0]
    # bootstrap approves; the CLI says what happened
    r = cli(env, None, "approve", rid, "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["state"] == "approved", r.stderr
    r = cli(env, None, "approve", "0190f5c2-0000-7000-8000-000000000000")
    assert r.returncode == 1 and "unknown_request" in r.stderr
    r = run(["approvals", "list", "--server", f"http://127.0.0.1:{free_port()}", "--token-file",
             token_file(env, "alice")])
    assert r.returncode == 3
    r = run(["approvals", "frobnicate"])
    assert r.returncode == 2


def test_timeout_via_control_loop_tick(env):
    rid, _ = raise_request(env, env.p3, "CREATE TABLE appr_api_7 (a int)")
    # GET /v1/approvals/ID does not time anything out itself: only the
    # control loop's timer can move the request to timed_out.
    st, one = api_get(env, f"/v1/approvals/{rid}", "alice")
    assert st == 200 and one["state"] == "pending"
    deadline = time.time() + 15
    while time.time() < deadline:
        st, one = api_get(env, f"/v1/approvals/{rid}", "alice")
        if one["state"] != "pending":
            break
        time.sleep(0.2)
    assert one["state"] == "timed_out", one
    st, body = api_post(env, f"/v1/approvals/{rid}/approve", {}, "alice")
    assert st == 409 and body["error"] in ("not_pending", "expired")
