"""`airlock serve`: admin endpoints, JSON logs, reload, drain, whoami."""
import json
import re
import signal
import subprocess
import time

from conftest import BIN, free_port, run, write_config

BASE = """
server:
  admin_listen: {admin}
  data_dir: {data}
  workers: 2
  drain_timeout: 5s
dev_issuer: true
agents:
  - { name: bot, issuer: airlock-dev, subject: bot, owner: o@example.com, groups: [bots] }
"""


def mint(cfg, agent="bot", *extra):
    r = run(["token", "mint", "-c", cfg, "--agent", agent, *extra])
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_healthz_and_metrics(gateway):
    g = gateway(BASE)
    st, hdrs, body = g.get("/healthz")
    assert st == 200 and json.loads(body)["status"] == "ok"
    st, hdrs, body = g.get("/metrics")
    assert st == 200
    assert hdrs["Content-Type"].startswith("text/plain; version=0.0.4")
    assert 'airlock_build_info{version="' in body
    assert re.search(r"^airlock_uptime_seconds \d+(\.\d+)?$", body, re.M)
    assert "# TYPE airlock_token_verifications_total counter" in body
    assert 'airlock_jwks_fetches_total{issuer="airlock-dev",result="ok"}' in body
    st, _, body = g.get("/nope")
    assert st == 404 and json.loads(body)["error"] == "not_found"


def test_whoami_counts_and_cache(gateway):
    g = gateway(BASE)
    tok = mint(g.cfg)
    for _ in range(3):
        st, _, p = g.whoami(tok)
        assert st == 200 and p["agent"] == "bot"
    bad = tok[:-5] + ("A" if tok[-5] != "A" else "B") + tok[-4:]  # flip one signature char
    st, hdrs, p = g.whoami(bad)
    assert st == 401 and p["reason"] == "bad_signature"
    assert hdrs["WWW-Authenticate"] == ('Bearer realm="airlock", error="invalid_token", '
                                        'error_description="bad_signature"')
    st, hdrs, _ = g.get("/v1/whoami")
    assert st == 401 and hdrs["WWW-Authenticate"] == 'Bearer realm="airlock"'
    _, _, m = g.get("/metrics")
    def val(labels):
        mm = re.search(r"^airlock_token_verifications_total\{%s\} (\d+)$" % re.escape(labels), m, re.M)
        return int(mm.group(1)) if mm else 0
    assert val('result="accepted",reason="ok",cache="miss"') == 1
    assert val('result="accepted",reason="ok",cache="hit"') == 2
    assert val('result="refused",reason="bad_signature",cache="miss"') == 1
    assert tok not in g.logs(), "a token reached the logs"


def test_json_logs_and_dev_warning(gateway):
    g = gateway(BASE)
    lines = [l for l in g.logs().splitlines() if l.strip()]
    assert lines
    for l in lines:
        o = json.loads(l)
        assert {"ts", "level", "msg"} <= set(o)
    assert any(json.loads(l)["level"] == "warn" and "dev_issuer" in json.loads(l)["msg"]
               for l in lines)


def test_bad_request_is_400(gateway):
    import socket
    g = gateway(BASE)
    port = int(g.admin.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        data = s.recv(4096).decode()
    assert data.startswith("HTTP/1.1 400"), data
    assert "cl_and_te" in data


def test_keep_alive_pipelining(gateway):
    import socket
    g = gateway(BASE)
    port = int(g.admin.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n"
                  b"Connection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    assert data.count(b"HTTP/1.1 200 OK") == 2


def test_sighup_reload_good_and_bad(gateway):
    g = gateway(BASE)
    tok = mint(g.cfg)
    assert g.whoami(tok)[0] == 200
    text = open(g.cfg).read()
    # valid change: the bot leaves the inventory
    open(g.cfg, "w").write(text.replace("  - { name: bot,", "  - { name: other,")
                                .replace("subject: bot,", "subject: other,"))
    g.signal(signal.SIGHUP)
    deadline = time.time() + 5
    while time.time() < deadline and g.whoami(tok)[0] == 200:
        time.sleep(0.05)
    st, _, p = g.whoami(tok)
    assert st == 401 and p["reason"] == "unknown_agent"
    # invalid change: refused with its errors, old config stays
    open(g.cfg, "w").write(text + "\nbogus_key: 1\n")
    g.signal(signal.SIGHUP)
    deadline = time.time() + 5
    while time.time() < deadline and "config reload refused" not in g.logs():
        time.sleep(0.05)
    assert "config reload refused" in g.logs()
    assert re.search(r"airlock\.yaml:\d+:\d+: unknown key 'bogus_key'", g.logs())
    assert g.whoami(tok)[1:][1]["reason"] == "unknown_agent"  # still the second config
    _, _, m = g.get("/metrics")
    assert 'airlock_config_reloads_total{result="ok"} 1' in m
    assert 'airlock_config_reloads_total{result="error"} 1' in m


def test_sigterm_drains_and_exits_zero(tmp_path):
    port = free_port()
    cfg = write_config(tmp_path, BASE.replace("{admin}", f"127.0.0.1:{port}")
                       .replace("{data}", str(tmp_path / "var")))
    p = subprocess.Popen([BIN, "serve", "-c", cfg], stderr=subprocess.PIPE, text=True)
    import urllib.request
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.05)
    t0 = time.time()
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=10) == 0
    assert time.time() - t0 < 5
    err = p.stderr.read()
    assert "draining" in err and "airlock stopped" in err


def test_serve_refuses_bad_config_and_busy_port(tmp_path):
    cfg = write_config(tmp_path, "server: { workers: -3 }\n")
    r = run(["serve", "-c", cfg])
    assert r.returncode == 1 and re.search(r":1:\d+: ", r.stderr)
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    cfg = write_config(tmp_path, BASE.replace("{admin}", f"127.0.0.1:{port}")
                       .replace("{data}", str(tmp_path / "var")), name="busy.yaml")
    r = run(["serve", "-c", cfg])
    s.close()
    assert r.returncode == 1 and "cannot listen" in r.stderr
