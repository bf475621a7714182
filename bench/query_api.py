#!/usr/bin/env python3
"""Benchmark (not a test): latency of one small query through Gatehouse's query
API against the same query on a direct driver connection, p50 and p99,
measured side by side (rounds interleaved) in one run.

    python3 bench/query_api.py [--requests N] [--rounds R] [--skip-build]

Ways measured, each N requests per round, R rounds, medians of the
per-round percentiles:
  direct-persistent   psycopg, one connection kept open (the floor)
  direct-connect      psycopg, a new connection per query (what a
                      stateless caller without a gateway pays)
  gateway-pg          psycopg through Gatehouse's PostgreSQL listener,
                      one connection kept open
  query-api           HTTP POST /v1/connections/shop/query with keep-alive
                      (each request is its own recorded gateway session)

Needs PostgreSQL on 127.0.0.1:5432 (trust auth for postgres) and psycopg.
"""

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIRECT = "postgresql://postgres@127.0.0.1:5432/test"
QUERY = "SELECT id, name, price FROM gh_bench_api WHERE id = %s"
API_QUERY = "SELECT id, name, price FROM gh_bench_api WHERE id = $1"


def pct(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def start_gateway(work):
    binary = os.path.join(ROOT, "target/release/gatehouse")
    env = dict(os.environ)
    env.pop("GATEHOUSE_MASTER_KEY", None)
    env.pop("GATEHOUSE_STORE", None)
    env["GATEHOUSE_LOG"] = "warn,gatehouse::commands::serve=info"
    proc = subprocess.Popen(
        [binary, "serve", "--api-listen", "127.0.0.1:0", "--pg-listen", "127.0.0.1:0",
         "--data-dir", os.path.join(work, "data")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    api = pg = None
    for line in proc.stderr:
        if "api=http://" in line:
            api = line.split("api=http://", 1)[1].split()[0]
        if "postgres=" in line:
            pg = line.split("postgres=", 1)[1].split()[0]
        if api and pg:
            break
    if not (api and pg):
        sys.exit("gatehouse serve did not start")
    admin = open(os.path.join(work, "data", "admin.token")).read().strip()
    return proc, api, pg, admin


def api_call(conn, method, path, token, body=None):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    text = resp.read()
    return resp.status, json.loads(text) if text else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--skip-build", action="store_true")
    a = ap.parse_args()
    import psycopg

    if not a.skip_build:
        subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", "gatehouse"],
                       cwd=ROOT, check=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=ROOT).returncode != 0
    print(f"# reproduce: cd {ROOT} && python3 bench/query_api.py --requests {a.requests} --rounds {a.rounds}")
    print(f"# started:   {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
    print(f"# commit:    {commit}{' (work tree has uncommitted changes)' if dirty else ''}")
    print(f"# machine:   {os.cpu_count()} CPUs")
    print()

    with psycopg.connect(DIRECT, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS gh_bench_api")
        c.execute("CREATE TABLE gh_bench_api (id int PRIMARY KEY, name text, price numeric)")
        c.execute("INSERT INTO gh_bench_api SELECT g, 'item ' || g, g * 1.5 FROM generate_series(1, 1000) g")

    work = tempfile.mkdtemp(prefix="gatehouse-qapi.")
    proc, api, pg, admin = start_gateway(work)
    try:
        host, port = api.rsplit(":", 1)
        h = http.client.HTTPConnection(host, int(port))
        st, v = api_call(h, "POST", "/v1/tokens", admin, {"name": "bench", "groups": ["agents"]})
        assert st == 201, v
        token = v["token"]
        st, v = api_call(h, "POST", "/v1/connections", admin,
                         {"name": "shop", "kind": "postgres", "url": DIRECT + "?sslmode=disable",
                          "groups": ["agents"]})
        assert st == 201, v
        pg_host, pg_port = pg.rsplit(":", 1)
        gw_url = f"postgresql://bench:{token}@{pg_host}:{pg_port}/shop?sslmode=disable"

        persistent = psycopg.connect(DIRECT, autocommit=True)
        through = psycopg.connect(gw_url, autocommit=True)
        api_conn = http.client.HTTPConnection(host, int(port))

        def direct_persistent(i):
            persistent.execute(QUERY, (i,)).fetchall()

        def direct_connect(i):
            with psycopg.connect(DIRECT, autocommit=True) as c:
                c.execute(QUERY, (i,)).fetchall()

        def gateway_pg(i):
            through.execute(QUERY, (i,)).fetchall()

        def query_api(i):
            st, v = api_call(api_conn, "POST", "/v1/connections/shop/query", token,
                             {"sql": API_QUERY, "params": [i]})
            assert st == 200 and v["row_count"] == 1, (st, v)

        ways = [("direct-persistent", direct_persistent), ("direct-connect", direct_connect),
                ("gateway-pg", gateway_pg), ("query-api", query_api)]
        for _, f in ways:  # warm up
            for i in range(1, 51):
                f(i)
        results = {name: {"p50": [], "p99": []} for name, _ in ways}
        for r in range(a.rounds):
            for name, f in ways:
                lat = []
                for i in range(a.requests):
                    t = time.perf_counter()
                    f(1 + (i * 7) % 1000)
                    lat.append((time.perf_counter() - t) * 1000)
                results[name]["p50"].append(pct(lat, 0.50))
                results[name]["p99"].append(pct(lat, 0.99))
            print(f"round {r + 1}/{a.rounds} done", file=sys.stderr)

        base50 = statistics.median(results["direct-persistent"]["p50"])
        base99 = statistics.median(results["direct-persistent"]["p99"])
        conn50 = statistics.median(results["direct-connect"]["p50"])
        conn99 = statistics.median(results["direct-connect"]["p99"])
        print(f"{'way':<20}{'p50 ms':>9}{'p99 ms':>9}{'p50 / persistent':>18}{'p50 / connect':>15}{'p99 / connect':>15}")
        for name, _ in ways:
            p50 = statistics.median(results[name]["p50"])
            p99 = statistics.median(results[name]["p99"])
            print(f"{name:<20}{p50:>9.3f}{p99:>9.3f}{p50 / base50:>18.2f}{p50 / conn50:>15.2f}{p99 / conn99:>15.2f}")
        print()
        print(f"# {a.requests} requests x {a.rounds} rounds per way, interleaved; medians of per-round percentiles")
        persistent.close()
        through.close()
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)
        with psycopg.connect(DIRECT, autocommit=True) as c:
            c.execute("DROP TABLE IF EXISTS gh_bench_api")


if __name__ == "__main__":
    main()
