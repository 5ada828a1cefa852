#!/usr/bin/python3
"""bench/pg: pgbench against PostgreSQL directly, through pgbouncer (session
pooling) and through airlock, in one run on this machine; then 1,000 idle
authenticated sessions held through airlock, with its RSS.

usage: bench/pg/bench_pg.py BUILD_DIR [SECONDS_PER_RUN]

BENCH_PG_MASK=1 runs only the masking comparison instead: a customers table
(name, email, card, ssn, phone text columns), a pgbench script selecting
one row by random id, through two airlock targets on the same upstream,
one without masking and one with the ten detectors on every text value
plus a column rule on ssn; -c 1 and -c 8, simple and prepared protocol,
BENCH_PG_MASK_REPS (default 3) alternating runs each, median TPS and the
drop (target: at most 15%).

BENCH_PG_RECORD=1 runs only the session-recording comparison: pgbench -S
(select only) through two airlock processes on the same upstream and data
directory, one recording every session (the default) and one with
`recordings: {enabled: false}`; -c 1 and -c 8, simple and prepared,
BENCH_PG_RECORD_REPS (default 3) alternating runs each, medians and the
drop (target: at most 10%).
"""
import glob
import os
import pwd
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

BIN = os.path.abspath(os.path.join(sys.argv[1] if len(sys.argv) > 1 else "build", "airlock"))
SECS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
PG = "/usr/lib/postgresql/15/bin"
PGBENCH = f"{PG}/pgbench"
MASK = os.environ.get("BENCH_PG_MASK") == "1"
RECORD = os.environ.get("BENCH_PG_RECORD") == "1"
MASK_ROWS = 100000
# Rows with a value for several detectors in every text column. SSN areas
# 100-599 (never 666 or 9xx), Visa/Mastercard/Amex test card numbers.
CUSTOMERS_SQL = f"""
CREATE TABLE customers (id int PRIMARY KEY, name text, email text, card text, ssn text,
                        phone text);
INSERT INTO customers
SELECT g, 'Customer ' || g, 'user' || g || '@example.com',
       (ARRAY['4111 1111 1111 1111', '5555555555554444', '3782 822463 10005',
              '4012-8888-8888-1881'])[1 + g % 4],
       (100 + g % 500)::text || '-' || lpad((1 + g % 98)::text, 2, '0') || '-' ||
           lpad((1 + g % 9998)::text, 4, '0'),
       '+1 415 555 ' || lpad((g % 10000)::text, 4, '0')
FROM generate_series(1, {MASK_ROWS}) g;
ANALYZE customers;
"""
MASK_SCRIPT = ("\\set id random(1, %d)\n"
               "SELECT id, name, email, card, ssn, phone FROM customers WHERE id = :id;\n"
               % MASK_ROWS)
MASKING_YAML = """
masking:
  - targets: [app_masked]
    detectors: [credit_card, us_ssn, email, phone, iban, ip_address, jwt, aws_key, private_key, api_key]
    style: full
  - targets: [app_masked]
    columns: [ssn]
    style: last4
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def as_pg(args, **kw):
    return subprocess.run(["runuser", "-u", "postgres", "--"] + args, check=True,
                          capture_output=True, text=True, **kw)


def wait_port(port, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


def main():
    base = tempfile.mkdtemp(prefix="airlock-bench-pg-")
    os.chmod(base, 0o755)
    pw = pwd.getpwnam("postgres")
    os.chown(base, pw.pw_uid, pw.pw_gid)
    password = "bench-" + os.urandom(6).hex()
    pwfile = os.path.join(base, "pw")
    open(pwfile, "w").write(password + "\n")
    os.chown(pwfile, pw.pw_uid, pw.pw_gid)
    data = os.path.join(base, "data")
    pgport, bport, aport, admport = free_port(), free_port(), free_port(), free_port()
    mport = free_port()  # airlock's masked target (BENCH_PG_MASK)
    procs = []
    try:
        as_pg([f"{PG}/initdb", "-D", data, "-U", "bench", "--pwfile", pwfile,
               "--auth-host", "scram-sha-256", "--auth-local", "trust"])
        with open(os.path.join(data, "postgresql.conf"), "a") as f:
            f.write(f"port = {pgport}\nlisten_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{base}'\nmax_connections = 1200\n"
                    "shared_buffers = 256MB\nsynchronous_commit = off\n")
        as_pg([f"{PG}/pg_ctl", "-D", data, "-w", "-l", os.path.join(base, "pg.log"), "start"])
        as_pg(["psql", "-h", base, "-p", str(pgport), "-U", "bench", "-d", "postgres", "-qc",
               "CREATE DATABASE app"])
        if MASK:
            as_pg(["psql", "-h", base, "-p", str(pgport), "-U", "bench", "-d", "app", "-qc",
                   CUSTOMERS_SQL])
        else:
            as_pg([PGBENCH, "-i", "-s", "10", "-q", "-h", base, "-p", str(pgport), "-U",
                   "bench", "app"])
        # pgbouncer, session pooling, SCRAM to PostgreSQL
        bdir = os.path.join(base, "bouncer")
        os.makedirs(bdir)
        open(os.path.join(bdir, "userlist.txt"), "w").write(f'"bench" "{password}"\n')
        open(os.path.join(bdir, "pgbouncer.ini"), "w").write(
            f"[databases]\napp = host=127.0.0.1 port={pgport} dbname=app\n"
            f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {bport}\n"
            f"auth_type = scram-sha-256\nauth_file = {bdir}/userlist.txt\n"
            "pool_mode = session\nmax_client_conn = 2000\ndefault_pool_size = 100\n"
            f"unix_socket_dir =\nlogfile = {bdir}/pgbouncer.log\n")
        shutil.chown(bdir, "postgres")
        for f in os.listdir(bdir):
            shutil.chown(os.path.join(bdir, f), "postgres")
        if not MASK:
            procs.append(subprocess.Popen(["runuser", "-u", "postgres", "--", "pgbouncer",
                                           os.path.join(bdir, "pgbouncer.ini")],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_port(bport)
        # airlock: reads allowed (async audit), writes allowed with strict audit
        adir = os.path.join(base, "airlock")
        os.makedirs(adir)
        cfg = os.path.join(adir, "airlock.yaml")
        tlist = "app, app_masked" if MASK else "app"
        masked_target = f"""  - name: app_masked
    protocol: postgres
    listen: 127.0.0.1:{mport}
    tls: off
    upstream: {{ host: 127.0.0.1, port: {pgport}, database: app, user: bench, password_env: BENCH_PG_PW }}
"""
        open(cfg, "w").write(f"""
server: {{ admin_listen: 127.0.0.1:{admport}, data_dir: {adir}/var, workers: {os.environ.get("BENCH_PG_WORKERS", "2")} }}
dev_issuer: true
dev_token_max_ttl: 24h
targets:
  - name: app
    protocol: postgres
    listen: 127.0.0.1:{aport}
    tls: off
    upstream: {{ host: 127.0.0.1, port: {pgport}, database: app, user: bench, password_env: BENCH_PG_PW }}
{masked_target if MASK else ""}agents:
  - {{ name: bench, issuer: airlock-dev, subject: bench, owner: bench@example.com }}
policies:
  - {{ name: reads, who: [bench], targets: [{tlist}], when: {{ sql: [read] }}, action: allow }}
  - {{ name: writes, who: [bench], targets: [{tlist}], when: {{ sql: [write] }}, action: allow, audit: strict }}
  - {{ name: no-ddl, who: ["*"], targets: [{tlist}], when: {{ sql: [ddl, dcl, admin] }}, action: deny }}
""" + (MASKING_YAML if MASK else ""))
        env = dict(os.environ, BENCH_PG_PW=password)
        alog = open(os.path.join(adir, "airlock.log"), "w")
        ap = subprocess.Popen([BIN, "serve", "-c", cfg], env=env, stdout=alog, stderr=alog)
        procs.append(ap)
        wait_port(aport)
        token = subprocess.run([BIN, "token", "mint", "-c", cfg, "--agent", "bench", "--ttl",
                                "12h"], check=True, capture_output=True, text=True).stdout.strip()

        if MASK:
            wait_port(mport)
            mask_compare(base, aport, mport, token, ap.pid)
            return
        if RECORD:
            # a second gateway on the same data directory (so the same dev
            # issuer key verifies the token), recording off
            rport, radm = free_port(), free_port()
            cfg2 = os.path.join(adir, "airlock-norec.yaml")
            text = open(cfg).read().replace(f"listen: 127.0.0.1:{aport}",
                                            f"listen: 127.0.0.1:{rport}")
            text = text.replace(f"admin_listen: 127.0.0.1:{admport}",
                                f"admin_listen: 127.0.0.1:{radm}")
            open(cfg2, "w").write(text + "recordings: { enabled: false }\n")
            rlog = open(os.path.join(adir, "airlock-norec.log"), "w")
            rp = subprocess.Popen([BIN, "serve", "-c", cfg2], env=env, stdout=rlog, stderr=rlog)
            procs.append(rp)
            wait_port(rport)
            record_compare(base, (rport, rp.pid), (aport, ap.pid), token, adir)
            return
        routes = {"direct": (pgport, password), "pgbouncer": (bport, password),
                  "airlock": (aport, token)}
        results = {}
        if os.environ.get("BENCH_PG_PERF"):
            # perf profile of airlock under one load (manual investigation)
            script, mode, c = os.environ["BENCH_PG_PERF"].split(",")
            perf = subprocess.Popen(["perf", "record", "-g", "-o", "/tmp/airlock-pg.perf",
                                     "-p", str(ap.pid)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            print(run_pgbench(base, aport, token, script, mode, int(c)))
            perf.send_signal(2)
            perf.wait()
            return
        if os.environ.get("BENCH_PG_SYSCALLS"):
            syscall_count(base, routes, ap.pid, os.environ["BENCH_PG_SYSCALLS"].split(","))
            return
        print(f"{'script':8} {'mode':8} {'c':>3} " +
              " ".join(f"{r + ' tps':>14} {'p99 ms':>7}" for r in routes) +
              "   pgb/direct airlock/direct airlock/pgb   pgb cpu/t airl cpu/t (µs)")
        bouncer = subprocess.run(["pgrep", "-x", "pgbouncer"], capture_output=True,
                                 text=True).stdout.split()
        cpu_pids = {"pgbouncer": int(bouncer[0]), "airlock": ap.pid}
        only = os.environ.get("BENCH_PG_ONLY")  # e.g. "select,simple,8" for a quick look
        for script in ("select", "tpcb"):
            for mode in ("simple", "prepared"):
                for c in (1, 8, 32):
                    if only and only != f"{script},{mode},{c}":
                        continue
                    row, cpu = {}, {}
                    for name, (port, pw_) in routes.items():
                        pid = cpu_pids.get(name)
                        t0 = cpu_s(pid) if pid else 0
                        n = []
                        row[name] = run_pgbench(base, port, pw_, script, mode, c, count=n)
                        if pid:  # the proxy's CPU (all threads) per transaction, in µs
                            cpu[name] = (cpu_s(pid) - t0) * 1e6 / max(n[0], 1)
                    results[(script, mode, c)] = row
                    d, b, a = (row[k][0] for k in ("direct", "pgbouncer", "airlock"))
                    print(f"{script:8} {mode:8} {c:3} " +
                          " ".join(f"{row[r][0]:14.0f} {row[r][1]:7.2f}" for r in routes) +
                          f"   {b / d:10.2f} {a / d:14.2f} {a / b:11.2f}" +
                          f"   {cpu['pgbouncer']:9.1f} {cpu['airlock']:9.1f}", flush=True)
        if not only or only == "idle":  # BENCH_PG_ONLY=idle: only the idle sessions
            idle_rss(aport, token, ap.pid)
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        subprocess.run(["runuser", "-u", "postgres", "--", f"{PG}/pg_ctl", "-D", data, "-m",
                        "fast", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def mask_compare(base, port_off, port_on, token, airlock_pid):
    """Masking off vs on: the same script through the plain and the masked
    target, alternating, BENCH_PG_MASK_REPS runs each; medians.
    BENCH_PG_PERF=on,simple,1 (or off,...) profiles airlock under one load
    instead (perf report -i /tmp/airlock-pg.perf)."""
    env = dict(os.environ, PGPASSWORD=token, PGSSLMODE="disable")
    q = "SELECT id, name, email, card, ssn, phone FROM customers WHERE id = 7"
    got = {}
    for name, port in (("off", port_off), ("on", port_on)):
        got[name] = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "bench",
                                    "-d", "app", "-Atc", q], env=env, check=True,
                                   capture_output=True, text=True).stdout.strip()
    print(f"row 7 without masking: {got['off']}\nrow 7 with masking:    {got['on']}")
    if "@example.com" in got["on"] or "#" not in got["on"] or "#" in got["off"]:
        raise RuntimeError("masking is not applied as configured")
    script = os.path.join(base, "select_customer.sql")
    open(script, "w").write(MASK_SCRIPT)
    if os.environ.get("BENCH_PG_PERF"):
        which, mode, c = os.environ["BENCH_PG_PERF"].split(",")
        perf = subprocess.Popen(["perf", "record", "-g", "-o", "/tmp/airlock-pg.perf", "-p",
                                 str(airlock_pid)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        print(run_pgbench(base, port_on if which == "on" else port_off, token, script, mode,
                          int(c)))
        perf.send_signal(2)
        perf.wait()
        return
    reps = int(os.environ.get("BENCH_PG_MASK_REPS", "3"))
    print(f"\n{MASK_ROWS} customers, 5 text columns, 4 masked per row; {SECS} s per run, "
          f"{reps} alternating runs, medians")
    print(f"{'mode':8} {'c':>3} {'off tps':>9} {'p99 ms':>7} {'on tps':>9} {'p99 ms':>7} "
          f"{'drop':>6}   runs off / on")
    worst = 0.0
    for mode in ("simple", "prepared"):
        for c in (1, 8):
            runs = {"off": [], "on": []}
            for _ in range(reps):
                for name, port in (("off", port_off), ("on", port_on)):
                    runs[name].append(run_pgbench(base, port, token, script, mode, c))
            med = {k: (statistics.median(t for t, _ in v), statistics.median(p for _, p in v))
                   for k, v in runs.items()}
            drop = 1 - med["on"][0] / med["off"][0]
            worst = max(worst, drop)
            print(f"{mode:8} {c:3} {med['off'][0]:9.0f} {med['off'][1]:7.2f} "
                  f"{med['on'][0]:9.0f} {med['on'][1]:7.2f} {drop * 100:5.1f}%   " +
                  " ".join(f"{t:.0f}" for t, _ in runs["off"]) + " / " +
                  " ".join(f"{t:.0f}" for t, _ in runs["on"]), flush=True)
    print(f"target: TPS drop at most 15%: {'met' if worst <= 0.15 else 'NOT met'} "
          f"(worst {worst * 100:.1f}%)")


def ctx_switches(pid):
    """Voluntary and involuntary context switches of all of pid's threads."""
    v = i = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            for line in open(f"/proc/{pid}/task/{t}/status"):
                if line.startswith("voluntary_ctxt_switches"):
                    v += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches"):
                    i += int(line.split()[1])
        except OSError:
            pass
    return v, i


def cpu_s(pid, which=(11, 12)):
    """User + system CPU seconds of a process (every thread); which=(11,)
    for user time only, (12,) for system time only."""
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return sum(int(f[k]) for k in which) / os.sysconf("SC_CLK_TCK")


def record_compare(base, off, on, token, adir):
    """Recording off vs on: pgbench -S through each gateway, alternating,
    BENCH_PG_RECORD_REPS runs each; medians of TPS, p99 and airlock's CPU
    time per transaction (the recorder thread included)."""
    reps = int(os.environ.get("BENCH_PG_RECORD_REPS", "3"))
    print(f"pgbench -S (select only), {SECS} s per run, {reps} alternating runs, medians; "
          "recording off / on; cpu = airlock CPU µs per transaction")
    print(f"{'mode':8} {'c':>3} {'off tps':>9} {'p99 ms':>7} {'cpu':>5} {'on tps':>9} "
          f"{'p99 ms':>7} {'cpu':>5} {'drop':>6}   runs off / on")
    worst = 0.0
    for mode in ("simple", "prepared"):
        for c in (1, 8):
            runs = {"off": [], "on": []}
            for _ in range(reps):
                for name, (port, pid) in (("off", off), ("on", on)):
                    c0 = cpu_s(pid)
                    tps, p99 = run_pgbench(base, port, token, "select", mode, c)
                    runs[name].append((tps, p99, (cpu_s(pid) - c0) / (tps * SECS) * 1e6))
            med = {k: [statistics.median(r[i] for r in v) for i in range(3)]
                   for k, v in runs.items()}
            drop = 1 - med["on"][0] / med["off"][0]
            worst = max(worst, drop)
            print(f"{mode:8} {c:3} {med['off'][0]:9.0f} {med['off'][1]:7.2f} "
                  f"{med['off'][2]:5.0f} {med['on'][0]:9.0f} {med['on'][1]:7.2f} "
                  f"{med['on'][2]:5.0f} {drop * 100:5.1f}%   " +
                  " ".join(f"{r[0]:.0f}" for r in runs["off"]) + " / " +
                  " ".join(f"{r[0]:.0f}" for r in runs["on"]), flush=True)
    files = glob.glob(os.path.join(adir, "var", "recordings", "*", "*", "*", "*"))
    size = sum(os.path.getsize(f) for f in files)
    print(f"recordings written: {len(files)} files, {size / 1e6:.1f} MB (compressed)")
    print(f"target: TPS drop at most 10%: {'met' if worst <= 0.10 else 'NOT met'} "
          f"(worst {worst * 100:.1f}%)")


def run_pgbench(base, port, password, script, mode, clients, count=None):
    """script: "select" (-S), "tpcb" (built-in) or the path of a script file.
    count: a list that receives the number of transactions run."""
    logdir = tempfile.mkdtemp(prefix="pgb-log-", dir=base)
    env = dict(os.environ, PGPASSWORD=password, PGSSLMODE="disable")
    args = [PGBENCH, "-h", "127.0.0.1", "-p", str(port), "-U", "bench", "-M", mode,
            "-c", str(clients), "-j", str(min(clients, 2)), "-T", str(SECS), "-n", "-l",
            "--log-prefix", os.path.join(logdir, "l")]
    if script == "select":
        args.append("-S")
    elif script != "tpcb":
        args += ["-f", script]
    args.append("app")
    r = subprocess.run(args, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(r.stdout + r.stderr)
    tps = next(float(l.split("=")[1].split()[0]) for l in r.stdout.splitlines()
               if l.startswith("tps =") and "without" in l or l.startswith("tps ="))
    lat = []
    for f in glob.glob(os.path.join(logdir, "l*")):
        for line in open(f):
            parts = line.split()
            if len(parts) >= 3:
                lat.append(int(parts[2]))
    lat.sort()
    p99 = lat[int(len(lat) * 0.99)] / 1000.0 if lat else float("nan")
    if count is not None:
        count.append(len(lat))
    shutil.rmtree(logdir, ignore_errors=True)
    return tps, p99


def syscall_count(base, routes, airlock_pid, load):
    """BENCH_PG_SYSCALLS=select,simple,8: system calls per transaction made by
    pgbouncer and by airlock (all threads) under one load, from strace -c -f.
    strace slows both a lot: the counts mean something, the TPS does not."""
    script, mode, c = load
    bouncer = subprocess.run(["pgrep", "-x", "pgbouncer"], capture_output=True,
                             text=True).stdout.split()
    pids = {"pgbouncer": int(bouncer[0]), "airlock": airlock_pid}
    table = {}
    for name, pid in pids.items():  # context switches first, without strace
        n = []
        port, pw_ = routes[name]
        v0, i0 = ctx_switches(pid)
        u0, k0 = cpu_s(pid, (11,)), cpu_s(pid, (12,))
        run_pgbench(base, port, pw_, script, mode, int(c), count=n)
        v1, i1 = ctx_switches(pid)
        u1, k1 = cpu_s(pid, (11,)), cpu_s(pid, (12,))
        print(f"{name}: per transaction: context switches voluntary {(v1 - v0) / n[0]:.2f}, "
              f"involuntary {(i1 - i0) / n[0]:.2f}; CPU user {(u1 - u0) * 1e6 / n[0]:.1f} µs, "
              f"system {(k1 - k0) * 1e6 / n[0]:.1f} µs")
    for name, pid in pids.items():
        out = os.path.join(base, f"strace-{name}.txt")
        st = subprocess.Popen(["strace", "-c", "-f", "-o", out, "-p", str(pid)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        n = []
        port, pw_ = routes[name]
        run_pgbench(base, port, pw_, script, mode, int(c), count=n)
        st.send_signal(2)
        st.wait()
        calls = {}
        for line in open(out):
            parts = line.split()
            if len(parts) >= 5 and parts[0][0].isdigit() and not line.startswith("100.00"):
                calls[parts[-1]] = int(parts[3])
        table[name] = (n[0], calls)
    names = sorted(set().union(*(c for _, c in table.values())),
                   key=lambda k: -max(table[n][1].get(k, 0) / table[n][0] for n in table))
    print(f"system calls per transaction, {script} {mode} -c {c} "
          f"({', '.join(f'{n}: {t[0]} transactions' for n, t in table.items())})")
    print(f"{'call':20} " + " ".join(f"{n:>10}" for n in table))
    for k in names:
        print(f"{k:20} " + " ".join(f"{table[n][1].get(k, 0) / table[n][0]:10.2f}" for n in table))
    print(f"{'total':20} " + " ".join(
        f"{sum(table[n][1].values()) / table[n][0]:10.2f}" for n in table))


def idle_rss(port, token, pid, n=1000):
    def rss():
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    before = rss()
    socks = []
    t0 = time.time()
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        params = b"user\0bench\0database\0app\0\0"
        s.sendall(struct.pack("!II", len(params) + 8, 196608) + params)
        buf = b""
        while b"R" not in buf[:1] or len(buf) < 9:
            buf += s.recv(4096)
        body = token.encode() + b"\0"
        s.sendall(b"p" + struct.pack("!I", len(body) + 4) + body)
        buf = b""
        while not (len(buf) >= 6 and buf[-6:-5] == b"Z"):
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError("closed during login: " + repr(buf[:200]))
            buf += chunk
        socks.append(s)
    took = time.time() - t0
    time.sleep(1)
    after = rss()
    print(f"\nidle sessions: {n} authenticated through airlock in {took:.1f}s; airlock RSS "
          f"{before:.1f} MB before, {after:.1f} MB with them open "
          f"({(after - before) * 1024 / n:.1f} KB per session)")
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
