#!/usr/bin/env python3
"""Wait until a Gatehouse review (a held statement or an access request) is decided.

usage: wait_review.py REVIEW_ID [--timeout 600]

Long-polls GET /v1/reviews/REVIEW_ID?wait=... in slices of at most 60 s and prints
{"review": {...}} when it is decided or the timeout passes.

Exit codes:
  0  approved (re-send the held statement now, exactly as before) or executed (it already ran)
  1  rejected or expired (report it with the reason; do not retry), or any error
  2  still pending when --timeout passed (run it again to keep waiting)
"""

import argparse

import _gatehouse as gh


def main():
    ap = argparse.ArgumentParser(description="Wait for a Gatehouse review to be decided.")
    ap.add_argument("review_id", help="the review id, rv_...")
    ap.add_argument("--timeout", type=int, default=600, help="seconds to wait in all (default 600)")
    args = ap.parse_args()

    review = gh.wait_for_review(args.review_id, args.timeout)
    gh.emit({"review": review})
    state = review.get("state")
    rid = review.get("id", args.review_id)
    if state == "approved":
        if review.get("kind") == "access":
            gh.note("gatehouse: access request %s approved%s; run your statements now"
                    % (rid, " (grant %s)" % review["grant_id"] if review.get("grant_id") else ""))
        else:
            gh.note("gatehouse: review %s approved; re-send the identical statement (same SQL and parameters) once" % rid)
        return gh.EXIT_OK
    if state == "executed":
        gh.note("gatehouse: review %s was approved and its statement has already run; "
                "sending it again needs a new review" % rid)
        return gh.EXIT_OK
    if state == "pending":
        gh.note("gatehouse: review %s is still pending after %ss; run wait_review.py %s again to keep waiting"
                % (rid, args.timeout, rid))
        return gh.EXIT_REVIEW
    reasons = [v.get("reason") for v in review.get("votes", []) if v.get("decision") == "reject" and v.get("reason")]
    gh.note("gatehouse: review %s was %s%s; do not retry the statement" % (
        rid, state, (": " + "; ".join(reasons)) if reasons else ""))
    return gh.EXIT_ERROR


if __name__ == "__main__":
    gh.run(main)
