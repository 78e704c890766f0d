#!/usr/bin/python3
"""A small Docker-registry token issuer (Docker Hub's flow) for the token-auth test registry.

  token_issuer.py gencert --dir DIR
      writes DIR/key.pem (EC P-256) and DIR/cert.pem (self-signed; the registry's rootcertbundle)
  token_issuer.py serve --dir DIR --service S --issuer I --user U [--port-file F]
      password from $MC_TOKEN_PASSWORD; listens on 127.0.0.1 (free port, written to F)

GET /token?service=S&scope=repository:NAME:pull,push[&scope=...] with optional Basic
credentials -> 200 {"token", "access_token", "expires_in", "issued_at"}. Anonymous callers get
at most "pull"; the configured user gets pull, push and delete; a wrong user or password -> 401.
POST /token with grant_type=password (the OAuth2 form docker/containerd also use) works alike.
The token is an ES256 JWT whose `x5c` header carries the certificate, which distribution 2.8
verifies against its rootcertbundle (registry/auth/token: parseAndVerifyCertChain).
"""

import argparse
import base64
import datetime
import hmac
import http.server
import json
import os
import secrets
import sys
import time
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

TOKEN_LIFETIME = 300


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def gencert(directory):
    os.makedirs(directory, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mc-test-token-issuer")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path = os.path.join(directory, "key.pem")
    with open(os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(os.path.join(directory, "cert.pem"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


class Issuer:
    def __init__(self, directory, service, issuer, user, password):
        with open(os.path.join(directory, "key.pem"), "rb") as f:
            self.key = serialization.load_pem_private_key(f.read(), None)
        with open(os.path.join(directory, "cert.pem"), "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        self.x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
        self.service = service
        self.issuer = issuer
        self.user = user
        self.password = password

    def check(self, user, password):
        """None: anonymous; True: good credentials; False: wrong ones."""
        if user is None:
            return None
        return hmac.compare_digest(user, self.user) and hmac.compare_digest(password, self.password)

    def grant(self, scopes, authenticated):
        access = []
        for scope in scopes:
            # repository:NAME:ACTIONS; NAME may hold ':' only in a port, which repo names never have.
            parts = scope.split(":")
            if len(parts) < 3:
                continue
            kind, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1].split(",")
            if kind == "repository":
                allowed = {"pull", "push", "delete", "*"} if authenticated else {"pull"}
            elif kind == "registry" and name == "catalog":
                allowed = {"*"} if authenticated else set()
            else:
                allowed = set()
            access.append({"type": kind, "name": name, "actions": [a for a in actions if a in allowed]})
        return access

    def token(self, subject, access):
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": self.x5c}
        claims = {
            "iss": self.issuer, "sub": subject, "aud": self.service,
            "exp": now + TOKEN_LIFETIME, "nbf": now - 5, "iat": now,
            "jti": secrets.token_hex(16), "access": access,
        }
        signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")  # JWS wants raw r||s
        return signing_input + "." + b64url(signature)


def make_handler(issuer, log_file):
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "mc-test-token-issuer"

        def log_message(self, fmt, *args):
            log_file.write("%s %s\n" % (self.log_date_time_string(), fmt % args))
            log_file.flush()

        def _send(self, status, body, extra=None):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _basic(self):
            header = self.headers.get("Authorization", "")
            if not header.lower().startswith("basic "):
                return None, None
            try:
                raw = base64.b64decode(header[6:].strip()).decode()
            except (ValueError, UnicodeDecodeError):
                return "", ""
            user, _, password = raw.partition(":")
            return user, password

        def _issue(self, params, user, password):
            path = urllib.parse.urlsplit(self.path).path
            if path != "/token":
                return self._send(404, {"details": "not found; the realm is /token"})
            service = params.get("service", [issuer.service])[0]
            if service != issuer.service:
                return self._send(400, {"details": f"unknown service {service!r}"})
            ok = issuer.check(user, password)
            if ok is False:
                return self._send(401, {"details": "incorrect username or password"},
                                  {"WWW-Authenticate": 'Basic realm="mc-test-token-issuer"'})
            scopes = []
            for s in params.get("scope", []):
                scopes += s.split(" ")  # some clients join scopes with spaces
            access = issuer.grant(scopes, ok is True)
            token = issuer.token(user if ok else "", access)
            issued = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            self._send(200, {"token": token, "access_token": token, "expires_in": TOKEN_LIFETIME,
                             "issued_at": issued})

        def do_GET(self):
            params = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            user, password = self._basic()
            self._issue(params, user, password)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            form = urllib.parse.parse_qs(self.rfile.read(length).decode(errors="replace"))
            if form.get("grant_type", [""])[0] != "password":
                return self._send(400, {"details": "only grant_type=password is supported"})
            user = form.get("username", [None])[0]
            password = form.get("password", [""])[0]
            self._issue(form, user, password)

    return Handler


def serve(args):
    password = os.environ.get("MC_TOKEN_PASSWORD")
    if not password:
        print("token_issuer: set MC_TOKEN_PASSWORD", file=sys.stderr)
        return 1
    issuer = Issuer(args.dir, args.service, args.issuer, args.user, password)
    log_file = open(os.path.join(args.dir, "issuer.log"), "a")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make_handler(issuer, log_file))
    port = server.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.rename(tmp, args.port_file)
    server.serve_forever()
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gencert")
    g.add_argument("--dir", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--dir", required=True)
    s.add_argument("--service", required=True)
    s.add_argument("--issuer", required=True)
    s.add_argument("--user", required=True)
    s.add_argument("--port-file")
    args = p.parse_args()
    if args.cmd == "gencert":
        gencert(args.dir)
        return 0
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
