"""`airlock token verify` against tokens minted by jwcrypto (independent)."""
import base64
import json
import time

import pytest
from jwcrypto import jwk
from jwcrypto.common import json_encode

from conftest import ALGS, jwks_doc, make_key, mint, run, std_claims, write_config

ISS = "https://issuer.example.test/"


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_sign(key, alg, header, payload_bytes):
    """Signs exact header and payload bytes (duplicate members, crit and
    other oddities jwcrypto's JWS object would refuse to produce)."""
    from jwcrypto.jwa import JWA
    hdr = header if isinstance(header, str) else json_encode(header)
    signing_input = f"{b64(hdr)}.{b64(payload_bytes)}".encode()
    sig = JWA.signing_alg(alg).sign(key, signing_input)
    return f"{signing_input.decode()}.{b64(sig)}"


@pytest.fixture
def env(tmp_path):
    keys = [make_key(a) for a in ALGS]
    (tmp_path / "jwks.json").write_text(json.dumps(jwks_doc(*keys)))
    cfg = write_config(tmp_path, f"""
server:
  data_dir: {tmp_path}/var
issuers:
  - name: test
    issuer: {ISS}
    audience: [api://airlock, api://other]
    jwks_file: {tmp_path}/jwks.json
    max_token_lifetime: 2h
  - name: entra
    issuer: https://login.microsoftonline.com/tid-1/v2.0
    audience: api://airlock
    jwks_file: {tmp_path}/jwks.json
    tenant: tid-1
    groups_claim: roles
  - name: strict
    issuer: https://strict.example.test
    audience: api://airlock
    jwks_file: {tmp_path}/jwks.json
    algorithms: [ES256]
    typ: at+jwt
  - name: dead
    issuer: https://dead.example.test
    audience: api://airlock
    jwks_uri: http://127.0.0.1:9/jwks.json
agents:
  - {{ name: agent-1, issuer: test, subject: agent-1, owner: o@example.com, groups: [bots] }}
  - {{ name: entra-app, issuer: entra, subject: app-sub, owner: o@example.com }}
  - {{ name: strict-1, issuer: strict, subject: agent-1, owner: o@example.com }}
  - {{ name: dead-1, issuer: dead, subject: agent-1, owner: o@example.com }}
""")
    return cfg


def verify(cfg, token, *extra):
    r = run(["token", "verify", "-c", cfg, *extra, token])
    out = json.loads(r.stdout) if r.stdout.strip() else None
    return r.returncode, out, r.stderr


@pytest.mark.parametrize("alg", list(ALGS))
def test_accepts_every_algorithm(env, alg):
    tok = mint(make_key(alg), alg, std_claims(ISS, groups=["g1"], azp="client-app"))
    rc, out, err = verify(env, tok)
    assert rc == 0, (out, err)
    assert out["agent"] == "agent-1"
    assert out["sub"] == "agent-1"
    assert out["issuer"] == "test"
    assert out["client_id"] == "client-app"
    assert sorted(out["groups"]) == ["bots", "g1"]
    assert len(out["token_sha256"]) == 64
    assert tok not in json.dumps(out)


def test_stdin_and_dash(env):
    tok = mint(make_key("ES256"), "ES256", std_claims(ISS))
    r = run(["token", "verify", "-c", env, "-"], input=tok + "\n")
    assert r.returncode == 0, r.stdout + r.stderr
    r = run(["token", "verify", "-c", env], input=tok)
    assert r.returncode == 0, r.stdout + r.stderr


def refused(env, tok, reason, *extra):
    rc, out, err = verify(env, tok, *extra)
    assert rc == 1, (out, err)
    assert out["error"] == reason, out
    assert isinstance(out["detail"], str) and out["detail"]


def es(claims, **kw):
    return mint(make_key("ES256"), "ES256", claims, **kw)


def test_malformed_shapes(env):
    good = es(std_claims(ISS))
    h, p, s = good.split(".")
    for bad in ["", "abc", "a.b", f"{h}.{p}", f"{h}.{p}.{s}.x", f"{h}.{p}.", f".{p}.{s}",
                f"{h}=.{p}.{s}", f"{h}.{p}.{s}=", f"{h}.{p}+.{s}", f"{h} .{p}.{s}",
                f"{b64('not json')}.{p}.{s}", f"{b64('[1]')}.{p}.{s}", f"{h}.{b64('[]')}.{s}"]:
        rc, out, _ = verify(env, bad)
        assert rc == 1 and out["error"] in ("malformed", "missing_token"), (bad, out)


def test_jwe_is_malformed(env):
    refused(env, "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d", "malformed")


def test_too_large(env):
    refused(env, es(std_claims(ISS, pad="x" * 17000)), "too_large")


def test_alg_none_and_hs256(env):
    p = b64(json.dumps(std_claims(ISS)))
    refused(env, f"{b64(json.dumps({'alg': 'none'}))}.{p}.c2ln", "alg_not_allowed")
    hk = jwk.JWK.generate(kty="oct", size=256)
    hs = raw_sign(hk, "HS256", {"alg": "HS256"}, json.dumps(std_claims(ISS)).encode())
    refused(env, hs, "alg_not_allowed")


def test_alg_not_in_issuer_list(env):
    tok = mint(make_key("RS256"), "RS256", std_claims("https://strict.example.test"),
               header_extra={"typ": "at+jwt"})
    refused(env, tok, "alg_not_allowed")


def test_typ_required(env):
    ok = es(std_claims("https://strict.example.test"), header_extra={"typ": "at+jwt"})
    assert verify(env, ok)[0] == 0
    ok2 = es(std_claims("https://strict.example.test"),
             header_extra={"typ": "application/AT+JWT"})
    assert verify(env, ok2)[0] == 0
    refused(env, es(std_claims("https://strict.example.test")), "typ_mismatch")


def test_unknown_kid(env):
    other = make_key("ES256", kid="not-published", fresh=True)
    refused(env, mint(other, "ES256", std_claims(ISS)), "unknown_kid")


def test_bad_signature(env):
    impostor = make_key("ES256", kid="es256-key", fresh=True)
    refused(env, mint(impostor, "ES256", std_claims(ISS)), "bad_signature")
    good = es(std_claims(ISS))
    h, p, s = good.split(".")
    tampered = b64(json.dumps(std_claims(ISS, sub="agent-1", admin=True)))
    refused(env, f"{h}.{tampered}.{s}", "bad_signature")


def test_header_key_hints_are_ignored(env):
    """jwk/jku/x5u in the header must never supply the key (RFC 8725 §3.10)."""
    attacker = make_key("ES256", kid="attacker", fresh=True)
    hdr = {"jwk": json.loads(attacker.export_public()), "jku": "http://127.0.0.1:9/x"}
    refused(env, mint(attacker, "ES256", std_claims(ISS), header_extra=hdr), "unknown_kid")


def test_issuer_mismatch(env):
    refused(env, es(std_claims("https://evil.example.test/")), "issuer_mismatch")
    refused(env, es(std_claims(ISS.rstrip("/"))), "issuer_mismatch")


def test_audience(env):
    refused(env, es(std_claims(ISS, aud="api://nope")), "audience_mismatch")
    refused(env, es(std_claims(ISS, aud=["a", "b"])), "audience_mismatch")
    assert verify(env, es(std_claims(ISS, aud=["x", "api://other"])))[0] == 0


def test_times(env):
    now = int(time.time())
    c = std_claims(ISS)
    c.update(exp=now - 120, iat=now - 400, nbf=now - 400)
    refused(env, es(c), "expired")
    c = std_claims(ISS)
    c.update(exp=now + 30 - 0.5)  # fractional NumericDate is fine
    assert verify(env, es(c))[0] == 0
    c = std_claims(ISS)
    c["nbf"] = now + 600
    refused(env, es(c), "not_yet_valid")
    c = std_claims(ISS)
    c["iat"] = now + 600
    del c["nbf"]
    c["exp"] = now + 900
    refused(env, es(c), "issued_in_future")
    c = std_claims(ISS, ttl=3 * 3600)
    refused(env, es(c), "lifetime_too_long")
    c = std_claims(ISS, ttl=3 * 3600)
    del c["iat"]
    refused(env, es(c), "lifetime_too_long")
    c = std_claims(ISS)
    c["exp"] = str(now + 100)
    refused(env, es(c), "malformed")


def test_skew_tolerated(env):
    now = int(time.time())
    c = std_claims(ISS)
    c.update(exp=now - 30)  # within the default 60 s skew
    assert verify(env, es(c))[0] == 0


def test_missing_claims(env):
    for claim in ("exp", "sub", "aud", "iss"):
        c = std_claims(ISS)
        del c[claim]
        expected = "missing_claim"
        rc, out, _ = verify(env, es(c))
        assert rc == 1 and out["error"] == expected, (claim, out)


def test_crit(env):
    key = make_key("ES256")
    hdr = {"alg": "ES256", "kid": key.get("kid"), "crit": ["exp"], "exp": 1}
    tok = raw_sign(key, "ES256", hdr, json.dumps(std_claims(ISS)).encode())
    refused(env, tok, "crit_unsupported")


def test_duplicate_members(env):
    key = make_key("ES256")
    c = std_claims(ISS)
    body = json.dumps(c)[:-1] + ', "sub": "someone-else"}'
    refused(env, raw_sign(key, "ES256", {"alg": "ES256", "kid": key.get("kid")}, body.encode()),
            "malformed")
    hdr = '{"alg":"ES256","kid":"es256-key","alg":"ES256"}'
    p = b64(json.dumps(c))
    refused(env, f"{b64(hdr)}.{p}.{b64(b'x' * 64)}", "malformed")


def test_unknown_agent(env):
    refused(env, es(std_claims(ISS, sub="stranger")), "unknown_agent")


def test_entra_tenant_and_roles(env):
    e = "https://login.microsoftonline.com/tid-1/v2.0"
    ok = es(std_claims(e, sub="app-sub", aud="api://airlock", tid="tid-1", roles=["Data.Read"],
                       azp="app-client-id"))
    rc, out, err = verify(env, ok)
    assert rc == 0, (out, err)
    assert out["groups"] == ["Data.Read"] and out["tenant"] == "tid-1"
    assert out["client_id"] == "app-client-id"
    v1 = es(std_claims(e, sub="app-sub", tid="tid-1", appid="v1-client"))
    assert verify(env, v1)[1]["client_id"] == "v1-client"
    refused(env, es(std_claims(e, sub="app-sub", tid="tid-2")), "tenant_mismatch")
    refused(env, es(std_claims(e, sub="app-sub")), "missing_claim")
    over = std_claims(e, sub="app-sub", tid="tid-1",
                      _claim_names={"roles": "src1"},
                      _claim_sources={"src1": {"endpoint": "https://graph.example/x"}})
    refused(env, es(over), "missing_claim")


def test_jwks_unavailable(env):
    refused(env, es(std_claims("https://dead.example.test")), "jwks_unavailable")


def test_weak_rsa_key_refused(tmp_path):
    weak = jwk.JWK.generate(kty="RSA", size=1024, kid="weak")
    (tmp_path / "jwks.json").write_text(json.dumps(jwks_doc(weak)))
    cfg = write_config(tmp_path, f"""
server: {{ data_dir: {tmp_path}/var }}
issuers:
  - {{ name: t, issuer: {ISS}, audience: a, jwks_file: {tmp_path}/jwks.json }}
agents:
  - {{ name: a1, issuer: t, subject: agent-1, owner: o@example.com }}
""")
    tok = mint(weak, "RS256", std_claims(ISS, aud="a"))
    rc, out, _ = verify(cfg, tok)
    assert rc == 1 and out["error"] == "jwks_unavailable", out


def test_issuer_restriction_and_usage(env):
    tok = es(std_claims(ISS))
    assert verify(env, tok, "--issuer", "test")[0] == 0
    rc, out, _ = verify(env, tok, "--issuer", "entra")
    assert rc == 1 and out["error"] == "issuer_mismatch"
    r = run(["token", "verify", "-c", env, "--issuer", "nope", tok])
    assert r.returncode == 2
    assert run(["token", "verify", tok]).returncode == 2
    assert run(["token", "verify", "-c", "/nonexistent.yaml", tok]).returncode == 2


def test_dev_issuer_mint_and_verify(tmp_path):
    cfg = write_config(tmp_path, f"""
server: {{ data_dir: {tmp_path}/var }}
dev_issuer: true
agents:
  - {{ name: bot, issuer: airlock-dev, subject: bot-sub, owner: o@example.com, groups: [bots] }}
""")
    r = run(["token", "mint", "-c", cfg, "--agent", "bot", "--groups", "a,b", "--ttl", "2m"])
    assert r.returncode == 0, r.stderr
    tok = r.stdout.strip()
    rc, out, err = verify(cfg, tok)
    assert rc == 0, (out, err)
    assert out["agent"] == "bot" and sorted(out["groups"]) == ["a", "b", "bots"]
    key = tmp_path / "var" / "dev-issuer" / "es256.pem"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    r = run(["token", "mint", "-c", cfg, "--agent", "bot", "--aud", "other"])
    rc, out, _ = verify(cfg, r.stdout.strip())
    assert out["error"] == "audience_mismatch"
    r = run(["token", "mint", "-c", cfg, "--subject", "ghost"])
    rc, out, _ = verify(cfg, r.stdout.strip())
    assert out["error"] == "unknown_agent"
    assert run(["token", "mint", "-c", cfg, "--agent", "nobody"]).returncode == 2
    assert run(["token", "mint", "-c", cfg, "--agent", "bot", "--ttl", "5x"]).returncode == 2
    # a config without dev_issuer refuses dev tokens
    off = write_config(tmp_path, f"""
server: {{ data_dir: {tmp_path}/var }}
agents: []
""", name="off.yaml")
    rc, out, _ = verify(off, tok)
    assert rc == 1 and out["error"] == "issuer_mismatch"
