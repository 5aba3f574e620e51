#!/usr/bin/env python3
"""Independent re-implementation of SGW field masking (SEC-MASK-1/2, DES-MASK) from the text of
gateway/src/security/mask.rs's module doc, with Python `cryptography` only.

Reads a JSON list of operations on stdin and writes a JSON list of results on stdout:
  {"op":"mask","keyId":"k1","keyHex":"..","column":"c","value":"v"}  -> {"ok":"m1.k1...."}
  {"op":"unmask","keys":{"k1":"hex",..},"column":"c","masked":"m1..."} -> {"ok":"v"} | {"err":"..."}
"""
import base64
import hashlib
import hmac
import json
import re
import sys

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_ID = re.compile(r"^[A-Za-z0-9]{1,16}$")


def derive(key):
    assert len(key) == 32
    prk = hmac.new(b"\0" * 32, key, hashlib.sha256).digest()
    enc = hmac.new(prk, b"sgw-mask-v1/enc\x01", hashlib.sha256).digest()
    mac = hmac.new(prk, b"sgw-mask-v1/mac\x01", hashlib.sha256).digest()
    return enc, mac


def b64e(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def b64d(s):
    if not re.fullmatch(r"[A-Za-z0-9_-]*", s) or len(s) % 4 == 1:
        raise ValueError("base64url")
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def mask(key_id, key, column, value):
    enc, mac = derive(key)
    c, v = column.encode(), value.encode()
    nonce = hmac.new(mac, c + b"\0" + v, hashlib.sha256).digest()[:12]
    ct = AESGCM(enc).encrypt(nonce, v, c)  # ciphertext || tag
    return f"m1.{key_id}.{b64e(nonce + ct)}"


def unmask(keys, column, masked):
    if not masked.startswith("m1."):
        raise ValueError("format")
    key_id, _, rest = masked[3:].partition(".")
    if not KEY_ID.match(key_id) or not _:
        raise ValueError("format")
    blob = b64d(rest)
    if len(blob) < 28:
        raise ValueError("format")
    if key_id not in keys:
        raise ValueError("unknown key")
    enc, mac = derive(bytes.fromhex(keys[key_id]))
    c = column.encode()
    try:
        pt = AESGCM(enc).decrypt(blob[:12], blob[12:], c)
    except InvalidTag:
        raise ValueError("auth")
    if hmac.new(mac, c + b"\0" + pt, hashlib.sha256).digest()[:12] != blob[:12]:
        raise ValueError("auth")
    return pt.decode("utf-8")


def main():
    out = []
    for op in json.load(sys.stdin):
        try:
            if op["op"] == "mask":
                out.append({"ok": mask(op["keyId"], bytes.fromhex(op["keyHex"]), op["column"], op["value"])})
            else:
                out.append({"ok": unmask(op["keys"], op["column"], op["masked"])})
        except (ValueError, UnicodeDecodeError) as e:
            out.append({"err": str(e)})
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
