#!/usr/bin/env python3
"""Run one SQL statement on a Gatehouse connection, under its policy and masks.

usage: query.py CONNECTION "SQL" [--param VALUE ...] [--limit N] [--timeout 5s] [--table]
       query.py CONNECTION - ...        (read the SQL from standard input)

Parameters fill $1, $2, ... in order. Each VALUE is read as JSON when it is valid JSON
(42, 3.5, true, null, "42") and as a plain string otherwise (alice@example.com).

Exit codes:
  0  the statement ran; prints {"columns", "rows", "row_count", "command", "truncated", "session_id"}
  2  held for human review; prints {"review_id", "approve_command", "wait_url", ...}.
     Wait with wait_review.py REVIEW_ID, then re-run exactly the same command once.
  3  refused by a policy rule; prints {"error": {"code", "message", "rule"}}. Do not work around it.
  1  anything else (SQL error with its SQLSTATE, unknown connection, timeout, ...)
"""

import argparse
import json
import sys

import _gatehouse as gh


def param(text):
    try:
        return json.loads(text)
    except ValueError:
        return text


def main():
    ap = argparse.ArgumentParser(description="Run one SQL statement through Gatehouse.")
    ap.add_argument("connection", help="connection name (see connections.py)")
    ap.add_argument("sql", help='the statement, e.g. "SELECT * FROM orders WHERE id = $1"; - reads stdin')
    ap.add_argument("--param", action="append", default=[], metavar="VALUE",
                    help="value for $1, $2, ... in order (JSON if it parses, else a string)")
    ap.add_argument("--limit", type=int, help="return at most N rows (the answer says if it was truncated)")
    ap.add_argument("--timeout", help='statement timeout, e.g. "5s"')
    ap.add_argument("--table", action="store_true", help="print a readable table instead of JSON")
    args = ap.parse_args()

    sql = sys.stdin.read() if args.sql == "-" else args.sql
    if not sql.strip():
        raise gh.GatehouseError("the SQL statement is empty")
    body = {"sql": sql, "params": [param(p) for p in args.param]}
    if args.limit is not None:
        if args.limit < 1:
            raise gh.GatehouseError("--limit must be at least 1")
        body["limit"] = args.limit
    if args.timeout:
        body["timeout"] = args.timeout

    try:
        status, answer = gh.call("POST", "/v1/connections/%s/query" % gh.seg(args.connection),
                                 body, timeout=330)
    except gh.GatehouseError as e:
        if e.status == 403:
            err = (e.body or {}).get("error") or {}
            rule = err.get("rule")
            e.exit_code = gh.EXIT_DENIED
            e.message = "denied%s: %s -- this is the policy's decision: report it to the user; " \
                "do not rephrase the statement to get around it" % (
                    " by rule %s" % rule if rule else "", err.get("message") or e.message)
        raise

    if status == 202:
        gh.emit(answer)
        rid = answer.get("review_id", "?")
        gh.note("gatehouse: held for review %s: %s" % (rid, answer.get("message", "")))
        gh.note("gatehouse: an approver runs: %s" % answer.get("approve_command", "gatehouse reviews approve " + rid))
        gh.note("gatehouse: then: wait_review.py %s, and once approved re-run this exact command (same SQL and parameters)" % rid)
        return gh.EXIT_REVIEW

    if args.table:
        cols = answer.get("columns", [])
        headers = [c.get("name", "?") + (" (masked)" if c.get("masked") else "") for c in cols]
        if cols:
            print(gh.table(headers, answer.get("rows", [])))
        print("%s%s%s" % (answer.get("command", ""),
                          "" if not cols else " - %s row(s)" % answer.get("row_count", 0),
                          " - truncated" if answer.get("truncated") else ""))
    else:
        gh.emit(answer)
    for n in answer.get("notices") or []:
        gh.note("gatehouse: notice: %s" % (n if isinstance(n, str) else json.dumps(n)))
    if answer.get("truncated"):
        gh.note("gatehouse: the result was truncated at %s rows; narrow the query or raise --limit"
                % answer.get("row_count"))
    return gh.EXIT_OK


if __name__ == "__main__":
    gh.run(main)
