#!/usr/bin/env python3
"""Independent JOSE cross-check for SGW sealing (SEC-JSON-SIG-1/2, SEC-JSON-ENC-1/2, DES-SEAL).

Uses Python jwcrypto only (never the Rust code) to
  open:  decrypt a nested JWE(JWS) token and verify it, checking the DES-SEAL headers;
         prints the inner payload bytes to stdout; exit status 1 on any failure.
  seal:  sign-then-encrypt a payload the DES-SEAL way; prints the compact token.

Profiles: message (typ sgw-msg, cty sgw-msg+jws), profile (typ sgw-profile, cty sgw-profile+jws).
"""
import argparse
import hashlib
import json
import sys

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from jwcrypto import jwe, jwk, jws
from jwcrypto.common import base64url_encode, json_decode

PROFILES = {"message": ("sgw-msg", "sgw-msg+jws"), "profile": ("sgw-profile", "sgw-profile+jws")}


def cert_and_kid(path):
    with open(path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    der = cert.public_bytes(serialization.Encoding.DER)
    return cert, hashlib.sha256(der).hexdigest(), base64url_encode(hashlib.sha256(der).digest())


def pub_jwk(cert):
    pem = cert.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return jwk.JWK.from_pem(pem)


def priv_jwk(path):
    with open(path, "rb") as f:
        return jwk.JWK.from_pem(f.read())


def fail(msg):
    print(f"crosscheck jose: {msg}", file=sys.stderr)
    sys.exit(1)


def cmd_open(a):
    typ, cty = PROFILES[a.profile]
    _, own_kid, _ = cert_and_kid(a.recipient_cert)
    sender_cert, sender_kid, sender_x5t = cert_and_kid(a.sender_cert)
    token = open(a.token, encoding="ascii").read().strip()
    outer = json_decode(jws.base64url_decode(token.split(".")[0]))
    if outer.get("alg") not in ("RSA-OAEP", "RSA-OAEP-256"):
        fail(f"outer alg {outer.get('alg')}")
    if outer.get("enc") != "A128CBC-HS256" or outer.get("cty") != cty or outer.get("kid") != own_kid:
        fail(f"outer header {outer}")
    for bad in ("crit", "zip", "jku", "x5u", "jwk"):
        if bad in outer:
            fail(f"outer header has {bad}")
    e = jwe.JWE()
    e.allowed_algs = ["RSA-OAEP", "RSA-OAEP-256", "A128CBC-HS256"]
    try:
        e.deserialize(token, key=priv_jwk(a.recipient_key))
    except Exception as ex:  # noqa: BLE001 - any failure is a disagreement
        fail(f"decrypt: {ex!r}")
    inner = e.payload.decode("ascii")
    ih = json_decode(jws.base64url_decode(inner.split(".")[0]))
    if ih.get("alg") != "RS256" or ih.get("typ") != typ or ih.get("kid") != sender_kid:
        fail(f"inner header {ih}")
    if "x5t#S256" in ih and ih["x5t#S256"] != sender_x5t:
        fail("x5t#S256 mismatch")
    s = jws.JWS()
    s.allowed_algs = ["RS256"]
    try:
        s.deserialize(inner, key=pub_jwk(sender_cert))
    except Exception as ex:  # noqa: BLE001
        fail(f"verify: {ex!r}")
    sys.stdout.buffer.write(s.payload)


def cmd_seal(a):
    typ, cty = PROFILES[a.profile]
    rcert, rkid, _ = cert_and_kid(a.recipient_cert)
    _, skid, sx5t = cert_and_kid(a.sender_cert)
    payload = open(a.payload, "rb").read()
    s = jws.JWS(payload)
    s.add_signature(priv_jwk(a.sender_key), protected=json.dumps(
        {"alg": "RS256", "typ": typ, "kid": skid, "x5t#S256": sx5t}))
    inner = s.serialize(compact=True)
    e = jwe.JWE(inner.encode("ascii"), protected=json.dumps(
        {"alg": a.alg, "enc": "A128CBC-HS256", "cty": cty, "kid": rkid}))
    e.allowed_algs = ["RSA-OAEP", "RSA-OAEP-256", "A128CBC-HS256"]
    e.add_recipient(pub_jwk(rcert))
    print(e.serialize(compact=True))


def main():
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("open")
    o.add_argument("--token", required=True)
    o.add_argument("--recipient-key", required=True)
    o.add_argument("--recipient-cert", required=True)
    o.add_argument("--sender-cert", required=True)
    o.add_argument("--profile", choices=PROFILES, required=True)
    s = sub.add_parser("seal")
    s.add_argument("--payload", required=True)
    s.add_argument("--recipient-cert", required=True)
    s.add_argument("--sender-key", required=True)
    s.add_argument("--sender-cert", required=True)
    s.add_argument("--profile", choices=PROFILES, required=True)
    s.add_argument("--alg", choices=["RSA-OAEP", "RSA-OAEP-256"], default="RSA-OAEP-256")
    a = p.parse_args()
    {"open": cmd_open, "seal": cmd_seal}[a.cmd](a)


if __name__ == "__main__":
    main()
