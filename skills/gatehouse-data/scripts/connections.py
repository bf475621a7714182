#!/usr/bin/env python3
"""List the Gatehouse connections you may use.

usage: connections.py [--table]

Prints {"connections": [{"name", "kind", "groups", ...}]} (or a table with --table).
Exit 0 on success, 1 on any error (the message says what to fix).
"""

import argparse

import _gatehouse as gh


def main():
    ap = argparse.ArgumentParser(description="List the Gatehouse connections you may use.")
    ap.add_argument("--table", action="store_true", help="print a readable table instead of JSON")
    args = ap.parse_args()
    _, body = gh.call("GET", "/v1/connections")
    conns = body.get("connections", [])
    if args.table:
        rows = [[c.get("name"), c.get("kind"), ", ".join(c.get("groups") or [])] for c in conns]
        print(gh.table(["name", "kind", "groups"], rows))
    else:
        gh.emit(body)
    if not conns:
        gh.note("gatehouse: no connection is open to you; ask an administrator, or request access "
                "with request_access.py if you know the connection's name")
    return gh.EXIT_OK


if __name__ == "__main__":
    gh.run(main)
