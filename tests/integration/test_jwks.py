"""JWKS discovery, rotation, refetch limit and outages, through the gateway."""
import time

from conftest import make_key, mint, std_claims

CFG = """
server:
  admin_listen: {admin}
  data_dir: {data}
  workers: 1
issuers:
  - name: idp
    issuer: ISSUER
    audience: api://airlock
    jwks_refresh_interval: REFRESH
    jwks_max_staleness: STALE
agents:
  - { name: a1, issuer: idp, subject: agent-1, owner: o@example.com }
"""


def cfg(issuer, refresh="1h", stale="24h"):
    return CFG.replace("ISSUER", issuer.url).replace("REFRESH", refresh).replace("STALE", stale)


def wait_for(pred, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def keys_loaded(g, n=1):
    import re
    def check():
        m = g.get("/metrics")[2]
        mm = re.search(r'^airlock_jwks_keys\{issuer="idp"\} (\d+)$', m, re.M)
        return mm and int(mm.group(1)) >= n
    return wait_for(check)


def test_discovery_and_rotation(issuer, gateway):
    k1 = make_key("RS256", kid="k1", fresh=True)
    issuer.keys = [k1]
    g = gateway(cfg(issuer))
    assert keys_loaded(g)
    assert issuer.hits["discovery"] >= 1
    st, _, p = g.whoami(mint(k1, "RS256", std_claims(issuer.url)))
    assert st == 200 and p["agent"] == "a1"
    # the issuer rotates: a new kid appears; the first token with it triggers a refetch
    k2 = make_key("ES256", kid="k2", fresh=True)
    issuer.keys = [k1, k2]
    before = issuer.hits["jwks"]
    st, _, p = g.whoami(mint(k2, "ES256", std_claims(issuer.url)))
    assert st == 200, p
    assert issuer.hits["jwks"] == before + 1


def test_unknown_kid_refetch_is_rate_limited(issuer, gateway):
    k1 = make_key("ES256", kid="k1", fresh=True)
    issuer.keys = [k1]
    g = gateway(cfg(issuer))
    assert keys_loaded(g)
    stranger = make_key("ES256", kid="nope", fresh=True)
    before = issuer.hits["jwks"]
    st, _, p = g.whoami(mint(stranger, "ES256", std_claims(issuer.url)))
    assert st == 401 and p["reason"] == "unknown_kid"
    assert issuer.hits["jwks"] == before + 1
    for i in range(5):
        other = make_key("ES256", kid=f"nope{i}", fresh=True)
        st, _, p = g.whoami(mint(other, "ES256", std_claims(issuer.url)))
        assert st == 401 and p["reason"] == "unknown_kid"
    assert issuer.hits["jwks"] == before + 1, "more than one refetch within 30 s"


def test_issuer_down_serves_cached_keys_then_fails_closed(issuer, gateway):
    k1 = make_key("ES256", kid="k1", fresh=True)
    issuer.keys = [k1]
    g = gateway(cfg(issuer, refresh="1s", stale="3s"))
    assert keys_loaded(g)
    issuer.down = True
    t_down = time.time()
    # fresh tokens each time so the verified-token cache does not answer
    st, _, p = g.whoami(mint(k1, "ES256", std_claims(issuer.url, jti="a")))
    assert st == 200, p
    time.sleep(1.5)
    st, _, p = g.whoami(mint(k1, "ES256", std_claims(issuer.url, jti="b")))
    assert st == 200, p
    assert "jwks fetch failed" in g.logs()
    # past the staleness bound: fail closed
    time.sleep(max(0, 4.5 - (time.time() - t_down)))
    st, _, p = g.whoami(mint(k1, "ES256", std_claims(issuer.url, jti="c")))
    assert st == 401 and p["reason"] == "jwks_unavailable", p
    # the issuer comes back: keys flow again
    issuer.down = False
    assert wait_for(lambda: g.whoami(mint(k1, "ES256", std_claims(issuer.url)))[0] == 200)


def test_discovery_issuer_must_match_exactly(issuer, gateway):
    k1 = make_key("ES256", kid="k1", fresh=True)
    issuer.keys = [k1]
    issuer.discovery_issuer = issuer.url + "/"
    g = gateway(cfg(issuer))
    assert wait_for(lambda: "does not equal the configured issuer" in g.logs())
    st, _, p = g.whoami(mint(k1, "ES256", std_claims(issuer.url)))
    assert st == 401 and p["reason"] == "jwks_unavailable"
    assert issuer.hits["jwks"] == 0
