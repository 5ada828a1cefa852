"""The PostgreSQL gateway with a real PostgreSQL, psql and psycopg (libpq)."""
import json
import os
import signal
import subprocess
import threading
import time

import psycopg
import pytest

from conftest import BIN, free_port, mint as jw_mint, make_key, jwks_doc, run, std_claims

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
  - { name: bot, issuer: airlock-dev, subject: bot, owner: o@example.com, groups: [bots] }
  - { name: ro, issuer: airlock-dev, subject: ro, owner: o@example.com }
policies:
  - { name: reads, who: ["*"], targets: [appdb], when: { sql: [read] }, action: allow }
  - { name: bot-writes, who: [bot], targets: [appdb], when: { sql: [write] }, action: allow }
  - { name: bot-ddl, who: [bot], targets: [appdb], when: { sql: [ddl], tables: ["scratch*"] }, action: allow }
  - name: no-secrets
    who: ["*"]
    targets: [appdb]
    when: { tables: [secrets] }
    action: deny
    message: secrets are off limits
"""


@pytest.fixture
def gw(gateway, pg, monkeypatch):
    monkeypatch.setenv("AIRLOCK_TEST_UPSTREAM_PW", pg.password)
    port = free_port()
    g = gateway(CFG.replace("{pgport}", str(port)).replace("{upport}", str(pg.port)))
    g.pgport = port
    return g


def token(g, agent="bot", *extra):
    r = run(["token", "mint", "-c", g.cfg, "--agent", agent, *extra])
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def connect(g, tok, **kw):
    return psycopg.connect(host="127.0.0.1", port=g.pgport, user="bot", dbname="app",
                           password=tok, sslmode="disable", connect_timeout=10, **kw)


def psql(g, tok, sql):
    env = dict(os.environ, PGPASSWORD=tok, PGSSLMODE="prefer")
    return subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(g.pgport), "-U", "bot", "-d",
                           "app", "-At", "-c", sql], capture_output=True, text=True, env=env,
                          timeout=30)


def test_psql_query_and_deny(gw, pg):
    tok = token(gw)
    r = psql(gw, tok, "SELECT 40 + 2")
    assert r.returncode == 0 and r.stdout.strip() == "42", r.stderr
    r = psql(gw, tok, "DROP TABLE pg_class_copy")
    assert r.returncode != 0
    assert "airlock: denied by policy: no rule allows this ddl statement" in r.stderr


def test_psycopg_session(gw, pg):
    tok = token(gw)
    with connect(gw, tok, autocommit=True) as c:
        c.execute("CREATE TABLE scratch_t (id int primary key, v text)")
        c.execute("INSERT INTO scratch_t SELECT g, 'v' || g FROM generate_series(1, 100) g")
        # deny keeps the session usable
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as ei:
            c.execute("DROP TABLE other_t")
        assert "airlock: denied by policy" in str(ei.value)
        assert ei.value.sqlstate == "42501"
        assert c.execute("SELECT count(*) FROM scratch_t").fetchone()[0] == 100
        # a write inside a CTE is a write: ro may not
        # prepared statements (extended protocol, server-side prepare)
        for i in range(3):
            row = c.execute("SELECT v FROM scratch_t WHERE id = %s", (i + 1,),
                            prepare=True).fetchone()
            assert row[0] == f"v{i + 1}"
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("SELECT * FROM secrets WHERE id = %s", (1,))
        assert c.execute("SELECT %s::int + 1", (41,)).fetchone()[0] == 42
        # transactions
        with c.transaction():
            c.execute("UPDATE scratch_t SET v = 'x' WHERE id = 1")
        assert c.execute("SELECT v FROM scratch_t WHERE id = 1").fetchone()[0] == "x"
        c.execute("DROP TABLE scratch_t")


def test_multi_statement_refused_whole(gw, pg):
    tok = token(gw)
    with connect(gw, tok, autocommit=True) as c:
        c.execute("CREATE TABLE scratch_m (id int)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("INSERT INTO scratch_m VALUES (1); DROP TABLE other_t")
        assert c.execute("SELECT count(*) FROM scratch_m").fetchone()[0] == 0
        c.execute("DROP TABLE scratch_m")
    ro = token(gw, "ro")
    with connect(gw, ro, autocommit=True) as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("WITH d AS (DELETE FROM pg_temp.x RETURNING *) SELECT * FROM d")
        assert c.execute("SELECT 1").fetchone()[0] == 1


def test_bad_tokens(gw, pg):
    tok = token(gw)
    bad = tok[:-5] + ("A" if tok[-5] != "A" else "B") + tok[-4:]
    with pytest.raises(psycopg.OperationalError) as ei:
        connect(gw, bad)
    assert "airlock: token bad_signature" in str(ei.value)
    with pytest.raises(psycopg.OperationalError) as ei:
        connect(gw, "not-a-token")
    assert "airlock: token malformed" in str(ei.value)


def test_token_expiry_ends_session(gw, pg):
    tok = token(gw, "bot", "--ttl", "2s")
    c = connect(gw, tok, autocommit=True)
    assert c.execute("SELECT 1").fetchone()[0] == 1
    time.sleep(3.5)
    with pytest.raises(psycopg.OperationalError) as ei:
        c.execute("SELECT 1")
    assert "token expired" in str(ei.value)
    c.close()


def test_audit_trail(gw, pg):
    tok = token(gw)
    with connect(gw, tok, autocommit=True) as c:
        c.execute("SELECT 7")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("SELECT * FROM secrets")
    time.sleep(0.3)
    r = run(["audit", "query", "-c", gw.cfg, "--json", "--table", "secrets"])
    evs = json.loads(r.stdout)
    assert evs and evs[0]["decision"] == "deny" and evs[0]["rule"] == "no-secrets"
    assert evs[0]["protocol"] == "postgres" and evs[0]["target"] == "appdb"
    assert evs[0]["session_id"]
    # an allowed read (async audit) is one event: decision and result together
    mine = [e for e in json.loads(run(["audit", "query", "-c", gw.cfg, "--json", "--session",
                                       evs[0]["session_id"]]).stdout)]
    sel = [e for e in mine if e["action"] == "SELECT 7"]
    assert len(sel) == 1, mine
    assert (sel[0]["kind"], sel[0]["decision"], sel[0]["rule"], sel[0]["class"],
            sel[0]["rows"], sel[0]["status"]) == ("decision", "allow", "reads", "read", 1, "00000")
    assert sel[0]["duration_ms"] is not None


def test_copy_in_and_out(gw, pg):
    tok = token(gw)
    with connect(gw, tok, autocommit=True) as c:
        c.execute("CREATE TABLE scratch_copy (id int, v text)")
        with c.cursor() as cur:
            with cur.copy("COPY scratch_copy FROM STDIN") as cp:
                for i in range(5000):
                    cp.write_row((i, f"row {i}"))
        assert c.execute("SELECT count(*) FROM scratch_copy").fetchone()[0] == 5000
        out = []
        with c.cursor() as cur:
            with cur.copy("COPY scratch_copy TO STDOUT") as cp:
                for row in cp.rows():
                    out.append(row)
        assert len(out) == 5000 and out[10] == ("10", "row 10")
        # COPY is decided like any statement: ro may read, not load
        c.execute("DROP TABLE scratch_copy")
    ro = token(gw, "ro")
    with connect(gw, ro, autocommit=True) as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with c.cursor() as cur:
                with cur.copy("COPY pg_class_x FROM STDIN") as cp:
                    cp.write_row((1,))
        assert c.execute("SELECT 1").fetchone()[0] == 1


def test_large_result(gw, pg):
    tok = token(gw)
    with connect(gw, tok) as c:
        cur = c.cursor()
        # ~100 MB of rows through the gateway
        cur.execute("SELECT repeat('x', 1000) FROM generate_series(1, 100000)")
        n = total = 0
        for (v,) in cur:
            n += 1
            total += len(v)
        assert n == 100000 and total == 100_000_000


def test_notice_and_notify(gw, pg):
    tok = token(gw)
    notices, notes = [], []
    with connect(gw, tok, autocommit=True) as c:
        c.add_notice_handler(lambda d: notices.append(d.message_primary))
        c.execute("DROP TABLE IF EXISTS scratch_never_there")
        assert any("does not exist" in n for n in notices), notices
        c.add_notify_handler(lambda n: notes.append((n.channel, n.payload)))
        c.execute("LISTEN airlock_chan")
        with connect(gw, tok, autocommit=True) as c2:
            c2.execute("NOTIFY airlock_chan, 'payload-1'")
            c2.execute("SELECT pg_notify('airlock_chan', 'payload-2')")
        deadline = time.time() + 5
        while len(notes) < 2 and time.time() < deadline:
            c.execute("SELECT 1")
            time.sleep(0.05)
        assert notes == [("airlock_chan", "payload-1"), ("airlock_chan", "payload-2")]


def test_cancel(gw, pg):
    tok = token(gw)
    with connect(gw, tok) as c:
        t = threading.Timer(0.5, c.cancel)
        t.start()
        with pytest.raises(psycopg.errors.QueryCanceled):
            c.execute("SELECT pg_sleep(20)")
        c.rollback()
        assert c.execute("SELECT 2").fetchone()[0] == 2


def test_function_call_message_refused(gw, pg):
    # libpq's PQfn sends 'F'; psycopg does not expose it, so speak the
    # protocol by hand after a normal handshake.
    import socket
    import struct
    tok = token(gw)
    s = socket.create_connection(("127.0.0.1", gw.pgport), timeout=10)

    def msg(t, body):
        return t + struct.pack("!I", len(body) + 4) + body

    params = b"user\0bot\0database\0app\0\0"
    s.sendall(struct.pack("!II", len(params) + 8, 196608) + params)
    buf = b""

    def read_until(tag):
        nonlocal buf
        while True:
            while len(buf) >= 5:
                t, ln = buf[0:1], struct.unpack("!I", buf[1:5])[0]
                if len(buf) < ln + 1:
                    break
                m, buf = buf[:ln + 1], buf[ln + 1:]
                if t == tag:
                    return m
                if t == b"E" and tag != b"E":
                    raise AssertionError(m)
            buf += s.recv(65536)

    read_until(b"R")  # cleartext request
    s.sendall(msg(b"p", tok.encode() + b"\0"))
    read_until(b"Z")
    # FunctionCall: oid 1598 (random()), no args, text result
    s.sendall(msg(b"F", struct.pack("!IHHH", 1598, 0, 0, 0)))
    e = read_until(b"E")
    assert b"42501" in e and b"airlock: denied by policy" in e
    z = read_until(b"Z")
    assert z[5:6] == b"I"
    s.sendall(msg(b"Q", b"SELECT 5\0"))
    d = read_until(b"D")
    assert b"5" in d
    s.close()


@pytest.mark.parametrize("mode", ["simple", "prepared", "extended"])
def test_pgbench_through_airlock(gw, pg, mode):
    # Initialise directly (DDL, VACUUM), then run the tpcb-like script
    # through the gateway: reads and writes allowed, every statement decided.
    subprocess.run(["runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pgbench",
                    "-i", "-s", "1", "-q", "-h", pg.base, "-p", str(pg.port), "-U",
                    "airlock_up", "app"], check=True, capture_output=True)
    tok = token(gw)
    env = dict(os.environ, PGPASSWORD=tok, PGSSLMODE="disable")
    r = subprocess.run(["/usr/lib/postgresql/15/bin/pgbench", "-h", "127.0.0.1", "-p",
                        str(gw.pgport), "-U", "bot", "-M", mode, "-c", "4", "-j", "2", "-t",
                        "50", "-n", "app"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "number of transactions actually processed: 200/200" in r.stdout, r.stdout
    assert "number of failed transactions: 0" in r.stdout, r.stdout


OAUTH_CFG = CFG.replace("    tls: off\n", "    tls: off\n    sasl_oauthbearer: true\n", 1)


def _raw_login(port, first):
    """Startup, then `first(mechs)` -> the SASLInitialResponse body; returns
    (messages received until the connection ends or ReadyForQuery)."""
    import socket
    import struct
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    params = b"user\0bot\0database\0app\0\0"
    s.sendall(struct.pack("!II", len(params) + 8, 196608) + params)
    buf, out = b"", []

    def next_msg():
        nonlocal buf
        while True:
            if len(buf) >= 5:
                ln = struct.unpack("!I", buf[1:5])[0]
                if len(buf) >= ln + 1:
                    m, buf = buf[:ln + 1], buf[ln + 1:]
                    return m
            chunk = s.recv(65536)
            if not chunk:
                return None
            buf += chunk

    def send(t, body):
        s.sendall(t + struct.pack("!I", len(body) + 4) + body)

    m = next_msg()
    out.append(m)
    for body in first(m):
        send(b"p", body)
        while True:
            m = next_msg()
            out.append(m)
            if m is None or m[:1] in (b"Z", b"E") or m[:1] == b"R" and m[5:9] == b"\0\0\0\x0b":
                break
        if m is None or m[:1] in (b"Z", b"E"):
            break
    s.close()
    return out


def _sasl_initial(data):
    import struct
    return b"OAUTHBEARER\0" + struct.pack("!i", len(data)) + data


def test_sasl_oauthbearer(gateway, pg, monkeypatch):
    monkeypatch.setenv("AIRLOCK_TEST_UPSTREAM_PW", pg.password)
    port = free_port()
    g = gateway(OAUTH_CFG.replace("{pgport}", str(port)).replace("{upport}", str(pg.port)))
    tok = token(g)
    # RFC 7628 §3.1 initial client response with the bearer token
    out = _raw_login(port, lambda m: [_sasl_initial(b"n,,\x01auth=Bearer " + tok.encode() +
                                                    b"\x01\x01")])
    assert out[0][:1] == b"R" and b"OAUTHBEARER" in out[0]
    assert out[-1][:1] == b"Z", out
    # discovery (no token): an error status, then failure after the client's kvsep
    out = _raw_login(port, lambda m: [_sasl_initial(b"n,,\x01\x01"), b"\x01"])
    assert any(x and x[:1] == b"R" and b"invalid_token" in x for x in out), out
    assert out[-1] is None or out[-1][:1] == b"E"
    # a bad token is refused with the reason
    bad = tok[:-5] + ("A" if tok[-5] != "A" else "B") + tok[-4:]
    out = _raw_login(port, lambda m: [_sasl_initial(b"n,,\x01auth=Bearer " + bad.encode() +
                                                    b"\x01\x01")])
    assert out[-1][:1] == b"E" and b"airlock: token bad_signature" in out[-1]
    # malformed gs2 header
    out = _raw_login(port, lambda m: [_sasl_initial(b"p=x,,\x01auth=Bearer t\x01\x01")])
    assert out[-1] is None or out[-1][:1] == b"E"


TLS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "tls")


def tls_cfg(mode, up_sslmode="disable", ca="ca.pem"):
    c = CFG.replace("    tls: off\n",
                    f"    tls: {mode}\n    tls_cert_file: {TLS_DIR}/server.pem\n"
                    f"    tls_key_file: {TLS_DIR}/server.key\n", 1)
    return c.replace("      password_env: AIRLOCK_TEST_UPSTREAM_PW\n",
                     "      password_env: AIRLOCK_TEST_UPSTREAM_PW\n"
                     f"      sslmode: {up_sslmode}\n      ca_file: {TLS_DIR}/{ca}\n", 1)


def start_tls(gateway, pg, monkeypatch, *a):
    monkeypatch.setenv("AIRLOCK_TEST_UPSTREAM_PW", pg.password)
    port = free_port()
    g = gateway(tls_cfg(*a).replace("{pgport}", str(port)).replace("{upport}", str(pg.port)))
    g.pgport = port
    return g


def test_tls_required(gateway, pg, monkeypatch):
    g = start_tls(gateway, pg, monkeypatch, "required")
    tok = token(g)
    with psycopg.connect(host="127.0.0.1", port=g.pgport, user="bot", dbname="app", password=tok,
                         sslmode="verify-full", sslrootcert=f"{TLS_DIR}/ca.pem") as c:
        assert c.execute("SELECT 1").fetchone()[0] == 1
        assert c.pgconn.ssl_in_use
        c.execute("SELECT repeat('y', 100000) FROM generate_series(1, 200)").fetchall()
    with pytest.raises(psycopg.OperationalError) as ei:
        connect(g, tok)  # sslmode=disable
    assert "airlock: this listener requires TLS" in str(ei.value)
    # a client that checks the certificate against another CA refuses us
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host="127.0.0.1", port=g.pgport, user="bot", dbname="app",
                        password=tok, sslmode="verify-full",
                        sslrootcert=f"{TLS_DIR}/other-ca.pem", connect_timeout=5)
    r = subprocess.run(["psql", f"host=127.0.0.1 port={g.pgport} dbname=app user=bot "
                        f"sslmode=verify-full sslrootcert={TLS_DIR}/ca.pem", "-Atc", "SELECT 3"],
                       capture_output=True, text=True, env=dict(os.environ, PGPASSWORD=tok))
    assert r.returncode == 0 and r.stdout.strip() == "3", r.stderr


def test_tls_optional(gateway, pg, monkeypatch):
    g = start_tls(gateway, pg, monkeypatch, "optional")
    tok = token(g)
    with connect(g, tok) as c:
        assert not c.pgconn.ssl_in_use
    with psycopg.connect(host="127.0.0.1", port=g.pgport, user="bot", dbname="app", password=tok,
                         sslmode="require") as c:
        assert c.pgconn.ssl_in_use and c.execute("SELECT 2").fetchone()[0] == 2


def test_upstream_tls_verify_full(gateway, pg, monkeypatch):
    g = start_tls(gateway, pg, monkeypatch, "off", "verify-full")
    tok = token(g)
    with connect(g, tok) as c:
        assert c.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
                         ).fetchone()[0] is True


def test_upstream_tls_wrong_ca(gateway, pg, monkeypatch):
    g = start_tls(gateway, pg, monkeypatch, "off", "verify-full", "other-ca.pem")
    with pytest.raises(psycopg.OperationalError) as ei:
        connect(g, token(g))
    assert "TLS to the upstream database failed" in str(ei.value)
    assert "certificate verify failed" in str(ei.value)


def test_auth_timeout_and_max_connections(gateway, pg, monkeypatch):
    import socket
    monkeypatch.setenv("AIRLOCK_TEST_UPSTREAM_PW", pg.password)
    port = free_port()
    text = CFG.replace("    tls: off\n", "    tls: off\n    auth_timeout: 1s\n    max_connections: 2\n", 1)
    g = gateway(text.replace("{pgport}", str(port)).replace("{upport}", str(pg.port)))
    g.pgport = port
    # a client that never finishes start-up is cut off
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"\x00\x00\x00")  # half a length field
    t0 = time.time()
    data = b""
    while True:
        c = s.recv(4096)
        if not c:
            break
        data += c
    assert b"airlock: authentication timeout" in data and time.time() - t0 < 4
    s.close()
    tok = token(g)
    c1, c2 = connect(g, tok), connect(g, tok)
    with pytest.raises(psycopg.OperationalError) as ei:
        connect(g, tok)
    assert "too many connections" in str(ei.value)
    c1.close()
    time.sleep(0.3)
    c3 = connect(g, tok)
    assert c3.execute("SELECT 1").fetchone()[0] == 1
    c2.close()
    c3.close()


def _raw_session(g, tok):
    import socket
    import struct
    s = socket.create_connection(("127.0.0.1", g.pgport), timeout=15)
    params = b"user\0bot\0database\0app\0\0"
    s.sendall(struct.pack("!II", len(params) + 8, 196608) + params)
    buf = [b""]

    def msgs_until(n_z):
        out, z = [], 0
        while z < n_z:
            while len(buf[0]) < 5 or len(buf[0]) < struct.unpack("!I", buf[0][1:5])[0] + 1:
                c = s.recv(65536)
                assert c, out
                buf[0] += c
            ln = struct.unpack("!I", buf[0][1:5])[0]
            m, buf[0] = buf[0][:ln + 1], buf[0][ln + 1:]
            out.append(m)
            z += m[:1] == b"Z"
        return out

    def msg(t, body):
        return t + struct.pack("!I", len(body) + 4) + body

    msgs_until(0) if False else None
    # cleartext request, then the token
    while b"R" not in buf[0][:1]:
        buf[0] += s.recv(65536)
    buf[0] = buf[0][9:]
    s.sendall(msg(b"p", tok.encode() + b"\0"))
    msgs_until(1)
    return s, msg, msgs_until


def test_pipelined_refusals_keep_order(gw, pg):
    import struct
    s, msg, msgs_until = _raw_session(gw, token(gw, "ro"))
    # simple protocol: three queries in one write, the middle one refused
    s.sendall(msg(b"Q", b"SELECT pg_sleep(0.2), 1\0") + msg(b"Q", b"DELETE FROM t\0") +
              msg(b"Q", b"SELECT 3\0"))
    out = msgs_until(3)
    kinds = b"".join(m[:1] for m in out)
    assert kinds == b"TDCZEZTDCZ", kinds
    assert b"42501" in out[4]
    # extended protocol, pipelined batches: ok / refused / ok
    def batch(sql):
        return (msg(b"P", b"\0" + sql + b"\0\0\0") + msg(b"B", b"\0\0\0\0\0\0\0\0") +
                msg(b"E", b"\0\0\0\0\0") + msg(b"S", b""))
    s.sendall(batch(b"SELECT pg_sleep(0.2)") + batch(b"DELETE FROM t") + batch(b"SELECT 7"))
    out = msgs_until(3)
    kinds = b"".join(m[:1] for m in out)
    assert kinds == b"12DCZEZ12DCZ", kinds
    assert b"42501" in out[5]
    s.close()


def test_busy_listen_port_stops_start(tmp_path, pg):
    import socket
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    cfg = tmp_path / "airlock.yaml"
    cfg.write_text(CFG.replace("{admin}", f"127.0.0.1:{free_port()}")
                   .replace("{data}", str(tmp_path / "var")).replace("{pgport}", str(port))
                   .replace("{upport}", str(pg.port)))
    r = subprocess.run([BIN, "serve", "-c", str(cfg)], capture_output=True, text=True, timeout=30)
    busy.close()
    assert r.returncode == 1, r.stderr
    assert "cannot listen for the target" in r.stderr and "Address already in use" in r.stderr


def _audit(g, *args):
    r = run(["audit", "query", "-c", g.cfg, "--json", "--limit", "1000", *args])
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _wait_audit(g, pred, n, *args):
    """At least n events matching pred (async events commit within the
    flush interval)."""
    deadline = time.time() + 10
    while True:
        evs = [e for e in _audit(g, *args) if pred(e)]
        if len(evs) >= n or time.time() > deadline:
            return evs
        time.sleep(0.05)


def test_prepared_statement_each_run_decided_and_audited(gw, pg):
    # A statement prepared once and run again with Bind/Execute only is
    # decided and audited on every run, as a statement (strict ones before
    # the run). psycopg's prepare=True sends the Parse in a batch of its
    # own: its event is the preparation (no rows), each run has its own, and
    # the recording has an `execute` line for each run. (A Bind in the
    # Parse's own batch is the run the Parse's event covers: see
    # test_audit_trail's one event for a psycopg query.)
    pg.psql_local("CREATE TABLE IF NOT EXISTS prep_t (id int, v text)", db="app")
    tok = token(gw)
    with connect(gw, tok, autocommit=True) as c:
        for i in range(5):
            assert c.execute("SELECT %s::int + 1000 AS x", (i,), prepare=True).fetchone() == \
                (1000 + i,)
        for i in range(3):
            c.execute("INSERT INTO prep_t VALUES (%s, 'a')", (i,), prepare=True)
        sid_probe = c.execute("SELECT 'probe-' || pg_backend_pid()").fetchone()[0]
    sel = _wait_audit(gw, lambda e: e["action"] == "SELECT $1::int + 1000 AS x", 6)
    assert len(sel) == 6, sel
    assert sorted(((e["decision"], e["rule"], e["rows"] or 0, e["status"]) for e in sel)) == \
        [("allow", "reads", 0, "00000")] + [("allow", "reads", 1, "00000")] * 5
    assert len({e["session_id"] for e in sel}) == 1
    assert len({e["id"] for e in sel}) == 6
    ins = _wait_audit(gw, lambda e: e["action"] == "INSERT INTO prep_t VALUES ($1, 'a')"
                      and e["kind"] == "decision", 4)
    assert len(ins) == 4 and {e["decision"] for e in ins} == {"allow"}, ins
    assert pg.psql_local("SELECT count(*) FROM prep_t", db="app").strip() == "3"
    assert sid_probe.startswith("probe-")
    # the recording: the first run is its parse line, each later one an execute line
    sid = sel[0]["session_id"]
    deadline = time.time() + 10
    while True:
        r = run(["replay", sid, "-c", gw.cfg, "--json"])
        if r.returncode == 0 or time.time() > deadline:
            break
        time.sleep(0.1)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
    runs = [(x["type"], x["sql"]) for x in lines if x["type"] in ("parse", "execute")]
    assert runs == [("parse", "SELECT $1::int + 1000 AS x")] + \
        [("execute", "SELECT $1::int + 1000 AS x")] * 5 + \
        [("parse", "INSERT INTO prep_t VALUES ($1, 'a')")] + \
        [("execute", "INSERT INTO prep_t VALUES ($1, 'a')")] * 3, runs
    assert all(x["decision"] == "allow" for x in lines if x["type"] == "execute")
    human = run(["replay", sid, "-c", gw.cfg, "--speed", "0"])
    assert human.returncode == 0 and human.stdout.count("execute") >= 8, human.stdout


def test_prepared_statement_decided_again_after_reload(gw, pg):
    # A reload that denies a prepared statement's table refuses its next run
    # (42501, the session goes on); the run after the rule is gone works:
    # a refused run refuses that run only.
    pg.psql_local("CREATE TABLE IF NOT EXISTS prep_r (id int); TRUNCATE prep_r; "
                  "INSERT INTO prep_r VALUES (1)", db="app")
    tok = token(gw)
    text = open(gw.cfg).read()
    deny = text.replace("policies:\n", "policies:\n  - { name: no-prep-r, who: [\"*\"], "
                        "targets: [appdb], when: { tables: [prep_r] }, action: deny, "
                        "message: closed for now }\n", 1)
    q = "SELECT count(*) FROM prep_r WHERE id > %s"

    def refused_now():
        with connect(gw, tok, autocommit=True) as c2:
            try:
                c2.execute("SELECT count(*) FROM prep_r")
                return False
            except psycopg.errors.InsufficientPrivilege:
                return True

    def reload(cfg_text, want_refused):
        open(gw.cfg, "w").write(cfg_text)
        gw.signal(signal.SIGHUP)
        deadline = time.time() + 10
        while refused_now() != want_refused:
            assert time.time() < deadline, gw.logs()
            time.sleep(0.05)

    with connect(gw, tok, autocommit=True) as c:
        for _ in range(3):
            assert c.execute(q, (0,), prepare=True).fetchone() == (1,)
        reload(deny, True)
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as ei:
            c.execute(q, (0,), prepare=True)
        assert "no-prep-r" in str(ei.value) and "closed for now" in str(ei.value)
        assert c.execute("SELECT 1").fetchone() == (1,)
        reload(text, False)
        assert c.execute(q, (0,), prepare=True).fetchone() == (1,)
    evs = _wait_audit(gw, lambda e: e["action"] == "SELECT count(*) FROM prep_r WHERE id > $1"
                      and e["decision"] == "deny", 1)
    assert evs and evs[0]["rule"] == "no-prep-r", evs


def test_prepared_statement_table_capped_and_released(gw, pg):
    # A session tracks at most 4096 prepared statements: the next Parse is
    # refused with 54000 (the session goes on); Close, DEALLOCATE name (bare
    # or quoted) and DEALLOCATE ALL, as a whole allowed Query, release
    # tracked ones.
    s, msg, msgs_until = _raw_session(gw, token(gw))

    def parse(name, sql=b"SELECT 1"):
        return msg(b"P", name + b"\0" + sql + b"\0\0\0") + msg(b"S", b"")

    def kinds(out):
        return b"".join(m[:1] for m in out)

    names = [b"st%d" % i for i in range(4096)]
    s.sendall(b"".join(parse(n) for n in names))
    out = msgs_until(4096)
    assert kinds(out) == b"1Z" * 4096
    s.sendall(parse(b"one_more"))
    out = msgs_until(1)
    assert kinds(out) == b"EZ" and b"54000" in out[0] and b"too many prepared" in out[0], out
    # DEALLOCATE of an unquoted name (folded: St7 is st7), with a comment
    s.sendall(msg(b"Q", b"DEALLOCATE /* x */ PREPARE St7;\0") + parse(b"one_more"))
    out = msgs_until(2)
    assert kinds(out) == b"CZ1Z", out
    # a quoted name, case kept
    s.sendall(msg(b"Q", b'DEALLOCATE "st8"\0') + parse(b"two_more"))
    assert kinds(msgs_until(2)) == b"CZ1Z"
    # Close (statement) releases too
    s.sendall(msg(b"C", b"Sst9\0") + msg(b"S", b"") + parse(b"three_more"))
    assert kinds(msgs_until(2)) == b"3Z1Z"
    # full again: a DEALLOCATE inside a longer string is left alone
    s.sendall(parse(b"four_more"))
    assert b"54000" in msgs_until(1)[0]
    s.sendall(msg(b"Q", b"DEALLOCATE st10; SELECT 1\0") + parse(b"four_more"))
    out = msgs_until(2)
    assert b"54000" in out[-2], out
    # DEALLOCATE ALL empties the table: 4096 new ones fit again
    s.sendall(msg(b"Q", b"deallocate all\0"))
    msgs_until(1)
    s.sendall(b"".join(parse(b"n" + n) for n in names))
    assert kinds(msgs_until(4096)) == b"1Z" * 4096
    # a statement the policy refuses releases nothing (DISCARD: no rule here)
    s.sendall(msg(b"Q", b"DISCARD ALL\0") + parse(b"after_discard"))
    out = msgs_until(2)
    assert kinds(out) == b"EZEZ" and b"42501" in out[0] and b"54000" in out[2], out
    s.sendall(msg(b"Q", b"DEALLOCATE ALL;\0") + parse(b"after_discard"))
    assert kinds(msgs_until(2)) == b"CZ1Z"
    # and a prepared statement still runs (Bind in a later batch: decided again)
    s.sendall(msg(b"B", b"\0after_discard\0\0\0\0\0\0\0") + msg(b"E", b"\0\0\0\0\0") +
              msg(b"S", b""))
    assert kinds(msgs_until(1)) == b"2DCZ"
    s.close()


def test_deep_pipeline_keeps_order_and_results(gw, pg):
    # 300 statements in one write (the in-flight ring grows from 8 while
    # results come back): every result in order, the refused one in its
    # place, and each allowed statement's audit event has its own row count.
    s, msg, msgs_until = _raw_session(gw, token(gw, "ro"))
    n = 300
    qs = [b"SELECT generate_series(1, %d) AS k%d" % (i % 5 + 1, i) for i in range(n)]
    qs[150] = b"DELETE FROM t"
    s.sendall(b"".join(msg(b"Q", q + b"\0") for q in qs))
    out = msgs_until(n)
    batches, cur = [], []
    for m in out:
        cur.append(m)
        if m[:1] == b"Z":
            batches.append(cur)
            cur = []
    assert len(batches) == n
    for i, b in enumerate(batches):
        if i == 150:
            assert b[0][:1] == b"E" and b"42501" in b[0], b
            continue
        assert b[0][:1] == b"T" and (b"k%d\0" % i) in b[0], (i, b[0])
        assert sum(m[:1] == b"D" for m in b) == i % 5 + 1
    s.close()
    evs = _wait_audit(gw, lambda e: (e["action"] or "").startswith("SELECT generate_series(1, ")
                      and " AS k" in e["action"], n - 1)
    rows = {int(e["action"].rsplit(" AS k", 1)[1]): e["rows"] for e in evs}
    assert len(rows) == n - 1 and all(rows[i] == i % 5 + 1 for i in rows), rows
