"""Audit log end to end: /v1/decide records decisions, strict mode survives
SIGKILL, the chain detects tampering, and a store that cannot commit
refuses actions instead of letting them through unaudited."""
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time

import pytest

from conftest import BIN, free_port, run, write_config, Gateway

CFG = """
server:
  admin_listen: {admin}
  data_dir: {data}
  workers: 2
  drain_timeout: 5s
dev_issuer: true
targets:
  - { name: db, protocol: postgres }
agents:
  - { name: bot, issuer: airlock-dev, subject: bot, owner: o@example.com, groups: [bots] }
  - { name: sec, issuer: airlock-dev, subject: sec, owner: o@example.com, groups: [security] }
admin:
  roles: { auditor: [security] }
policies:
  - { name: reads, who: [bot], targets: [db], when: { sql: [read] }, action: allow }
  - { name: writes, who: [bot], targets: [db], when: { sql: [write] }, action: allow, audit: strict }
  - name: no-secrets
    who: ["*"]
    targets: [db]
    when: { tables: [secrets] }
    action: deny
    message: secrets are off limits
"""


def mint(cfg, agent):
    r = run(["token", "mint", "-c", cfg, "--agent", agent])
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def query(cfg, *args):
    r = run(["audit", "query", "-c", cfg, "--json", *args])
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_decide_records_and_query(gateway):
    g = gateway(CFG)
    tok = mint(g.cfg, "bot")
    st, out = g.post("/v1/decide", {"target": "db", "sql": "SELECT * FROM public.orders"}, tok)
    assert st == 200 and out["decision"] == "allow" and out["rule"] == "reads", out
    st, out = g.post("/v1/decide", {"target": "db", "sql": "DELETE FROM secrets"}, tok)
    assert st == 200 and out["decision"] == "deny" and out["rule"] == "no-secrets", out
    assert out["message"] == "secrets are off limits"
    denied_id = out["audit_id"]
    st, out = g.post("/v1/decide", {"target": "db", "sql": "DROP TABLE x"}, tok)
    assert out["decision"] == "deny" and out["reason"] == "no_matching_rule"
    # bad requests
    assert g.post("/v1/decide", {"target": "db"}, tok)[0] == 400
    assert g.post("/v1/decide", {"target": "db", "sql": "x"}, None)[0] == 401
    time.sleep(0.3)  # the async read record
    evs = query(g.cfg, "--table", "secrets")
    assert [e["id"] for e in evs] == [denied_id]
    e = evs[0]
    for k in ("id", "time", "session_id", "agent", "target", "protocol", "action", "class",
              "tables", "decision", "rule", "reason"):
        assert k in e, k
    assert (e["agent"], e["target"], e["decision"], e["rule"], e["class"]) == \
        ("bot", "db", "deny", "no-secrets", "write")
    assert e["tables"] == ["secrets"]
    assert tok not in json.dumps(evs)
    assert [x["action"] for x in query(g.cfg, "--table", "public.orders")] == \
        ["SELECT * FROM public.orders"]
    assert len(query(g.cfg, "--agent", "bot")) == 3
    assert len(query(g.cfg, "--decision", "deny", "--kind", "decision")) == 2
    assert query(g.cfg, "--agent", "nobody") == []
    # the admin API: auditors only, and every admin read is itself recorded
    st, _, body = g.get("/v1/audit?table=secrets", tok)
    assert st == 403 and "auditor" in json.loads(body)["detail"]
    sec = mint(g.cfg, "sec")
    st, _, body = g.get("/v1/audit?table=secrets", sec)
    assert st == 200 and [x["id"] for x in json.loads(body)] == [denied_id]
    st, _, body = g.get("/v1/audit?since=banana", sec)
    assert st == 400
    boot = open(os.path.join(os.path.dirname(g.cfg), "var", "admin-token")).read().strip()
    assert oct(os.stat(os.path.join(os.path.dirname(g.cfg), "var", "admin-token")).st_mode
               & 0o777) == "0o600"
    st, _, body = g.get("/v1/audit?agent=bot&limit=1", boot)
    assert st == 200 and len(json.loads(body)) == 1
    time.sleep(0.3)
    admin_evs = query(g.cfg, "--agent", "sec")
    assert any(x["kind"] == "admin" and x["action"].startswith("/v1/audit") for x in admin_evs)
    assert boot not in g.logs()
    auth = query(g.cfg, "--kind", "auth")
    assert {(x["reason"], x["action"]) for x in auth} >= {
        ("missing_token", "/v1/decide"), ("missing_role", "/v1/audit")}
    r = run(["audit", "verify", "-c", g.cfg])
    assert r.returncode == 0, r.stdout + r.stderr


def test_sigkill_loses_no_acknowledged_event(tmp_path):
    port = free_port()
    cfg = write_config(tmp_path, CFG.replace("{admin}", f"127.0.0.1:{port}")
                       .replace("{data}", str(tmp_path / "var")))
    g = Gateway(cfg, port, tmp_path)
    tok = mint(cfg, "bot")
    acked, lock, stop = [], threading.Lock(), threading.Event()

    def writer(n):
        i = 0
        while not stop.is_set():
            try:
                st, out = g.post("/v1/decide", {"target": "db",
                                                "sql": f"UPDATE t SET v = {n * 100000 + i}"},
                                 tok, timeout=5)
            except OSError:
                return
            if st == 200:
                assert out["decision"] == "allow"
                with lock:
                    acked.append(out["audit_id"])
            i += 1

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    g.proc.send_signal(signal.SIGKILL)
    g.proc.wait()
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) > 50, len(acked)
    stored = {e["id"] for e in query(cfg, "--limit", "100000")}
    missing = [a for a in acked if a not in stored]
    assert not missing, f"{len(missing)} acknowledged events lost"
    r = run(["audit", "verify", "-c", cfg])
    assert r.returncode == 0, r.stdout + r.stderr


def _db(cfg):
    return os.path.join(os.path.dirname(cfg), "var", "audit.db")


@pytest.mark.parametrize("tamper", ["edit", "delete", "reorder", "insert"])
def test_verify_detects_tampering(gateway, tamper):
    g = gateway(CFG)
    tok = mint(g.cfg, "bot")
    for i in range(5):
        assert g.post("/v1/decide", {"target": "db", "sql": f"UPDATE t SET v = {i}"}, tok)[0] == 200
    g.stop()
    assert run(["audit", "verify", "-c", g.cfg]).returncode == 0
    con = sqlite3.connect(_db(g.cfg))
    if tamper == "edit":
        con.execute("UPDATE audit_event SET decision = 'allow', action = 'SELECT 1' WHERE seq = 3")
    elif tamper == "delete":
        con.execute("DELETE FROM audit_event WHERE seq = 3")
    elif tamper == "reorder":
        a = con.execute("SELECT * FROM audit_event WHERE seq = 2").fetchone()
        b = con.execute("SELECT * FROM audit_event WHERE seq = 3").fetchone()
        con.execute("DELETE FROM audit_event WHERE seq IN (2, 3)")
        cols = ",".join("?" * len(a))
        con.execute(f"INSERT INTO audit_event VALUES ({cols})", (2,) + b[1:])
        con.execute(f"INSERT INTO audit_event VALUES ({cols})", (3,) + a[1:])
    else:
        row = con.execute("SELECT * FROM audit_event WHERE seq = 5").fetchone()
        cols = ",".join("?" * len(row))
        con.execute(f"INSERT INTO audit_event VALUES ({cols})", (6,) + row[1:])
    con.commit()
    con.close()
    r = run(["audit", "verify", "-c", g.cfg])
    assert r.returncode == 1, r.stdout + r.stderr
    assert ("3" if tamper in ("edit", "delete") else "2" if tamper == "reorder" else "6") \
        in r.stdout + r.stderr


def _mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: " + r.stderr.strip())


@pytest.mark.parametrize("failure", ["full", "read-only"])
def test_store_failure_refuses_actions(tmp_path, failure):
    data = tmp_path / "var"
    if failure == "full":
        _mount_tmpfs(str(data), "2m")
    try:
        port = free_port()
        cfg = write_config(tmp_path, CFG.replace("{admin}", f"127.0.0.1:{port}")
                           .replace("{data}", str(data)))
        g = Gateway(cfg, port, tmp_path)
        tok = mint(cfg, "bot")
        st, out = g.post("/v1/decide", {"target": "db", "sql": "UPDATE t SET v = 1"}, tok)
        assert st == 200 and out["decision"] == "allow"
        if failure == "full":
            with open(data / "filler", "wb") as f:
                try:
                    while True:
                        f.write(b"\0" * 65536)
                except OSError:
                    pass
            big = "UPDATE t SET v = '" + "x" * 3000 + "'"
            results = [g.post("/v1/decide", {"target": "db", "sql": big}, tok) for _ in range(40)]
        else:
            # Root ignores file modes; the immutable attribute stops root too.
            # (Not on the -shm index: SQLite maps it, and a mapped page of an
            # immutable file faults instead of failing a write.)
            for f in ("audit.db", "audit.db-wal"):
                if (data / f).exists():
                    r = subprocess.run(["chattr", "+i", str(data / f)], capture_output=True,
                                       text=True)
                    if r.returncode != 0:
                        pytest.skip("chattr +i unsupported here: " + r.stderr.strip())
            results = [g.post("/v1/decide", {"target": "db", "sql": "UPDATE t SET v = 2"}, tok)]
        refused = [o for st, o in results if st == 503]
        assert refused, results[-1]
        assert all(st in (200, 503) for st, _ in results)
        o = refused[0]
        assert o["error"] == "audit_unavailable"
        want = "full" if failure == "full" else ""
        assert "audit record could not be written" in o["detail"] and want in o["detail"], o
        assert "audit record not committed" in g.logs()
        g.proc.kill()
        g.proc.wait()
        g.log.close()
    finally:
        for f in ("audit.db", "audit.db-wal", "audit.db-shm"):
            subprocess.run(["chattr", "-i", str(data / f)], capture_output=True)
        if failure == "full":
            subprocess.run(["umount", "-l", str(data)], capture_output=True)
