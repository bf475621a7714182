"""Shared helpers for the gatehouse-data skill scripts (Python 3 standard library only).

Every script talks to the Gatehouse HTTP API at $GATEHOUSE_URL with the caller's own
$GATEHOUSE_TOKEN. No database credential is ever needed or handled here, and the token
is never printed.

Conventions shared by the scripts:
  * stdout: the server's JSON answer (or a readable table with --table);
  * stderr: one human sentence on anything that is not a plain success;
  * exit codes: 0 success, 1 error, 2 held for review / still pending, 3 denied by policy.
"""

import json
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_REVIEW = 2
EXIT_DENIED = 3

# A review long-poll asks the server to wait at most this long per request.
MAX_WAIT_SLICE = 60


class GatehouseError(Exception):
    """A failure to report to the user; `body` is the server's JSON answer, if any."""

    def __init__(self, message, status=None, body=None, exit_code=EXIT_ERROR):
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = body
        self.exit_code = exit_code


def config():
    """(base_url, token) from the environment, or an error saying how to set them."""
    url = os.environ.get("GATEHOUSE_URL", "").strip()
    token = os.environ.get("GATEHOUSE_TOKEN", "").strip()
    if not url:
        raise GatehouseError(
            "GATEHOUSE_URL is not set: export the address of the Gatehouse API, "
            "e.g. `export GATEHOUSE_URL=http://127.0.0.1:7400`"
        )
    if not token:
        raise GatehouseError(
            "GATEHOUSE_TOKEN is not set: export your own Gatehouse API token "
            "(an administrator creates one with `gatehouse tokens create --name NAME --group GROUP`), "
            "e.g. `export GATEHOUSE_TOKEN=$(cat ~/.gatehouse-token)`; never a database password"
        )
    if not url.startswith(("http://", "https://")):
        raise GatehouseError(
            "GATEHOUSE_URL=%r is not an http(s) URL, e.g. http://127.0.0.1:7400" % url
        )
    return url.rstrip("/"), token


def seg(name):
    """One URL path segment (a connection name or review id), percent-encoded."""
    return urllib.parse.quote(str(name), safe="")


def call(method, path, body=None, timeout=120):
    """Sends one API request; returns (status, parsed JSON) for 2xx answers.

    Raises GatehouseError with the server's message for any other answer, and with
    a hint for network failures.
    """
    base, token = config()
    data = None
    headers = {"Authorization": "Bearer " + token, "Accept": "application/json"}
    if body is not None:
        data = json.dumps(body).encode("utf-8")
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, _parse(resp.read(), resp.status)
    except urllib.error.HTTPError as e:
        status = e.code
        raw = e.read()
        parsed = _parse(raw, status, strict=False)
        raise _api_error(status, parsed, raw, token) from None
    except urllib.error.URLError as e:
        raise GatehouseError(
            "cannot reach Gatehouse at %s (%s): check GATEHOUSE_URL and that the server is running"
            % (base, _scrub(str(e.reason), token))
        ) from None
    except (socket.timeout, TimeoutError):
        raise GatehouseError(
            "Gatehouse at %s did not answer within %ss; try again, or ask for less "
            "(--limit, a narrower WHERE)" % (base, timeout)
        ) from None
    except ConnectionError as e:
        raise GatehouseError(
            "lost the connection to Gatehouse at %s (%s); try again" % (base, e)
        ) from None


def _parse(raw, status, strict=True):
    if not raw:
        return {}
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        if strict:
            raise GatehouseError(
                "Gatehouse answered %s with something that is not JSON; is GATEHOUSE_URL the "
                "Gatehouse API (not the PostgreSQL port)?" % status
            ) from None
        return None


def _scrub(text, token):
    return text.replace(token, "[token]") if token else text


def _api_error(status, parsed, raw, token):
    err = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(err, dict):
        message = str(err.get("message") or err.get("code") or "error")
        code = err.get("code")
    else:
        message = _scrub(raw.decode("utf-8", "replace").strip()[:300], token) or "no details"
        code = None
    message = _scrub(message, token)
    if status == 401:
        message = (
            "Gatehouse refused the token (401: %s): check GATEHOUSE_TOKEN; it may be wrong, "
            "expired or revoked" % message
        )
    elif status in (404, 405) and not isinstance(err, dict):
        message = (
            "Gatehouse has no such route (%s): is GATEHOUSE_URL the Gatehouse API, and is the "
            "server recent enough to have the query API?" % status
        )
    else:
        detail = []
        if isinstance(err, dict) and err.get("sqlstate"):
            detail.append("SQLSTATE " + str(err["sqlstate"]))
        if isinstance(err, dict) and err.get("rule"):
            detail.append("rule " + str(err["rule"]))
        suffix = " [%s]" % ", ".join(detail) if detail else ""
        message = "%s (%s%s)%s" % (message, status, " " + code if code else "", suffix)
    return GatehouseError(message, status=status, body=parsed if isinstance(parsed, dict) else None)


def emit(obj):
    """Prints a JSON document on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def note(message):
    """Prints one line for the human on stderr."""
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.stderr.flush()


def cell(value):
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def table(headers, rows):
    """A plain-text table: headers, a rule, one line per row."""
    text = [[cell(v).replace("\n", "\\n") for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text:
        for i, v in enumerate(row):
            if i < len(widths):
                widths[i] = max(widths[i], len(v))
    line = lambda vals: " | ".join(v.ljust(widths[i]) for i, v in enumerate(vals)).rstrip()
    out = [line(headers), "-+-".join("-" * w for w in widths)]
    out.extend(line(r) for r in text)
    return "\n".join(out)


def run(main):
    """Runs a script's main(), turning GatehouseError into output and an exit code."""
    try:
        code = main()
    except GatehouseError as e:
        if e.body is not None:
            emit(e.body)
        note("gatehouse: " + e.message)
        code = e.exit_code
    except KeyboardInterrupt:
        note("gatehouse: interrupted")
        code = 130
    sys.exit(code or 0)


def review_url(review_id, wait_seconds):
    return "/v1/reviews/%s?wait=%ds" % (seg(review_id), max(1, int(wait_seconds)))


def wait_for_review(review_id, timeout):
    """Long-polls a review in slices of at most MAX_WAIT_SLICE seconds.

    Returns the review's JSON once it is decided, or its last pending state when
    `timeout` seconds have passed.
    """
    deadline = time.monotonic() + max(0, timeout)
    while True:
        remaining = deadline - time.monotonic()
        wait = max(1, min(MAX_WAIT_SLICE, int(remaining)))
        _, body = call("GET", review_url(review_id, wait), timeout=wait + 30)
        review = body.get("review") or {}
        if review.get("state") != "pending" or time.monotonic() >= deadline - 0.5:
            return review
