"""Audit log end to end: /v1/decide records decisions, strict mode survives
SIGKILL, the chain detects tampering, and a store that cannot commit
refuses actions instead of letting them through unaudited."""
import gzip
import hashlib
import json
import os
import signal
import sqlite3
import struct
import subprocess
import threading
import time
import uuid

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


# ---- session recordings named by the chain (docs/recordings.md "Audit events") ----
# The helpers below write events the way the gateway does, from the canonical
# form as docs/audit.md describes it (an independent implementation: if the
# C code and the documentation disagree, verify fails here).

def _canon_str(v):
    if v is None:
        return b"\0"
    v = v.encode() if isinstance(v, str) else v
    return b"\x01" + struct.pack(">I", len(v)) + v


def _canon_list(v):
    return struct.pack(">I", len(v)) + b"".join(_canon_str(x) for x in v)


def canonical(ev):
    """docs/audit.md "Chain format", schema 3."""
    g = ev.get
    b = b"airlock-audit-v1\0" + _canon_str(ev["id"]) + struct.pack(">q", ev["time_us"])
    for k in ("kind", "session_id", "agent", "subject", "issuer"):
        b += _canon_str(g(k))
    b += _canon_list(g("groups", [])) + bytes([g("groups_truncated", 0)])
    b += _canon_str(g("target")) + _canon_str(g("protocol")) + _canon_str(g("action"))
    b += bytes([g("action_truncated", 0)]) + _canon_str(g("class"))
    b += _canon_list(g("tables", [])) + bytes([g("tables_truncated", 0)])
    for k in ("decision", "rule", "reason", "approval_id", "ref_id"):
        b += _canon_str(g(k))
    b += struct.pack(">q", g("rows", -1)) + _canon_str(g("status"))
    b += struct.pack(">q", g("duration_us", -1)) + _canon_str(g("error"))
    rec = g("recording") is not None or g("recording_sha256") is not None
    up, down = g("bytes_up", -1), g("bytes_down", -1)
    if up >= 0 or down >= 0 or rec:
        b += struct.pack(">qq", up, down)
    if rec:
        b += _canon_str(g("recording")) + _canon_str(g("recording_sha256"))
    return b


def append_events(db, events):
    """Appends events (dicts of audit fields) to the chain of the SQLite store
    at db, as the writer would; returns their seqs."""
    con = sqlite3.connect(db)
    head = con.execute("SELECT seq, hash FROM audit_event ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = head if head else (0, b"\0" * 32)
    seqs = []
    for ev in events:
        ev = dict(ev)
        ev.setdefault("id", str(uuid.uuid4()))
        ev.setdefault("time_us", int(time.time() * 1e6))
        h = hashlib.sha256(prev + canonical(ev)).digest()
        seq += 1
        row = {"seq": seq, "prev_hash": prev, "hash": h,
               "groups": json.dumps(ev.pop("groups", [])),
               "tables": json.dumps(ev.pop("tables", [])),
               "groups_truncated": 0, "action_truncated": 0, "tables_truncated": 0}
        for k in ("rows", "duration_us", "bytes_up", "bytes_down"):
            if ev.get(k, -1) < 0:
                ev.pop(k, None)
        row.update(ev)
        cols = ",".join(row)
        con.execute(f"INSERT INTO audit_event ({cols}) VALUES ({','.join('?' * len(row))})",
                    list(row.values()))
        prev = h
        seqs.append(seq)
    con.commit()
    con.close()
    return seqs


def put_recording(data_dir, session_id, lines, day="2026/11/23"):
    """Writes <data_dir>/recordings/<day>/<session>.jsonl.gz; returns
    (relative path, SHA-256 hex) as the session's closing event carries them."""
    rel = f"{day}/{session_id}.jsonl.gz"
    path = os.path.join(data_dir, "recordings", rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = gzip.compress("".join(json.dumps(x) + "\n" for x in lines).encode())
    with open(path, "wb") as f:
        f.write(data)
    return rel, hashlib.sha256(data).hexdigest()


def session_event(session_id, rel, sha, **kw):
    ev = {"kind": "session_end", "action": "session", "session_id": session_id, "agent": "bot",
          "target": "db", "protocol": "postgres", "reason": "client closed",
          "duration_us": 1500, "bytes_up": 120, "bytes_down": 4096,
          "recording": rel, "recording_sha256": sha}
    ev.update(kw)
    return ev


def removal_event(rel, sha, reason="retention: older than 90d"):
    return {"kind": "recording", "action": "remove", "reason": reason, "recording": rel,
            "recording_sha256": sha}


def test_verify_checks_recordings(gateway):
    g = gateway(CFG)
    tok = mint(g.cfg, "bot")
    assert g.post("/v1/decide", {"target": "db", "sql": "UPDATE t SET v = 1"}, tok)[0] == 200
    g.stop()
    data, db = os.path.dirname(_db(g.cfg)), _db(g.cfg)
    verify = ["audit", "verify", "-c", g.cfg]
    r = run(verify)
    assert r.returncode == 0 and "recordings intact" not in r.stdout, r.stdout + r.stderr

    sid = "0193a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b"
    rel, sha = put_recording(data, sid, [
        {"type": "session", "version": 1, "session_id": sid, "protocol": "postgres"},
        {"t": 0.01, "type": "query", "sql": "SELECT 1", "decision": "allow"},
        {"t": 0.02, "type": "close", "reason": "client closed"}])
    (seq,) = append_events(db, [session_event(sid, rel, sha)])
    r = run(verify)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "audit chain intact" in r.stdout
    assert "recordings intact: 1 checked, 0 removed by retention" in r.stdout

    evs = query(g.cfg, "--kind", "session_end")
    assert len(evs) == 1
    assert (evs[0]["recording"], evs[0]["recording_sha256"]) == (rel, sha)
    assert (evs[0]["bytes_up"], evs[0]["bytes_down"]) == (120, 4096)

    where = f"{rel} (session {sid}, audit seq {seq})"
    path = os.path.join(data, "recordings", rel)
    blob = bytearray(open(path, "rb").read())
    blob[len(blob) // 2] ^= 0x01
    open(path, "wb").write(bytes(blob))
    r = run(verify)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"recording changed: {where}\n" in r.stdout

    os.unlink(path)
    r = run(verify)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"recording missing: {where}\n" in r.stdout
    # --recordings reads another directory (here a different file by that name)
    copy = os.path.join(os.path.dirname(data), "copy")
    put_recording(copy, sid, [])
    r = run(verify + ["--recordings", os.path.join(copy, "recordings")])
    assert r.returncode == 1 and f"recording changed: {where}" in r.stdout

    append_events(db, [removal_event(rel, sha)])
    r = run(verify)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "recordings intact: 0 checked, 1 removed by retention" in r.stdout

    (bad,) = append_events(db, [session_event(sid, "../../../etc/passwd", sha)])
    r = run(verify)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"recording path invalid: ../../../etc/passwd (session {sid}, audit seq {bad})" \
        in r.stdout
    # an edit of the recording column is an edit of the chain
    con = sqlite3.connect(db)
    con.execute("UPDATE audit_event SET recording = ? WHERE seq = ?", (rel, bad))
    con.commit()
    con.close()
    r = run(verify)
    assert r.returncode == 1 and f"audit chain BROKEN at event seq {bad}" in r.stdout
