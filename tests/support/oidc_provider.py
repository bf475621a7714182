"""A real OIDC provider for Gatehouse's tests (oidc-provider-mock from PyPI).

Binds 127.0.0.1 on a free port, prints one JSON line {"issuer": URL}, and
serves until its standard input closes. Two test-only routes are added:

  POST /_test/token   JSON {"sub", "claims", "aud"} -> {"id_token"}: runs the
                      real authorization-code flow against the provider and
                      returns the signed ID token it issued.
  POST /_test/rotate  replaces the provider's signing key (key rotation).
  POST /_test/forge   JSON {"claims", "alg"} -> {"token"}: the claims signed
                      with a key the provider does NOT publish (an attacker's).

Usage: python3 oidc_provider.py [--max-age SECONDS]
"""

import argparse
import json
import sys
import threading
import urllib.parse
from datetime import timedelta

import flask
import werkzeug.serving
from authlib import jose

import oidc_provider_mock


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-age", type=int, default=3600)
    args = parser.parse_args()

    app = oidc_provider_mock.app(
        require_client_registration=False,
        access_token_max_age=timedelta(seconds=args.max_age),
    )

    @app.post("/_test/token")
    def test_token():
        body = flask.request.get_json()
        sub = body["sub"]
        aud = body.get("aud", "gatehouse")
        client = app.test_client()
        client.put(f"/users/{urllib.parse.quote(sub)}", json=body.get("claims", {}))
        redirect_uri = "http://127.0.0.1/callback"
        query = urllib.parse.urlencode(
            {
                "client_id": aud,
                "redirect_uri": redirect_uri,
                "response_type": "code",
                "scope": "openid email profile",
                "nonce": "n",
            }
        )
        base = flask.request.host_url.rstrip("/")
        r = client.post(f"/oauth2/authorize?{query}", data={"sub": sub}, base_url=base)
        location = r.headers["Location"]
        code = urllib.parse.parse_qs(urllib.parse.urlparse(location).query)["code"][0]
        r = client.post(
            "/oauth2/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "client_id": aud,
                "client_secret": "anything",
            },
            base_url=base,
        )
        return flask.jsonify({"id_token": r.get_json()["id_token"]})

    @app.post("/_test/rotate")
    def rotate():
        flask.g.oidc_provider_mock_storage.jwk = jose.RSAKey.generate_key(is_private=True)
        return "", 204

    attacker_key = jose.RSAKey.generate_key(is_private=True)

    @app.post("/_test/forge")
    def forge():
        body = flask.request.get_json()
        alg = body.get("alg", "RS256")
        key = attacker_key if alg.startswith("RS") else body["secret"].encode()
        header = {"alg": alg, "typ": "JWT"}
        token = jose.jwt.encode(header, body["claims"], key)
        return flask.jsonify({"token": token.decode()})

    server = werkzeug.serving.make_server("127.0.0.1", 0, app, threaded=True)
    port = server.server_port
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"issuer": f"http://127.0.0.1:{port}"}), flush=True)
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
