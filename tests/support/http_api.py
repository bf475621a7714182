"""A small HTTP API for tests of the HTTP proxy: a CRM that needs a
credential the caller of the gateway never has. It listens on 127.0.0.1, a
free port, and prints `port N`; it exits when stdin closes.

The credential (env CRM_TOKEN) is accepted as `Authorization: Bearer T`,
as basic auth `svc:T`, or as `X-Api-Key: T`. Without it: 401.

    GET    /customers         a list with emails, card numbers, notes
    GET    /customers/{id}    one customer
    DELETE /customers/{id}    deletes it (204)
    POST   /refunds           echoes the JSON body with "ok": true
    GET    /echo              what arrived: header names, the auth form
                              used, path and query (never a header value)
    GET    /large?mb=N        N MiB of text, streamed in chunks
    GET    /log               the mutating requests received so far
"""

import base64
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

TOKEN = os.environ["CRM_TOKEN"]
CUSTOMERS = {
    "1": {
        "id": 1,
        "name": "Ann Lee",
        "email": "ann@example.com",
        "card_number": "4111111111111111",
        "notes": "prefers mail to ann.private@example.org",
        "contacts": [{"kind": "work", "email": "ann@corp.example"}],
    },
    "2": {
        "id": 2,
        "name": "Bo Chen",
        "email": "bo@example.com",
        "card_number": "5500005555555559",
        "notes": "VIP",
        "contacts": [],
    },
}
LOG = []
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def auth_form(self):
        auth = self.headers.get("Authorization", "")
        if auth == f"Bearer {TOKEN}":
            return "bearer"
        if auth.startswith("Basic "):
            try:
                if base64.b64decode(auth[6:]).decode() == f"svc:{TOKEN}":
                    return "basic"
            except Exception:
                return None
        if self.headers.get("X-Api-Key") == TOKEN:
            return "header"
        return None

    def send_json(self, status, value):
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Set-Cookie", "crm_session=upstream-secret-cookie")
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def handle_any(self):
        url = urlsplit(self.path)
        form = self.auth_form()
        body = self.body()
        if form is None:
            self.send_json(401, {"error": "missing or wrong credential"})
            return
        parts = [p for p in url.path.split("/") if p]
        if self.command in ("POST", "PUT", "PATCH", "DELETE"):
            with LOCK:
                LOG.append({"method": self.command, "path": url.path, "body": body.decode("utf-8", "replace")})
        if url.path == "/echo":
            self.send_json(
                200,
                {
                    "auth": form,
                    "headers": sorted(k.lower() for k in self.headers.keys()),
                    "path": url.path,
                    "query": url.query,
                },
            )
        elif url.path == "/log":
            with LOCK:
                self.send_json(200, {"log": list(LOG)})
        elif url.path == "/large":
            mb = int(parse_qs(url.query).get("mb", ["1"])[0])
            chunk = b"a" * 65536
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(mb * 1024 * 1024))
            self.end_headers()
            for _ in range(mb * 16):
                self.wfile.write(chunk)
        elif parts == ["customers"] and self.command == "GET":
            self.send_json(200, {"customers": list(CUSTOMERS.values()), "owner": {"email": "owner@example.com"}})
        elif len(parts) == 2 and parts[0] == "customers" and parts[1] in CUSTOMERS:
            if self.command == "GET":
                self.send_json(200, CUSTOMERS[parts[1]])
            elif self.command == "DELETE":
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.send_json(405, {"error": "method not allowed"})
        elif parts == ["refunds"] and self.command == "POST":
            self.send_json(201, {"ok": True, "received": json.loads(body or b"null")})
        else:
            self.send_json(404, {"error": "no such route", "path": url.path})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = handle_any


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"port {server.server_address[1]}", flush=True)
    for _ in sys.stdin:
        pass
    server.shutdown()


if __name__ == "__main__":
    main()
