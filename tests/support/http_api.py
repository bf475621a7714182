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
    GET    /slow?secs=N       a line every 100 ms for N seconds

With CRM_MTLS_DIR set it serves HTTPS and requires a client certificate
signed by its own CA instead of a token: it writes ca.pem (the CA, which
also signed its server certificate for 127.0.0.1) and client.pem /
client.key (a client certificate) into that directory.
"""

import base64
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

TOKEN = os.environ.get("CRM_TOKEN", "")
MTLS = os.environ.get("CRM_MTLS_DIR")
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
    # Headers and body leave in one write, without Nagle's delay: a kept-alive
    # client would otherwise wait for a delayed ACK (40 ms) on every request.
    disable_nagle_algorithm = True
    wbufsize = 64 * 1024

    def log_message(self, *args):
        pass

    def auth_form(self):
        if MTLS:
            # The TLS handshake already required a certificate from our CA.
            return "client_cert" if self.connection.getpeercert() else None
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
        elif url.path == "/slow":
            secs = int(parse_qs(url.query).get("secs", ["10"])[0])
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(secs * 10 * 6))
            self.end_headers()
            for i in range(secs * 10):
                self.wfile.write(b"%05d\n" % i)
                self.wfile.flush()
                time.sleep(0.1)
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


def make_certs(directory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def key():
        return ec.generate_private_key(ec.SECP256R1())

    def cert(subject, public, issuer, signer, ca=False, san=None):
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return b.sign(signer, hashes.SHA256())

    def pem_key(k):
        return k.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    ca_key = key()
    ca = cert("test-ca", ca_key.public_key(), "test-ca", ca_key, ca=True)
    srv_key = key()
    srv = cert(
        "127.0.0.1",
        srv_key.public_key(),
        "test-ca",
        ca_key,
        san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")],
    )
    cli_key = key()
    cli = cert("gatehouse", cli_key.public_key(), "test-ca", ca_key)
    pem = serialization.Encoding.PEM
    files = {
        "ca.pem": ca.public_bytes(pem),
        "server.pem": srv.public_bytes(pem),
        "server.key": pem_key(srv_key),
        "client.pem": cli.public_bytes(pem),
        "client.key": pem_key(cli_key),
    }
    for name, data in files.items():
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if MTLS:
        import ssl

        make_certs(MTLS)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(MTLS, "server.pem"), os.path.join(MTLS, "server.key"))
        ctx.load_verify_locations(os.path.join(MTLS, "ca.pem"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"port {server.server_address[1]}", flush=True)
    for _ in sys.stdin:
        pass
    server.shutdown()


if __name__ == "__main__":
    main()
