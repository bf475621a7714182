#!/usr/bin/env python3
"""Benchmark (not a test): latency a request to an HTTP connection pays for
going through Gatehouse.

Starts tests/support/http_api.py (the test CRM, which needs a bearer token)
and a release `gatehouse serve` (SQLite state, free ports), registers the CRM
twice (`crm` without masks, `crm-masked` with `$..email` masked and the
email detector on), and times `GET /customers/1` three ways, interleaved round
by round, each over one kept-alive HTTP connection:

  direct        the CRM itself, with its token (the floor)
  gateway       /proxy/crm/customers/1 with a Gatehouse token (streamed)
  gateway-mask  /proxy/crm-masked/customers/1 (read whole, masked)

Prints p50 and p99 per way (medians over rounds) and the gateway's ratios and
added milliseconds against direct.

    cargo build --release --locked -p gatehouse
    python3 bench/http_proxy.py [--requests 500] [--rounds 5]
"""

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "gatehouse")
SECRET = "bench-crm-token"


def start_api():
    p = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "tests/support/http_api.py")],
        env={**os.environ, "CRM_TOKEN": SECRET},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = p.stdout.readline()
    return p, int(line.split()[1])


def start_gatehouse(data):
    p = subprocess.Popen(
        [BIN, "serve", "--data-dir", data, "--api-listen", "127.0.0.1:0", "--pg-listen", "off",
         "--mysql-listen", "off", "--aws-listen", "off", "--log", "warn,gatehouse=info"],
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in p.stderr:
        m = re.search(r"api=http://(\S+)", line)
        if m:
            return p, m.group(1)
    raise SystemExit("gatehouse did not start")


def cli(url, token, *args, env=None):
    out = subprocess.run(
        [BIN, *args],
        env={**os.environ, "GATEHOUSE_URL": f"http://{url}", "GATEHOUSE_TOKEN": token, **(env or {})},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


def timed(conn, path, headers, n):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        body = r.read()
        out.append((time.perf_counter() - t) * 1000)
        if r.status != 200:
            raise SystemExit(f"{path}: {r.status} {body[:200]!r}")
    return out


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    api, port = start_api()
    data = tempfile.mkdtemp(prefix="gh-bench-")
    gh, url = start_gatehouse(data)
    try:
        admin = open(os.path.join(data, "admin.token")).read().strip()
        decl = os.path.join(data, "crm.toml")
        with open(decl, "w") as f:
            f.write(f"""
[[connections]]
name = "crm"
kind = "http"
url = "http://127.0.0.1:{port}"
bearer = {{ env = "CRM_TOKEN" }}
groups = ["agents"]

[[connections]]
name = "crm-masked"
kind = "http"
url = "http://127.0.0.1:{port}"
bearer = {{ env = "CRM_TOKEN" }}
groups = ["agents"]

[[masks]]
connections = ["crm-masked"]
json_paths = ["$..email"]
method = "redact"

[[detectors]]
connections = ["crm-masked"]
kinds = ["email"]
""")
        cli(url, admin, "apply", "-f", decl, env={"CRM_TOKEN": SECRET})
        token = cli(url, admin, "tokens", "create", "--name", "bench", "--group", "agents").split()[0]
        host, gport = url.split(":")
        ways = {
            "direct": (("127.0.0.1", port), "/customers/1", {"Authorization": f"Bearer {SECRET}"}),
            "gateway": ((host, int(gport)), "/proxy/crm/customers/1", {"Authorization": f"Bearer {token}"}),
            "gateway-mask": ((host, int(gport)), "/proxy/crm-masked/customers/1", {"Authorization": f"Bearer {token}"}),
        }
        conns = {w: http.client.HTTPConnection(*addr) for w, (addr, _, _) in ways.items()}
        # Warm up (connections, caches).
        for w, (_, path, h) in ways.items():
            timed(conns[w], path, h, 50)
        # The masked way really masks.
        _, path, h = ways["gateway-mask"]
        conns["gateway-mask"].request("GET", path, headers=h)
        shown = json.loads(conns["gateway-mask"].getresponse().read())
        assert shown["email"] == "[REDACTED]", shown
        p50 = {w: [] for w in ways}
        p99 = {w: [] for w in ways}
        order = list(ways)
        for r in range(a.rounds):
            for w in order[r % len(order):] + order[: r % len(order)]:
                _, path, h = ways[w]
                xs = timed(conns[w], path, h, a.requests)
                p50[w].append(pct(xs, 0.5))
                p99[w].append(pct(xs, 0.99))
        print(f"GET /customers/1, {a.requests} requests x {a.rounds} rounds, kept-alive connections\n")
        print("| way | p50 ms | p99 ms | p50 / direct | p99 / direct | p50 added ms |")
        print("|---|---:|---:|---:|---:|---:|")
        d50 = statistics.median(p50["direct"])
        d99 = statistics.median(p99["direct"])
        for w in ways:
            m50, m99 = statistics.median(p50[w]), statistics.median(p99[w])
            print(f"| {w} | {m50:.3f} | {m99:.3f} | {m50 / d50:.2f} | {m99 / d99:.2f} | {m50 - d50:+.3f} |")
    finally:
        gh.terminate()
        api.stdin.close()
        api.terminate()
        gh.wait()
        api.wait()


if __name__ == "__main__":
    main()
