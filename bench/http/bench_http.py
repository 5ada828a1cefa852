#!/usr/bin/python3
"""bench/http: wrk against one upstream (a private nginx answering a ~1 KB
JSON body) directly, through nginx as a plain reverse proxy (upstream
keepalive) and through airlock (bearer JWT checked on every request, warm
verified-token cache, a 20-rule policy, async audit of the allowed reads),
at 1 and 64 connections, in one run on this machine.

usage: bench/http/bench_http.py BUILD_DIR [SECONDS_PER_RUN]

Each (path, connections) cell is measured BENCH_HTTP_RUNS times (default 3),
interleaved path by path so machine noise falls on all three alike, after
a warm-up; the table shows the median and the spread. Knobs (environment):

  BENCH_HTTP_RUNS=3            measurements per cell
  BENCH_HTTP_CONNS=1,64        connection counts
  BENCH_HTTP_PATHS=direct,nginx,airlock
  BENCH_HTTP_WORKERS=N         airlock server.workers (default: the config
                               default, one per core)
  BENCH_HTTP_NGINX_WORKERS=N   worker_processes of the proxying nginx
                               (default auto, one per core, like airlock)
  BENCH_HTTP_NGINX_LOG=0       proxying nginx without its access log
                               (default: on, combined format, as shipped)
  BENCH_HTTP_AUDIT_DIR=DIR     put airlock's data_dir (the audit store) in a
                               temp dir under DIR, e.g. /dev/shm to take the
                               disk out (default: the throwaway dir)
  BENCH_HTTP_RECORD=0          airlock with session recording off
                               (default: on, as configured by default)
  BENCH_HTTP_AUDIT_FLUSH=50ms  airlock's audit.flush_interval (default: the
                               config default, 10ms)
  BENCH_HTTP_PERF=64           instead of the table: perf record airlock
                               under that many connections, to
                               /tmp/airlock-http.perf

Everything runs from a throwaway directory and is stopped at exit; every
port is on 127.0.0.1. No system nginx service is involved.
"""
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import http.client

BIN = os.path.abspath(os.path.join(sys.argv[1] if len(sys.argv) > 1 else "build", "airlock"))
SECS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
RUNS = int(os.environ.get("BENCH_HTTP_RUNS", "3"))
CONNS = [int(c) for c in os.environ.get("BENCH_HTTP_CONNS", "1,64").split(",")]
PATHS = os.environ.get("BENCH_HTTP_PATHS", "direct,nginx,airlock").split(",")
WORKERS = os.environ.get("BENCH_HTTP_WORKERS")
NGINX_WORKERS = os.environ.get("BENCH_HTTP_NGINX_WORKERS", "auto")
NGINX_LOG = os.environ.get("BENCH_HTTP_NGINX_LOG", "1") != "0"
AUDIT_DIR = os.environ.get("BENCH_HTTP_AUDIT_DIR")
RECORD = os.environ.get("BENCH_HTTP_RECORD", "1") != "0"
AUDIT_FLUSH = os.environ.get("BENCH_HTTP_AUDIT_FLUSH")  # e.g. 50ms: audit.flush_interval
WARMUP = 2
REQ_PATH = "/v1/orders/42"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
WRK = shutil.which("wrk") or "/usr/bin/wrk"

# wrk prints one machine-readable line at the end: requests, duration (µs),
# p50 and p99 latency (µs), and the error counts (non-2xx/3xx included).
WRK_LUA = """
done = function(s, lat, req)
  local e = s.errors
  io.write(string.format("BENCH %d %d %d %d %d %d %d %d %d\\n", s.requests, s.duration,
    lat:percentile(50), lat:percentile(99), e.connect, e.read, e.write, e.status, e.timeout))
end
"""

# The 20 rules: what an API gateway policy for a few agents looks like. The
# benchmark's GET /v1/orders/42 by `bench` (group readers) is allowed by
# `readers-orders` near the end; every rule is evaluated on every request
# (all matching rules count, deny wins), so order does not make it cheaper.
POLICY = """
policies:
  - { name: no-admin, who: ["*"], targets: [api], when: { paths: ["/admin/**"] }, action: deny, message: admin is off limits }
  - { name: no-internal, who: ["*"], targets: [api], when: { paths: ["/internal/**", "/debug/**"] }, action: deny }
  - { name: no-deletes, who: ["*"], targets: [api], when: { methods: [DELETE] }, action: deny, message: deletes go through a human }
  - { name: no-trace, who: ["*"], targets: [api], when: { methods: [TRACE, CONNECT] }, action: deny }
  - { name: no-exports, who: ["*"], targets: [api], when: { paths: ["/v1/exports/**"] }, action: deny }
  - { name: no-evil-host, who: ["*"], targets: [api], when: { hosts: [evil.example, "*.attacker.test"] }, action: deny }
  - { name: ci-deploys, who: [group:ci], targets: [api], when: { methods: [POST], paths: ["/v1/deployments"] }, action: allow }
  - { name: ci-status, who: [group:ci], targets: [api], when: { methods: [GET], paths: ["/v1/deployments/**"] }, action: allow, audit: async }
  - { name: billing-write, who: [billing-bot], targets: [api], when: { methods: [POST, PUT, PATCH], paths: ["/v1/invoices/**"] }, action: allow }
  - { name: billing-read, who: [billing-bot], targets: [api], when: { methods: [GET, HEAD], paths: ["/v1/invoices/**", "/v1/customers/*"] }, action: allow, audit: async }
  - { name: refunds, who: [billing-bot], targets: [api], when: { methods: [POST], paths: ["/v1/refunds"] }, action: approve, approvers: [finance] }
  - { name: support-read, who: [group:support], targets: [api], when: { methods: [GET], paths: ["/v1/tickets/**", "/v1/customers/**"] }, action: allow, audit: async }
  - { name: support-reply, who: [group:support], targets: [api], when: { methods: [POST], paths: ["/v1/tickets/*/replies"] }, action: allow }
  - { name: business-hours, who: [group:support], targets: [api], when: { methods: [PUT], paths: ["/v1/tickets/*"], hours: ["08:00-18:00"], days: [mon-fri], timezone: UTC }, action: allow }
  - { name: reports, who: [report-bot], targets: [api], when: { methods: [GET], paths: ["/v1/reports/**"] }, action: allow, audit: async }
  - { name: health, who: ["*"], targets: [api], when: { methods: [GET, HEAD], paths: ["/healthz", "/v1/status"] }, action: allow, audit: async }
  - { name: readers-catalog, who: [group:readers], targets: [api], when: { methods: [GET, HEAD], paths: ["/v1/catalog/**"] }, action: allow, audit: async }
  - { name: readers-orders, who: [group:readers], targets: [api], when: { methods: [GET, HEAD], paths: ["/v1/orders", "/v1/orders/*"] }, action: allow, audit: async }
  - { name: orders-write, who: [group:writers], targets: [api], when: { methods: [POST, PATCH], paths: ["/v1/orders/**"] }, action: allow }
  - { name: no-order-cancel, who: ["*"], targets: [api], when: { methods: [POST], paths: ["/v1/orders/*/cancel"] }, action: approve, approvers: [ops] }
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc, timeout=20):
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


def nginx_conf(prefix, workers, body):
    """Common part of a private nginx: foreground, own pid/log/temp paths."""
    return f"""
daemon off;
worker_processes {workers};
master_process on;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    keepalive_requests 1000000;
{body}
}}
"""


def start_nginx(base, name, workers, body, procs):
    prefix = os.path.join(base, name)
    os.makedirs(os.path.join(prefix, "tmp"))
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(nginx_conf(prefix, workers, body))
    p = subprocess.Popen([NGINX, "-p", prefix, "-e", os.path.join(prefix, "error.log"),
                          "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(p)
    return p


def check_get(port, headers, expect_status=200, expect_body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", REQ_PATH, headers=headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    if r.status != expect_status or (expect_body is not None and data != expect_body):
        raise RuntimeError(f"port {port}: GET {REQ_PATH} gave {r.status} {data[:200]!r}")


def run_wrk(base, port, headers, conns, secs):
    threads = min(conns, 2)
    args = [WRK, "-t", str(threads), "-c", str(conns), "-d", f"{secs}s", "--timeout", "5s",
            "-s", os.path.join(base, "report.lua")]
    for h in headers:
        args += ["-H", h]
    args.append(f"http://127.0.0.1:{port}{REQ_PATH}")
    r = subprocess.run(args, capture_output=True, text=True)
    line = next((l for l in r.stdout.splitlines() if l.startswith("BENCH ")), None)
    if r.returncode != 0 or line is None:
        raise RuntimeError(f"wrk on port {port} failed:\n" + r.stdout + r.stderr)
    n, dur, p50, p99, *errs = (int(x) for x in line.split()[1:])
    if any(errs):
        raise RuntimeError(f"wrk on port {port}: errors connect/read/write/status/timeout "
                           f"= {errs}\n{r.stdout}")
    return n / (dur / 1e6), p50, p99


def proc_counts(pids):
    """(voluntary, involuntary context switches, user s, system s) summed
    over the processes' threads."""
    v = i = u = k = 0
    tck = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        u += int(f[11]) / tck
        k += int(f[12]) / tck
        for t in os.listdir(f"/proc/{pid}/task"):
            for line in open(f"/proc/{pid}/task/{t}/status"):
                if line.startswith("voluntary_ctxt_switches"):
                    v += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches"):
                    i += int(line.split()[1])
    return v, i, u, k


def syscall_count(base, routes, pids, conns):
    """BENCH_HTTP_SYSCALLS=C: per request, for the nginx proxy (its workers)
    and airlock (all threads): context switches and CPU without tracing,
    then system calls from strace -c -f (which slows both: the counts mean
    something, the request rate does not)."""
    table = {}
    for name, ps in pids.items():
        port, hdrs = routes[name]
        a = proc_counts(ps)
        n = run_wrk(base, port, hdrs, conns, SECS)[0] * SECS
        b = proc_counts(ps)
        d = [(y - x) / n for x, y in zip(a, b)]
        print(f"{name}: per request: context switches voluntary {d[0]:.2f}, involuntary "
              f"{d[1]:.2f}; CPU user {d[2] * 1e6:.1f} µs, system {d[3] * 1e6:.1f} µs")
    for name, ps in pids.items():
        out = os.path.join(base, f"strace-{name}.txt")
        args = ["strace", "-c", "-f", "-o", out]
        for pid in ps:
            args += ["-p", str(pid)]
        st = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        port, hdrs = routes[name]
        n = run_wrk(base, port, hdrs, conns, SECS)[0] * SECS
        st.send_signal(signal.SIGINT)
        st.wait()
        calls = {}
        for line in open(out):
            parts = line.split()
            if len(parts) >= 5 and parts[0][0].isdigit() and not line.startswith("100.00"):
                calls[parts[-1]] = int(parts[3])
        table[name] = (n, calls)
    names = sorted(set().union(*(c for _, c in table.values())),
                   key=lambda k: -max(table[n][1].get(k, 0) / table[n][0] for n in table))
    print(f"system calls per request, c={conns}")
    print(f"{'call':20} " + " ".join(f"{n:>10}" for n in table))
    for k in names[:25]:
        print(f"{k:20} " + " ".join(f"{table[n][1].get(k, 0) / table[n][0]:10.2f}"
                                    for n in table))
    print(f"{'total':20} " + " ".join(
        f"{sum(table[n][1].values()) / table[n][0]:10.2f}" for n in table))


def machine_notes():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), platform.processor())
    ngv = subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr.strip()
    wrkv = subprocess.run([WRK, "-v"], capture_output=True, text=True)
    wrkv = (wrkv.stdout + wrkv.stderr).splitlines()[0].strip()
    return (f"{time.strftime('%Y-%m-%d %H:%M %Z')}; {cpu}, {os.cpu_count()} cores; "
            f"load average {os.getloadavg()[0]:.2f} at start; {ngv}; {wrkv}; "
            f"airlock {BIN}")


def main():
    base = tempfile.mkdtemp(prefix="airlock-bench-http-")
    os.chmod(base, 0o755)  # nginx workers run as nobody
    procs = []
    data = tempfile.mkdtemp(prefix="airlock-bench-http-", dir=AUDIT_DIR) if AUDIT_DIR else \
        os.path.join(base, "airlock", "var")
    try:
        with open(os.path.join(base, "report.lua"), "w") as f:
            f.write(WRK_LUA)
        upport, nport, aport, admport = free_port(), free_port(), free_port(), free_port()
        # The upstream: ~1 KB JSON from memory (no file I/O), one worker.
        body = json.dumps({"id": 42, "status": "shipped", "customer": "c-1001",
                           "lines": [{"sku": f"SKU-{i:04d}", "qty": i % 5 + 1,
                                      "price_cents": 1999 + i} for i in range(18)]})
        body = body[:1023] if len(body) > 1023 else body + " " * (1023 - len(body))
        body = (body + "\n").encode()
        api_key = "bench-" + os.urandom(8).hex()
        up = start_nginx(base, "upstream", 1, f"""
    access_log off;
    server {{
        listen 127.0.0.1:{upport};
        location / {{
            if ($http_x_api_key != "{api_key}") {{ return 401; }}
            default_type application/json;
            return 200 '{body.decode()}';
        }}
    }}""", procs)
        wait_port(upport, up)
        routes = {}
        key_hdr = f"X-Api-Key: {api_key}"
        if "direct" in PATHS:
            routes["direct"] = (upport, [key_hdr])
        if "nginx" in PATHS:
            log = (f"access_log {base}/nginx/access.log;" if NGINX_LOG else "access_log off;")
            ng = start_nginx(base, "nginx", NGINX_WORKERS, f"""
    {log}
    upstream api {{
        server 127.0.0.1:{upport};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{nport};
        location / {{
            proxy_pass http://api;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Api-Key "{api_key}";
        }}
    }}""", procs)
            wait_port(nport, ng)
            routes["nginx"] = (nport, [])
        if "airlock" in PATHS:
            adir = os.path.join(base, "airlock")
            os.makedirs(adir)
            cfg = os.path.join(adir, "airlock.yaml")
            workers = f", workers: {WORKERS}" if WORKERS else ""
            with open(cfg, "w") as f:
                f.write(f"""
server: {{ admin_listen: 127.0.0.1:{admport}, data_dir: {data}{workers} }}
recordings: {{ enabled: {"true" if RECORD else "false"} }}
{"audit: { flush_interval: " + AUDIT_FLUSH + " }" if AUDIT_FLUSH else ""}
dev_issuer: true
dev_token_max_ttl: 24h
targets:
  - name: api
    protocol: http
    listen: 127.0.0.1:{aport}
    tls: off
    http: {{ pool_size: 64 }}
    upstream:
      url: http://127.0.0.1:{upport}
      headers:
        X-Api-Key: {{ env: BENCH_HTTP_API_KEY }}
agents:
  - {{ name: bench, issuer: airlock-dev, subject: bench, owner: bench@example.com, groups: [readers] }}
  - {{ name: billing-bot, issuer: airlock-dev, subject: billing-bot, owner: bench@example.com }}
  - {{ name: report-bot, issuer: airlock-dev, subject: report-bot, owner: bench@example.com, groups: [readers] }}
  - {{ name: deployer, issuer: airlock-dev, subject: deployer, owner: bench@example.com, groups: [ci] }}
{POLICY}""")
            subprocess.run([BIN, "check", "-c", cfg], check=True, capture_output=True)
            alog = open(os.path.join(adir, "airlock.log"), "w")
            ap = subprocess.Popen([BIN, "serve", "-c", cfg], stdout=alog, stderr=alog,
                                  env=dict(os.environ, BENCH_HTTP_API_KEY=api_key))
            procs.append(ap)
            wait_port(aport, ap)
            token = subprocess.run([BIN, "token", "mint", "-c", cfg, "--agent", "bench",
                                    "--ttl", "12h"], check=True, capture_output=True,
                                   text=True).stdout.strip()
            # Auth is really on: no token is 401, a refused path is 403.
            check_get(aport, {}, 401)
            routes["airlock"] = (aport, [f"Authorization: Bearer {token}"])
        for name, (port, hdrs) in routes.items():
            check_get(port, dict(h.split(": ", 1) for h in hdrs), 200, body)

        if os.environ.get("BENCH_HTTP_SYSCALLS"):
            pids = {"nginx": [int(x) for x in subprocess.run(
                        ["pgrep", "-P", str(ng.pid)], capture_output=True,
                        text=True).stdout.split()],
                    "airlock": [ap.pid]}
            syscall_count(base, routes, pids, int(os.environ["BENCH_HTTP_SYSCALLS"]))
            return

        if os.environ.get("BENCH_HTTP_PERF"):
            c = int(os.environ["BENCH_HTTP_PERF"])
            port, hdrs = routes["airlock"]
            run_wrk(base, port, hdrs, c, WARMUP)
            perf = subprocess.Popen(["perf", "record", "-g", "-o", "/tmp/airlock-http.perf",
                                     "-p", str(ap.pid)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            print(run_wrk(base, port, hdrs, c, SECS))
            perf.send_signal(signal.SIGINT)
            perf.wait()
            return

        print(f"# bench/http: {machine_notes()}")
        print(f"# wrk -t min(c,2) -c C -d {SECS}s GET {REQ_PATH} (1 KB body), {RUNS} runs "
              f"per cell, median [min-max]; airlock workers "
              f"{WORKERS or 'default'}, nginx worker_processes {NGINX_WORKERS}, nginx "
              f"access log {'on' if NGINX_LOG else 'off'}; airlock data_dir {data}", flush=True)
        results = {}
        for c in CONNS:
            for name, (port, hdrs) in routes.items():
                run_wrk(base, port, hdrs, c, WARMUP)  # token cache, keepalive, page cache
            samples = {name: [] for name in routes}
            for _ in range(RUNS):
                for name, (port, hdrs) in routes.items():
                    samples[name].append(run_wrk(base, port, hdrs, c, SECS))
            for name, s in samples.items():
                rps = [x[0] for x in s]
                p99 = [x[2] for x in s]
                results[(name, c)] = (statistics.median(rps), statistics.median(p99))
                print(f"{name:8} c={c:<3} req/s {statistics.median(rps):9.0f} "
                      f"[{min(rps):.0f}-{max(rps):.0f}]  p50 us "
                      f"{statistics.median(x[1] for x in s):6.0f}  p99 us "
                      f"{statistics.median(p99):6.0f} [{min(p99)}-{max(p99)}]", flush=True)

        full = {"airlock", "nginx", "direct"} <= set(routes)
        print("\n| c | " + " | ".join(f"{n} req/s | p99 µs" for n in routes) +
              (" | airlock/nginx | airlock/direct | airlock added p99 µs | nginx added p99 µs |"
               if full else " |"))
        print("|--:|" + "--:|--:|" * len(routes) + ("--:|--:|--:|--:|" if full else ""))
        for c in CONNS:
            row = f"| {c} | " + " | ".join(f"{results[(n, c)][0]:,.0f} | {results[(n, c)][1]:,.0f}"
                                           for n in routes)
            if full:
                a, n, d = results[("airlock", c)], results[("nginx", c)], results[("direct", c)]
                row += (f" | {a[0] / n[0]:.2f} | {a[0] / d[0]:.2f} | {a[1] - d[1]:,.0f} | "
                        f"{n[1] - d[1]:,.0f}")
            print(row.replace(",", " ") + " |")
        if ("airlock", 1) in results and ("direct", 1) in results:
            added = results[("airlock", 1)][1] - results[("direct", 1)][1]
            print(f"\np99 added by airlock over direct at 1 connection: {added:.0f} µs "
                  f"(target under 200 µs: {'met' if added < 200 else 'NOT met'})")
            if ("nginx", 1) in results:
                print(f"p99 added by nginx over direct at 1 connection: "
                      f"{results[('nginx', 1)][1] - results[('direct', 1)][1]:.0f} µs")
        for c in CONNS:
            if ("airlock", c) in results and ("nginx", c) in results:
                r = results[("airlock", c)][0] / results[("nginx", c)][0]
                print(f"airlock/nginx req/s at {c} connections: {r:.2f} "
                      f"(target at least 1.00: {'met' if r >= 1 else 'NOT met'})")
        print(f"load average at end: {os.getloadavg()[0]:.2f}")
    except Exception:
        for p in procs:
            if p.poll() is not None:
                print(f"bench/http: {' '.join(p.args[:1] + p.args[-2:])} (pid {p.pid}) "
                      f"exited with {p.returncode}", file=sys.stderr)
        for log in ("airlock/airlock.log", "upstream/error.log", "nginx/error.log"):
            if os.path.exists(os.path.join(base, log)):
                tail = open(os.path.join(base, log), errors="replace").read()[-3000:]
                print(f"--- {log} (tail)\n{tail}", file=sys.stderr)
        raise
    finally:
        for p in procs:
            # nginx stops gracefully on SIGQUIT, fast on SIGTERM; airlock drains on SIGTERM
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(base, ignore_errors=True)
        if AUDIT_DIR:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
