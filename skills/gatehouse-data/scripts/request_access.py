#!/usr/bin/env python3
"""Ask for just-in-time access to a Gatehouse connection; a person approves it.

usage: request_access.py CONNECTION --level read|write|ddl|admin --for 30m --reason "..."

Prints {"review": {...}, "approve_command"} (the request is a review of kind access).
Exit 0 when the request was filed (wait for it with wait_review.py REVIEW_ID), 1 on error
(for example when the policy does not let you ask for that level or duration).
"""

import argparse

import _gatehouse as gh


def main():
    ap = argparse.ArgumentParser(description="Ask for just-in-time access to a connection.")
    ap.add_argument("connection", help="connection name")
    ap.add_argument("--level", default="read", choices=["read", "write", "ddl", "admin"],
                    help="what the grant covers (default read)")
    ap.add_argument("--for", dest="duration", default="30m", help='how long, e.g. "30m" (default 30m)')
    ap.add_argument("--reason", required=True, help="why; shown to the approvers")
    args = ap.parse_args()

    _, answer = gh.call("POST", "/v1/access/requests", {
        "connection": args.connection,
        "level": args.level,
        "duration": args.duration,
        "reason": args.reason,
    })
    gh.emit(answer)
    rid = (answer.get("review") or {}).get("id", "?")
    gh.note("gatehouse: access request %s filed (%s on %s for %s); an approver runs: %s"
            % (rid, args.level, args.connection, args.duration,
               answer.get("approve_command", "gatehouse reviews approve " + rid)))
    gh.note("gatehouse: then: wait_review.py %s" % rid)
    return gh.EXIT_OK


if __name__ == "__main__":
    gh.run(main)
