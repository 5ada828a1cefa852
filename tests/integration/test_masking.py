"""Masking: `airlock mask` on stdin, and result rows masked by the
PostgreSQL gateway (column rules, detectors, named entries from policies,
binary columns)."""
import os
import subprocess

import psycopg
import pytest

from conftest import BIN, free_port, run, write_config

CFG = """
server:
  admin_listen: {admin}
  data_dir: {data}
  workers: 2
dev_issuer: true
mask_key_env: AIRLOCK_TEST_MASK_KEY
targets:
  - name: appdb
    protocol: postgres
    listen: 127.0.0.1:{pgport}
    tls: off
    upstream: { host: 127.0.0.1, port: {upport}, database: app, user: airlock_up, password_env: AIRLOCK_TEST_UPSTREAM_PW }
agents:
  - { name: bot, issuer: airlock-dev, subject: bot, owner: o@example.com }
  - { name: support, issuer: airlock-dev, subject: support, owner: o@example.com }
masking:
  - targets: [appdb]
    detectors: [email, credit_card]
    style: full
  - targets: [appdb]
    columns: ["*ssn"]
    style: last4
  - targets: [appdb]
    columns: [customer_id]
    style: hash
  - name: phones
    targets: [appdb]
    detectors: [phone]
policies:
  - { name: reads, who: [bot], targets: [appdb], when: { sql: [read] }, action: allow }
  - { name: support-reads, who: [support], targets: [appdb], when: { sql: [read] }, action: allow, masking: [phones] }
"""

ROWS = [
    (1, "ada@example.com", "4111 1111 1111 1111", "123-45-6789", "cust-1", "+1 415 555 0100"),
    (2, "nobody here", "no card", "987-65-4321", "cust-1", "call +1 415 555 0199"),
]


@pytest.fixture
def mgw(gateway, pg, monkeypatch):
    monkeypatch.setenv("AIRLOCK_TEST_UPSTREAM_PW", pg.password)
    monkeypatch.setenv("AIRLOCK_TEST_MASK_KEY", "k" * 32)
    pg.psql_local("DROP TABLE IF EXISTS people; CREATE TABLE people (id int, email text, "
                  "card text, tax_ssn text, customer_id text, phone text)", db="app")
    for r in ROWS:
        pg.psql_local("INSERT INTO people VALUES (%d, '%s', '%s', '%s', '%s', '%s')" % r, db="app")
    port = free_port()
    g = gateway(CFG.replace("{pgport}", str(port)).replace("{upport}", str(pg.port)))
    g.pgport = port
    return g


def conn(g, agent):
    tok = run(["token", "mint", "-c", g.cfg, "--agent", agent]).stdout.strip()
    return psycopg.connect(host="127.0.0.1", port=g.pgport, user=agent, dbname="app",
                           password=tok, sslmode="disable")


def test_rows_masked(mgw):
    with conn(mgw, "bot") as c:
        rows = c.execute("SELECT id, email, card, tax_ssn, customer_id, phone FROM people "
                         "ORDER BY id").fetchall()
        # prepared (extended protocol) too
        again = c.execute("SELECT email, tax_ssn FROM people WHERE id = %s", (1,),
                          prepare=True).fetchone()
    r1, r2 = rows
    assert r1[1] == "#" * len("ada@example.com")
    assert r1[2] == "#" * len("4111 1111 1111 1111")
    assert r1[3] == "###-##-6789"
    assert r2[1] == "nobody here" and r2[2] == "no card"
    assert r2[3] == "###-##-4321"
    # hash: stable and keyed, the same input gives the same mask
    assert r1[4] == r2[4] and r1[4] != "cust-1" and r1[4].startswith("h:")
    # phones only for rules that name the `phones` entry
    assert r1[5] == "+1 415 555 0100"
    assert again == ("#" * len("ada@example.com"), "###-##-6789")


def test_named_entry_from_policy(mgw):
    with conn(mgw, "support") as c:
        (phone, email) = c.execute("SELECT phone, email FROM people WHERE id = 1").fetchone()
    assert phone != "+1 415 555 0100" and "#" in phone
    assert email == "#" * len("ada@example.com")


def test_binary_column_rule_is_null(mgw):
    with conn(mgw, "bot") as c:
        cur = c.cursor(binary=True)
        row = cur.execute("SELECT tax_ssn, id FROM people WHERE id = 1").fetchone()
    assert row == (None, 1)


def test_copy_out_is_not_a_bypass(mgw, gateway, pg):
    # With column masking, COPY TO (no column names) is refused outright.
    with conn(mgw, "bot") as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as ei:
            with c.cursor().copy("COPY people TO STDOUT") as cp:
                b"".join(bytes(x) for x in cp)
        assert "COPY TO is refused" in str(ei.value)
    # With detectors only, COPY TO rows are masked like any result.
    text = CFG.replace('  - targets: [appdb]\n    columns: ["*ssn"]\n    style: last4\n', "")
    text = text.replace("  - targets: [appdb]\n    columns: [customer_id]\n    style: hash\n",
                        "")
    port = free_port()
    g = gateway(text.replace("{pgport}", str(port)).replace("{upport}", str(pg.port)))
    g.pgport = port
    with conn(g, "bot") as c:
        with c.cursor().copy("COPY people TO STDOUT") as cp:
            data = b"".join(bytes(x) for x in cp)
        with pytest.raises(psycopg.OperationalError):
            with c.cursor().copy("COPY people TO STDOUT (FORMAT binary)") as cp:
                b"".join(bytes(x) for x in cp)
    assert b"ada@example.com" not in data and b"4111 1111" not in data, data
    assert b"123-45-6789" in data  # no ssn detector enabled: the value passes


def test_mask_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRLOCK_TEST_MASK_KEY", "k" * 32)
    cfg = write_config(tmp_path, CFG.replace("{admin}", "127.0.0.1:1").replace(
        "{data}", str(tmp_path / "var")).replace("{pgport}", "1").replace("{upport}", "2"))
    text = "write to ada@example.com, card 4111-1111-1111-1111, ip 10.0.0.1\n"
    r = subprocess.run([BIN, "mask", "-c", cfg, "--target", "appdb"], input=text,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "ada@example.com" not in r.stdout and "4111" not in r.stdout
    assert "10.0.0.1" in r.stdout  # ip_address is not enabled for appdb
    assert "2 value(s) masked" in r.stderr and "email 1" in r.stderr
    r = subprocess.run([BIN, "mask", "-c", cfg, "--detectors", "ip_address"], input=text,
                       capture_output=True, text=True)
    assert "10.0.0.1" not in r.stdout and "ada@example.com" in r.stdout
    assert subprocess.run([BIN, "mask", "-c", cfg, "--detectors", "nope"], input=text,
                          capture_output=True, text=True).returncode == 2
    assert subprocess.run([BIN, "mask", "-c", cfg], input=text,
                          capture_output=True, text=True).returncode == 2


def test_masking_config_errors(tmp_path):
    bad = CFG.replace("style: last4", "style: lastfour").replace(
        "detectors: [phone]", "detectors: [phone, shoe_size]").replace(
        "masking: [phones]", "masking: [phone]")
    cfg = write_config(tmp_path, bad.replace("{admin}", "127.0.0.1:1").replace(
        "{data}", str(tmp_path / "var")).replace("{pgport}", "1").replace("{upport}", "2"))
    r = run(["check", "-c", cfg])
    assert r.returncode == 1
    assert "style 'lastfour'" in r.stderr
    assert "'shoe_size' is not a detector" in r.stderr
    assert "masking 'phone' names no masking entry" in r.stderr
