"""The README's HTTP walk-through, kept true: scripts/demo-api.py behind the
`demo-api` target of examples/quickstart.yaml, driven with curl.

The quickstart file is used as shipped except for its addresses and data
directory (free ports, a temp dir), so its policies are what is tested."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from conftest import ROOT, Gateway, free_port, run

QUICKSTART = os.path.join(ROOT, "examples", "quickstart.yaml")
DEMO_API = os.path.join(ROOT, "scripts", "demo-api.py")


def substitute(text, old, new):
    assert old in text, f"examples/quickstart.yaml no longer holds {old!r}: update this test"
    return text.replace(old, new)


def wait_port(port, proc, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"process for port {port} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


class Quickstart:
    pass


@pytest.fixture(scope="module")
def qs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("quickstart")
    data = tmp / "var"
    (data / "demo-api").mkdir(parents=True)
    os.chmod(data, 0o700)
    key = "qs-key-" + os.urandom(8).hex()
    keyfile = data / "demo-api" / "key"
    keyfile.write_text(key + "\n")
    os.chmod(keyfile, 0o600)

    q = Quickstart()
    q.key = key
    q.admin_port, q.port, q.api_port, pg_port = (free_port() for _ in range(4))
    text = open(QUICKSTART).read()
    text = substitute(text, "admin_listen: 127.0.0.1:7480", f"admin_listen: 127.0.0.1:{q.admin_port}")
    text = substitute(text, "listen: 127.0.0.1:6432", f"listen: 127.0.0.1:{pg_port}")
    text = substitute(text, "listen: 127.0.0.1:8081", f"listen: 127.0.0.1:{q.port}")
    text = substitute(text, "url: http://127.0.0.1:8082", f"url: http://127.0.0.1:{q.api_port}")
    text = substitute(text, "../var", str(data))
    q.cfg = str(tmp / "quickstart.yaml")
    with open(q.cfg, "w") as f:
        f.write(text)

    q.api_log = tmp / "demo-api.log"
    log = open(q.api_log, "wb")
    api = subprocess.Popen([sys.executable, DEMO_API, "--port", str(q.api_port),
                            "--key-file", str(keyfile)], stdout=log, stderr=log)
    gw = None
    try:
        wait_port(q.api_port, api)
        gw = Gateway(q.cfg, q.admin_port, tmp)
        q.gw = gw
        yield q
    finally:
        if gw is not None:
            rc = gw.stop()
            assert rc == 0, "airlock did not exit 0 on SIGTERM:\n" + gw.logs()
        api.terminate()
        try:
            api.wait(timeout=10)
        except subprocess.TimeoutExpired:
            api.kill()
            api.wait()
        log.close()


def mint(q, agent):
    r = run(["token", "mint", "-c", q.cfg, "--agent", agent, "--ttl", "10m"])
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def curl(url, *args):
    """curl -si URL ARGS -> (status, {lower-case header: value}, body text)."""
    r = subprocess.run(["curl", "-s", "-i", "--max-time", "10", *args, url],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    head, _, body = r.stdout.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def api_saw(q):
    return [l for l in q.api_log.read_text().splitlines() if l.startswith("demo-api: ") and
            "listening" not in l]


def test_allowed_requests_reach_the_api_with_the_injected_key(qs):
    token = mint(qs, "demo-bot")
    url = f"http://127.0.0.1:{qs.port}"
    st, hdrs, body = curl(url + "/v1/invoices/42", "-H", f"Authorization: Bearer {token}")
    assert st == 200, body
    assert json.loads(body)["customer"] == "Globex"
    assert hdrs.get("x-request-id")
    st, _, body = curl(url + "/v1/invoices", "-H", f"Authorization: Bearer {token}",
                       "-H", "Content-Type: application/json",
                       "-d", '{"customer":"Umbrella","total_cents":5000}')
    assert st == 201, body
    assert json.loads(body)["customer"] == "Umbrella"
    # The same request without airlock: the API wants the key the agent lacks.
    st, _, body = curl(f"http://127.0.0.1:{qs.api_port}/v1/invoices/42",
                       "-H", f"Authorization: Bearer {token}")
    assert st == 401 and "X-Api-Key" in body


def test_policy_refusals_never_reach_the_api(qs):
    token = mint(qs, "demo-bot")
    url = f"http://127.0.0.1:{qs.port}"
    before = len(api_saw(qs))
    st, _, body = curl(url + "/v1/invoices/41", "-X", "DELETE",
                       "-H", f"Authorization: Bearer {token}")
    assert st == 403
    assert json.loads(body) == {"error": "denied", "rule": "api-no-deletes",
                                "message": "invoices are never deleted by agents",
                                "reason": "denied_by_rule"}
    for path in ("/admin/users", "/v1/../admin/users", "/%2e%2e/admin"):
        st, _, body = curl(url + path, "--path-as-is", "-H", f"Authorization: Bearer {token}")
        assert st == 403, (path, body)
        assert json.loads(body)["rule"] == "api-no-admin", path
    # report-bot may read but no rule lets it create invoices
    other = mint(qs, "report-bot")
    st, _, body = curl(url + "/v1/invoices", "-H", f"Authorization: Bearer {other}",
                       "-d", '{"customer":"X","total_cents":1}')
    assert st == 403 and json.loads(body)["reason"] == "no_matching_rule"
    assert len(api_saw(qs)) == before, api_saw(qs)


def test_bad_or_missing_token_is_401(qs):
    token, other = mint(qs, "demo-bot"), mint(qs, "report-bot")
    forged = token.rsplit(".", 1)[0] + "." + other.rsplit(".", 1)[1]
    url = f"http://127.0.0.1:{qs.port}/v1/invoices"
    before = len(api_saw(qs))
    st, hdrs, body = curl(url, "-H", f"Authorization: Bearer {forged}")
    assert st == 401
    assert json.loads(body)["reason"] == "bad_signature"
    assert 'error="invalid_token"' in hdrs["www-authenticate"]
    st, hdrs, body = curl(url)
    assert st == 401 and hdrs["www-authenticate"] == 'Bearer realm="airlock"'
    assert len(api_saw(qs)) == before


def test_audit_trail(qs):
    token = mint(qs, "demo-bot")
    url = f"http://127.0.0.1:{qs.port}"
    curl(url + "/v1/invoices/43", "-H", f"Authorization: Bearer {token}")
    curl(url + "/v1/invoices/43", "-X", "DELETE", "-H", f"Authorization: Bearer {token}")
    curl(url + "/v1/invoices", "-H", "Authorization: Bearer not.a.token")

    def events():
        r = run(["audit", "query", "-c", qs.cfg, "--target", "demo-api", "--json",
                 "--limit", "1000"])
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def find(evs, **want):
        return [e for e in evs if all(e.get(k) == v for k, v in want.items())]

    deadline = time.time() + 15  # reads are audited async
    while True:
        evs = events()
        # an async rule's request is one decision event carrying its outcome
        read = find(evs, kind="decision", action="GET /v1/invoices/43", decision="allow")
        denied = find(evs, kind="decision", action="DELETE /v1/invoices/43")
        auth = find(evs, kind="auth", action="GET /v1/invoices", reason="malformed")
        if read and denied and auth:  # all three are written async
            break
        assert time.time() < deadline, evs
        time.sleep(0.2)
    assert read[0]["agent"] == "demo-bot" and read[0]["rule"] == "api-read"
    assert read[0]["status"] == "200" and read[0]["bytes_down"] > 0
    assert denied[0]["decision"] == "deny" and denied[0]["rule"] == "api-no-deletes"
    assert denied[0]["status"] == "403"
    # the README's table form lists them too; the chain verifies
    r = run(["audit", "query", "-c", qs.cfg, "--target", "demo-api"])
    assert r.returncode == 0 and "api-no-deletes" in r.stdout and "api-read" in r.stdout
    r = run(["audit", "verify", "-c", qs.cfg])
    assert r.returncode == 0, r.stdout + r.stderr
