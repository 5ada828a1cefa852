"""Decision tables in tests/data/policy/*.yaml through `airlock policy explain`.

Each file holds one `config` (an airlock config, as text) and `cases`, each
naming an agent, a target, one action (sql, http or cmd) and the expected
decision and rule (null when no rule matched)."""
import json
import pathlib

import pytest
import yaml

from conftest import run

DATA = pathlib.Path(__file__).resolve().parent.parent / "data" / "policy"
EXIT = {"allow": 0, "deny": 3, "approve": 4}


def load_cases():
    out = []
    for f in sorted(DATA.glob("*.yaml")):
        doc = yaml.safe_load(f.read_text())
        for i, c in enumerate(doc["cases"]):
            out.append(pytest.param(f, doc["config"], c, id=f"{f.stem}-{i}"))
    return out


@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    d = tmp_path_factory.mktemp("policy")
    written = {}

    def get(f, text):
        if f not in written:
            p = d / (f.stem + ".yaml")
            p.write_text(text)
            r = run(["check", "-c", str(p)])
            assert r.returncode == 0, r.stderr
            written[f] = str(p)
        return written[f]
    return get


def test_enough_sql_cases():
    n = sum(1 for p in load_cases() if "sql" in p.values[2])
    assert n >= 80, n


@pytest.mark.parametrize("f,config,case", load_cases())
def test_case(configs, f, config, case):
    cfg = configs(f, config)
    args = ["policy", "explain", "-c", cfg, "--agent", case["agent"], "--target", case["target"]]
    for k in ("sql", "http", "cmd", "host", "at"):
        if k in case:
            args += [f"--{k}", case[k]]
    r = run(args)
    out = json.loads(r.stdout)
    want = case["decision"]
    assert (out["decision"], out["rule"]) == (want, case.get("rule")), (case, out)
    assert r.returncode == EXIT[want], (r.returncode, r.stderr)
    if "class" in case:
        assert out["class"] == case["class"], out
    if "tables" in case:
        got = sorted({t for s in out["statements"] for t in s["tables"]})
        assert got == sorted(case["tables"]), out
