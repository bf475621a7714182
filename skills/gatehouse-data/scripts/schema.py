#!/usr/bin/env python3
"""Show the tables and columns of a Gatehouse connection, with masked columns flagged.

usage: schema.py CONNECTION [TABLE ...] [--table]

TABLE filters by table name or schema.table (case-insensitive). Prints
{"connection", "tables": [{"schema", "name", "columns": [{"name", "type", "masked"}]}]}.
Exit 0 on success, 1 on any error.
"""

import argparse

import _gatehouse as gh


def main():
    ap = argparse.ArgumentParser(description="Show a connection's tables and columns.")
    ap.add_argument("connection", help="connection name (see connections.py)")
    ap.add_argument("tables", nargs="*", metavar="TABLE", help="only these tables (name or schema.name)")
    ap.add_argument("--table", action="store_true", help="print a readable table instead of JSON")
    args = ap.parse_args()
    _, body = gh.call("GET", "/v1/connections/%s/schema" % gh.seg(args.connection))
    tables = body.get("tables", [])
    if args.tables:
        wanted = {t.lower() for t in args.tables}
        tables = [
            t for t in tables
            if str(t.get("name", "")).lower() in wanted
            or ("%s.%s" % (t.get("schema"), t.get("name"))).lower() in wanted
        ]
        body = dict(body, tables=tables)
        if not tables:
            gh.note("gatehouse: no table named %s on %s; run schema.py %s without a filter to see them all"
                    % (", ".join(args.tables), args.connection, args.connection))
    if args.table:
        rows = []
        for t in tables:
            for c in t.get("columns", []):
                rows.append(["%s.%s" % (t.get("schema"), t.get("name")), c.get("name"),
                             c.get("type"), "masked" if c.get("masked") else ""])
        print(gh.table(["table", "column", "type", "masked"], rows))
    else:
        gh.emit(body)
    return gh.EXIT_OK


if __name__ == "__main__":
    gh.run(main)
