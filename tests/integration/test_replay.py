"""`airlock replay` and GET /v1/sessions/ID/recording on hand-made
recordings (docs/recordings.md): a PostgreSQL session, an HTTP session, a
tunnel and an asciicast, gzip and plain, written into a data_dir's
recordings tree and read by the real binary.

The helpers (uuid7, write_recording, replay, replay_json) are meant to be
imported by end-to-end tests that record real sessions and replay them."""
import datetime
import gzip
import json
import os
import subprocess
import time

import pytest

from conftest import BIN, free_port, run, write_config

# ---- helpers (importable) ---------------------------------------------------------------


def uuid7(ms=None, tail="7abc-8def-0123456789ab"):
    """A UUIDv7 session id for Unix milliseconds ms (RFC 9562 §5.7)."""
    if ms is None:
        ms = int(time.time() * 1000)
    h = f"{ms:012x}"
    return f"{h[:8]}-{h[8:]}-{tail}"


def day_dir(data_dir, session, ms=None):
    """<data_dir>/recordings/YYYY/MM/DD for the UTC day the id's time names
    (or ms, to put a file elsewhere)."""
    if ms is None:
        h = session.replace("-", "")[:12]
        ms = int(h, 16)
    d = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return os.path.join(str(data_dir), "recordings", f"{d.year:04d}", f"{d.month:02d}",
                        f"{d.day:02d}")


def line_text(x):
    """A recording line: str as is, anything else as compact JSON."""
    return x if isinstance(x, str) else json.dumps(x, separators=(",", ":"))


def write_recording(data_dir, session, lines, ext=".jsonl.gz", day_ms=None):
    """Writes lines (dicts/lists or raw strings) as the session's recording;
    returns its path."""
    d = day_dir(data_dir, session, day_ms)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, session + ext)
    data = "".join(line_text(x) + "\n" for x in lines).encode()
    if ext.endswith(".gz"):
        data = gzip.compress(data)
    with open(path, "wb") as f:
        f.write(data)
    return path


def replay(cfg, session, *args, timeout=60):
    """Runs `airlock replay SESSION -c CFG ARGS...`; the CompletedProcess."""
    return run(["replay", session, "-c", cfg, *args], timeout=timeout)


def replay_json(cfg, session, timeout=60):
    """The recording's lines as `airlock replay --json` prints them, parsed."""
    r = replay(cfg, session, "--json", timeout=timeout)
    assert r.returncode == 0, r.stderr
    return [json.loads(x) for x in r.stdout.splitlines()]


# ---- recordings --------------------------------------------------------------------------

CFG = """
server:
  admin_listen: {admin}
  data_dir: {data}
  workers: 1
  drain_timeout: 5s
dev_issuer: true
targets:
  - name: api
    protocol: http
    listen: 127.0.0.1:{port}
    tls: off
    upstream:
      url: http://127.0.0.1:9
agents:
  - { name: bot, issuer: airlock-dev, subject: bot, owner: o@example.com, groups: [bots] }
  - { name: aud, issuer: airlock-dev, subject: aud, owner: o@example.com, groups: [security] }
admin:
  roles: { auditor: [security] }
"""

ESC_VALUE = "\x1b[2J\x1b]0;pwned\x07bob\u009b31m\u202eevil"
HOSTILE = "<img src=x onerror=alert(1)><b>bold</b>"


def pg_lines(session):
    return [
        {"type": "session", "version": 1, "session_id": session, "protocol": "postgres",
         "target": "orders-db", "client": "127.0.0.1:50412",
         "started": "2026-11-23T16:40:01.123456Z", "started_us": 1795452001123456,
         "database": "app", "user": "agent", "application_name": "psql"},
        {"t": 0.004, "type": "identity", "agent": "etl-bot", "subject": "etl",
         "issuer": "https://idp.example"},
        {"t": 0.1, "type": "query", "sql": "SELECT id, name\nFROM orders ORDER BY id",
         "decision": "allow", "rule": "reads", "reason": "rule"},
        {"t": 0.11, "type": "row", "values": ["1", "alice"]},
        {"t": 0.115, "type": "row", "values": ["22", ESC_VALUE]},
        {"t": 0.12, "type": "row", "values": ["333", None]},
        {"t": 0.13, "type": "complete", "tag": "SELECT 3", "rows": 3, "duration_us": 4100,
         "rows_recorded": 3, "rows_truncated": False},
        {"t": 0.2, "type": "parse", "name": "s1", "sql": "SELECT * FROM orders WHERE id = $1",
         "decision": "allow", "rule": "reads", "reason": "rule"},
        {"t": 0.21, "type": "bind", "statement": "s1", "portal": "",
         "params": ["42", None, {"base64": "AAEC"}]},
        {"t": 0.22, "type": "row", "values": [HOSTILE, {"base64": "AAEC"}]},
        {"t": 0.23, "type": "complete", "tag": "SELECT 1", "rows": 1, "duration_us": 950,
         "rows_recorded": 1, "rows_truncated": False},
        {"t": 0.3, "type": "query", "sql": "DROP TABLE orders", "decision": "deny",
         "rule": "no-ddl", "reason": "schema changes need approval"},
        {"t": 0.301, "type": "error", "sqlstate": "42501",
         "message": "airlock: DROP TABLE is not allowed", "source": "airlock"},
        {"t": 0.4, "type": "query", "sql": "SELECT 1/0", "decision": "allow", "rule": "reads"},
        {"t": 0.41, "type": "error", "sqlstate": "22012", "message": "division by zero",
         "source": "upstream"},
        {"t": 12.5, "type": "close", "reason": "client closed", "bytes_up": 1234,
         "bytes_down": 56789},
    ]


def http_lines(session):
    return [
        {"type": "session", "version": 1, "session_id": session, "protocol": "http",
         "target": "api", "client": "127.0.0.1:40000", "started": "2026-11-23T10:00:00.000000Z",
         "started_us": 1795428000000000},
        {"t": 0.001, "type": "identity", "agent": "bot", "subject": "bot", "issuer": "airlock-dev"},
        {"t": 0.002, "type": "request", "method": "POST", "target": "/v1/orders?token=[redacted]",
         "headers": [["Host", "api.example"], ["Authorization", "[redacted]"],
                     ["X-Evil", "a\x1b[31mred"]],
         "body": '{"item": "book", "qty": 2}', "body_bytes": 26, "body_truncated": False,
         "decision": "allow", "rule": "api-write"},
        {"t": 0.052, "type": "response", "status": 201,
         "headers": [["Content-Type", "application/json"]], "body": '{"id": 77}',
         "body_bytes": 10, "body_truncated": False, "duration_us": 50000},
        {"t": 0.1, "type": "request", "method": "DELETE", "target": "/v1/orders/77",
         "headers": [["Host", "api.example"]], "body_bytes": 0, "decision": "deny",
         "rule": "no-delete", "reason": "deletes are not allowed"},
        {"t": 0.101, "type": "response", "status": 403, "headers": [], "body": "denied",
         "body_bytes": 6, "duration_us": 300},
        {"t": 0.2, "type": "request", "method": "GET", "target": "/big", "headers": [],
         "body_base64": "AAECAw==", "body_bytes": 100000, "body_truncated": True,
         "decision": "allow", "rule": "api-read"},
        {"t": 0.3, "type": "response", "status": 200, "headers": [], "body": "x" * 5000,
         "body_bytes": 5000, "duration_us": 1500000},
        {"t": 1.0, "type": "close", "reason": "client closed", "bytes_up": 300, "bytes_down": 900},
    ]


def tunnel_lines(session):
    return [
        {"type": "session", "version": 1, "session_id": session, "protocol": "tcp",
         "target": "egress", "client": "127.0.0.1:40001", "started": "2026-11-23T10:00:00Z",
         "started_us": 1795428000000000, "agent": "bot"},
        {"t": 0.01, "type": "tunnel", "upstream": "db.example:5432", "decision": "allow",
         "rule": "egress-db"},
        {"t": 3.5, "type": "close", "reason": "upstream closed", "bytes_up": 4096,
         "bytes_down": 8192},
    ]


def cast_lines():
    return [
        {"version": 2, "width": 80, "height": 24, "timestamp": 1795428000},
        [0.1, "o", "$ ls\r\n"],
        [0.2, "i", "secret-typed-input"],
        [0.3, "o", "\x1b[1mfile\x1b[0m\r\n"],
    ]


@pytest.fixture
def env(tmp_path):
    data = tmp_path / "var"
    cfg = write_config(tmp_path, CFG.replace("{admin}", f"127.0.0.1:{free_port()}")
                       .replace("{data}", str(data)).replace("{port}", str(free_port())))
    return cfg, data


# ---- --json -------------------------------------------------------------------------------


def test_json_reproduces_the_lines_exactly(env):
    cfg, data = env
    cases = []
    for i, (lines, ext) in enumerate([(pg_lines, ".jsonl.gz"), (http_lines, ".jsonl"),
                                      (tunnel_lines, ".jsonl.gz")]):
        sid = uuid7(1795428000000 + i)
        body = lines(sid)
        # odd spacing and key order: printed verbatim, not re-encoded
        body[1] = json.dumps(body[1], indent=None, separators=(" ,", " : "))
        write_recording(data, sid, body, ext)
        cases.append((sid, body))
    sid = uuid7(1795428000100)
    write_recording(data, sid, cast_lines(), ".cast.gz")
    cases.append((sid, cast_lines()))
    for sid, body in cases:
        r = replay(cfg, sid, "--json", "--speed", "1")
        assert r.returncode == 0, r.stderr
        assert r.stdout == "".join(line_text(x) + "\n" for x in body)
        assert replay_json(cfg, sid)[-1] == json.loads(line_text(body[-1]))


def test_closed_recording_preferred_and_found_on_another_day(env):
    cfg, data = env
    sid = uuid7()
    write_recording(data, sid, [{"type": "session", "note": "open"}], ".jsonl")
    write_recording(data, sid, [{"type": "session", "note": "closed"}], ".jsonl.gz")
    assert replay_json(cfg, sid) == [{"type": "session", "note": "closed"}]
    # a file in another day's directory is found by the scan
    other = uuid7(1795452001123 - 86400000 * 3)
    write_recording(data, other, [{"type": "session", "note": "moved"}], ".jsonl.gz",
                    day_ms=1795452001123)
    assert replay_json(cfg, other) == [{"type": "session", "note": "moved"}]


# ---- the human view -----------------------------------------------------------------------


def in_order(text, needles):
    pos = 0
    for n in needles:
        i = text.find(n, pos)
        assert i >= 0, f"{n!r} not found after offset {pos} in:\n{text}"
        pos = i + len(n)


def test_postgres_session_shown_in_order(env):
    cfg, data = env
    sid = uuid7()
    write_recording(data, sid, pg_lines(sid))
    r = replay(cfg, sid, "--speed", "0")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    # header
    for want in ["session   " + sid, "protocol  postgres", "target    orders-db",
                 "agent     etl-bot", "client    127.0.0.1:50412",
                 "started   2026-11-23T16:40:01.123456Z", "database  app",
                 "application_name psql"]:
        assert want in out, out
    in_order(out, [
        "identity  agent etl-bot",
        "query     allow (rule reads)", "SELECT id, name\n", "FROM orders ORDER BY id",
        "rows      3",
        "| 1   | alice ", "| 22  | \\x1b[2J", "| 333 | NULL ",
        "complete  SELECT 3  3 rows  4.1 ms",
        "parse     statement s1  allow (rule reads)", "SELECT * FROM orders WHERE id = $1",
        "bind      statement s1", "$1 = '42'", "$2 = NULL", "$3 = (base64) AAEC",
        "| " + HOSTILE + " | (base64) AAEC |",
        "complete  SELECT 1  1 row  950 us",
        "query     DENY (rule no-ddl): schema changes need approval", "DROP TABLE orders",
        "error     42501 airlock: DROP TABLE is not allowed (airlock)",
        "error     22012 division by zero (upstream)",
        "close     client closed  bytes up 1234  bytes down 56789  after 12.500 s",
    ])
    # the rows form an aligned table: every row line has its bars at the same columns
    rows = [ln for ln in out.splitlines() if ln.lstrip().startswith("| ")][:3]
    bars = [[i for i, ch in enumerate(ln) if ch == "|"] for ln in rows]
    assert bars[0] == bars[1] == bars[2], rows
    assert "no close line" not in out


def test_http_and_tunnel_sessions(env):
    cfg, data = env
    sid = uuid7()
    write_recording(data, sid, http_lines(sid), ".jsonl")
    r = replay(cfg, sid, "--speed", "0")
    assert r.returncode == 0, r.stderr
    in_order(r.stdout, [
        "protocol  http",
        "request   POST /v1/orders?token=[redacted]  allow (rule api-write)",
        "Host: api.example", "Authorization: [redacted]", "X-Evil: a\\x1b[31mred",
        "body: 26 bytes", '{"item": "book", "qty": 2}',
        "response  201  50.0 ms", "Content-Type: application/json", '{"id": 77}',
        "request   DELETE /v1/orders/77  DENY (rule no-delete): deletes are not allowed",
        "response  403  300 us", "denied",
        "request   GET /big", "body (binary, base64): 100000 bytes, recording kept the first part",
        "AAECAw==",
        "response  200  1.500 s", "x" * 2048, "... 2952 more bytes",
        "close     client closed  bytes up 300  bytes down 900",
    ])
    assert "x" * 2049 not in r.stdout  # bodies are cut for display

    tid = uuid7()
    write_recording(data, tid, tunnel_lines(tid))
    r = replay(cfg, tid, "--speed", "0")
    assert r.returncode == 0, r.stderr
    in_order(r.stdout, ["protocol  tcp", "agent     bot",
                        "tunnel    to db.example:5432  allow (rule egress-db)",
                        "close     upstream closed  bytes up 4096  bytes down 8192  after 3.500 s"])


def test_control_characters_are_escaped(env):
    cfg, data = env
    sid = uuid7()
    lines = pg_lines(sid)
    lines[2]["sql"] = "SELECT '\x1b[2J' \u009b\u2028 --\r\x07"
    lines[1]["agent"] = "bot\x1b]0;x\x07"
    write_recording(data, sid, lines)
    r = replay(cfg, sid, "--speed", "0")
    assert r.returncode == 0, r.stderr
    raw = r.stdout
    for bad in ["\x1b", "\x07", "\r", "\u009b", "\u202e", "\u2028"]:
        assert bad not in raw, repr(bad)
    for shown in ["\\x1b[2J\\x1b]0;pwned\\x07bob\\u009b31m\\u202eevil",
                  "SELECT '\\x1b[2J' \\u009b\\u2028 --\\r\\x07", "agent bot\\x1b]0;x\\x07"]:
        assert shown in raw, raw


def test_asciicast_plays_the_terminal_output(env):
    cfg, data = env

    def play(session):  # bytes: text mode would fold the \r\n
        r = subprocess.run([BIN, "replay", session, "-c", cfg, "--speed", "0"],
                           capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout

    sid = uuid7()
    write_recording(data, sid, cast_lines(), ".cast.gz")
    # terminal output goes out as recorded (that is the point); input is not
    assert play(sid) == b"$ ls\r\n\x1b[1mfile\x1b[0m\r\n"
    sid2 = uuid7(tail="7abc-8def-0123456789ac")
    write_recording(data, sid2, cast_lines(), ".cast")
    assert play(sid2) == play(sid)


def test_speed_paces_the_lines(env):
    cfg, data = env
    sid = uuid7()
    write_recording(data, sid, [
        {"type": "session", "version": 1, "session_id": sid, "protocol": "postgres"},
        {"t": 0, "type": "query", "sql": "SELECT 1", "decision": "allow"},
        {"t": 1.0, "type": "query", "sql": "SELECT 2", "decision": "allow"},
    ])

    def timed(*args):
        t0 = time.monotonic()
        r = replay(cfg, sid, *args)
        assert r.returncode == 0, r.stderr
        assert "SELECT 2" in r.stdout or args[0] == "--json"
        return time.monotonic() - t0

    fast = timed("--speed", "0")
    paced = timed("--speed", "2")
    assert paced >= 0.45, paced
    assert fast < paced - 0.25, (fast, paced)
    assert timed("--json") < paced - 0.25  # --json never pauses


# ---- exit statuses ------------------------------------------------------------------------


def test_exit_codes_and_messages(env):
    cfg, data = env
    sid = uuid7()
    r = replay(cfg, sid, "--speed", "0")
    assert r.returncode == 1
    assert f"no recording for session {sid} under {data}/recordings" in r.stderr
    assert "retention" in r.stderr

    # truncated gzip: what could be read is shown, then an error naming the file
    path = write_recording(data, sid, pg_lines(sid))
    whole = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(whole[:-6])
    for args in (["--speed", "0"], ["--json"]):
        r = replay(cfg, sid, *args)
        assert r.returncode == 1, r.stdout
        assert path in r.stderr and "truncated" in r.stderr, r.stderr

    # a line that is not JSON in a closed recording: corrupt
    sid2 = uuid7(tail="7abc-8def-0123456789ad")
    path2 = write_recording(data, sid2, pg_lines(sid2)[:3] + ["{not json"] + pg_lines(sid2)[3:])
    r = replay(cfg, sid2, "--speed", "0")
    assert r.returncode == 1 and path2 in r.stderr and "line 4" in r.stderr, r.stderr
    assert "FROM orders" in r.stdout  # the lines before it were shown
    # ... but the last line of an open recording may be half-written
    sid3 = uuid7(tail="7abc-8def-0123456789ae")
    write_recording(data, sid3, pg_lines(sid3)[:3] + ['{"t":0.2,"type":"qu'], ".jsonl")
    r = replay(cfg, sid3, "--speed", "0")
    assert r.returncode == 0, r.stderr
    assert "still being recorded" in r.stdout

    usage = [
        ["replay", "../x", "-c", cfg],
        ["replay", sid.upper(), "-c", cfg],
        ["replay", sid[:-1], "-c", cfg],
        ["replay", sid + "0", "-c", cfg],
        ["replay", sid],  # no -c
        ["replay", "-c", cfg],  # no session
        ["replay", sid, "-c", cfg, "--bogus"],
        ["replay", sid, "-c", cfg, "--speed"],
        ["replay", sid, "-c", cfg, "--speed", "-1"],
        ["replay", sid, "-c", cfg, "--speed", "abc"],
        ["replay", sid, "-c", cfg, "--speed", "nan"],
        ["replay", sid, "-c", cfg, "--speed", "1e3"],
        ["replay", sid, sid, "-c", cfg],
    ]
    for args in usage:
        r = run(args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert r.stderr.startswith("airlock replay: "), (args, r.stderr)
        assert "\x1b" not in r.stderr
    r = run(["replay", "../x", "-c", cfg])
    assert "not a session id" in r.stderr
    r = run(["replay", sid, "-c", str(data / "missing.yaml")])
    assert r.returncode == 2
    r = run(["replay", "--help"])
    assert r.returncode == 0 and "--speed N" in r.stdout
    r = replay(cfg, sid, "--speed", "0.5", "--json")
    assert r.returncode == 1  # truncated, as above: valid decimal speeds are accepted


# ---- the admin API ------------------------------------------------------------------------


def mint(cfg, agent):
    r = run(["token", "mint", "-c", cfg, "--agent", agent])
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_admin_api_recording(gateway, tmp_path):
    g = gateway(CFG.replace("{port}", str(free_port())))
    data = tmp_path / "var"
    boot = (data / "admin-token").read_text().strip()
    # written after start: the recorder only ever finds them closed
    sid = uuid7()
    lines = pg_lines(sid)
    write_recording(data, sid, lines)
    hid = uuid7(tail="7abc-8def-0123456789af")
    write_recording(data, hid, http_lines(hid), ".jsonl")
    path = f"/v1/sessions/{sid}/recording"

    st, hdrs, body = g.get(path, boot)
    assert st == 200, body
    assert {k.lower(): v for k, v in hdrs.items()}["content-type"] == "application/x-ndjson"
    assert body == "".join(line_text(x) + "\n" for x in lines)
    st, _, body = g.get(f"/v1/sessions/{hid}/recording", boot)
    assert st == 200 and [json.loads(x) for x in body.splitlines()] == http_lines(hid)

    # an auditor may read it; an agent without the role may not; no token: 401
    st, _, body = g.get(path, mint(g.cfg, "aud"))
    assert st == 200 and body.startswith('{"type":"session"')
    st, _, body = g.get(path, mint(g.cfg, "bot"))
    assert st == 403 and json.loads(body)["error"] == "forbidden"
    st, _, body = g.get(path)
    assert st == 401
    st, _, body = g.get(path, "not-a-token")
    assert st == 401

    st, _, body = g.get(f"/v1/sessions/{uuid7(tail='7abc-8def-000000000000')}/recording", boot)
    assert st == 404 and json.loads(body)["error"] == "not_found"
    for bad in [sid.upper(), sid[:-1], sid + "0", "..%2e", "%2e%2e%2fx" + sid[6:]]:
        st, _, body = g.get(f"/v1/sessions/{bad}/recording", boot)
        assert st in (400, 404), (bad, st, body)
        if len(bad) in (35, 36, 37) and "%" not in bad:
            assert st == 400 and json.loads(body)["error"] == "bad_request", (bad, body)
    st, _ = g.post(path, {}, boot)
    assert st == 405

    # a corrupt recording: 500 naming the problem, not a short answer
    cid = uuid7(tail="7abc-8def-0123456789a0")
    p = write_recording(data, cid, lines)
    whole = open(p, "rb").read()
    open(p, "wb").write(whole[:-6])
    st, _, body = g.get(f"/v1/sessions/{cid}/recording", boot)
    assert st == 500 and "truncated" in json.loads(body)["detail"], body

    # reads are audited like /v1/audit reads
    deadline = time.time() + 10
    seen = []
    while time.time() < deadline and not seen:
        st, _, body = g.get("/v1/audit?kind=admin&limit=100", boot)
        seen = [e for e in json.loads(body) if e.get("action") == path]
        time.sleep(0.1)
    assert seen and seen[0]["decision"] == "allow"
