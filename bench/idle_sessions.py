#!/usr/bin/env python3
"""Holds N idle client sessions open through a PostgreSQL proxy and reports
the proxy's memory (VmRSS, VmHWM from /proc/PID/status) as they accumulate.

Used by bench/pgbench.sh; not a test. Each session connects, runs `SELECT 1`
once (so the relay is fully established), then stays idle. Memory is sampled
before the first connection and at a few checkpoints; the script then closes
every session and exits.

Output: one line per checkpoint, `sessions=N rss_kib=R hwm_kib=H`, then a
`per_session_kib=…` line (least-squares slope of RSS over the checkpoints).
"""

import argparse
import sys
import time

import psycopg


def mem(pid):
    rss = hwm = None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--pid", type=int, required=True, help="proxy process to measure")
    p.add_argument("--sessions", type=int, required=True)
    p.add_argument("--conninfo", required=True, help="libpq conninfo of the proxy")
    p.add_argument("--settle", type=float, default=1.0, help="seconds to wait before sampling")
    a = p.parse_args()

    n = a.sessions
    checkpoints = sorted({0, max(1, n // 4), max(1, n // 2), max(1, 3 * n // 4), n})
    samples = []
    conns = []
    try:
        for target in checkpoints:
            while len(conns) < target:
                c = psycopg.connect(a.conninfo, autocommit=True)
                c.execute("SELECT 1").fetchall()
                conns.append(c)
            time.sleep(a.settle)
            rss, hwm = mem(a.pid)
            samples.append((len(conns), rss))
            print(f"sessions={len(conns)} rss_kib={rss} hwm_kib={hwm}", flush=True)
    except Exception as e:  # report how far it got, then the caller decides
        print(f"error after {len(conns)} sessions: {e}", file=sys.stderr, flush=True)
        return_code = 1
    else:
        return_code = 0
    finally:
        for c in conns:
            try:
                c.close()
            except Exception:
                pass

    if len(samples) >= 2:
        xs = [s for s, _ in samples]
        ys = [r for _, r in samples]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        den = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0
        print(f"per_session_kib={slope:.1f}", flush=True)
    return return_code


if __name__ == "__main__":
    sys.exit(main())
