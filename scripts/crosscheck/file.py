#!/usr/bin/env python3
"""Independent cross-check of SGW file ZIPs (SEC-FILE-SIG-1/2, SEC-FILE-ENC-1/2) with Python
`zipfile` and `cryptography` only, following the layout in gateway/src/security/file.rs's doc.

  verify  --zip Z --signer-cert C --out O       check a signed ZIP, write the file to O
  decrypt --zip Z --key K --recipient-cert C --out O   decrypt an encrypted ZIP
  sign    --in F --name N --key K --cert C --zip Z      make a signed ZIP
  encrypt --in F --name N --cert C --aes 128|192|256 --zip Z   make an encrypted ZIP
Exit status 1 on any disagreement with the layout.
"""
import argparse
import hashlib
import json
import os
import sys
import zipfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as apad
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

CHUNK = 64 * 1024
OAEP256 = apad.OAEP(mgf=apad.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def fail(msg):
    print(f"crosscheck file: {msg}", file=sys.stderr)
    sys.exit(1)


def load_cert(path):
    with open(path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    return cert, hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def load_key(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def cmd_verify(a):
    cert, kid = load_cert(a.signer_cert)
    with zipfile.ZipFile(a.zip) as z:
        names = z.namelist()
        payload = [n for n in names if n.startswith("payload/")]
        if sorted(names) != sorted(payload + ["META-INF/manifest.json", "META-INF/signature.sig"]) or len(payload) != 1:
            fail(f"layout {names}")
        mbytes = z.read("META-INF/manifest.json")
        sig = z.read("META-INF/signature.sig")
        try:
            cert.public_key().verify(sig, mbytes, apad.PKCS1v15(), hashes.SHA256())
        except Exception as ex:  # noqa: BLE001
            fail(f"signature: {ex!r}")
        m = json.loads(mbytes)
        if m != {"format": "sgw-file-sig-v1", "signatureAlgorithm": "RS256", "signerKid": kid,
                 "payload": {"name": payload[0], "size": m["payload"]["size"], "sha256": m["payload"]["sha256"]}}:
            fail(f"manifest {m}")
        h, n = hashlib.sha256(), 0
        with z.open(payload[0]) as src, open(a.out, "wb") as dst:
            while chunk := src.read(CHUNK):
                h.update(chunk)
                n += len(chunk)
                dst.write(chunk)
        if h.hexdigest() != m["payload"]["sha256"] or n != m["payload"]["size"]:
            fail("payload digest")


def cmd_decrypt(a):
    _, kid = load_cert(a.recipient_cert)
    key = load_key(a.key)
    with zipfile.ZipFile(a.zip) as z:
        names = z.namelist()
        if sorted(names) != sorted(["payload.enc", "META-INF/session-key.bin", "META-INF/manifest.json"]):
            fail(f"layout {names}")
        m = json.loads(z.read("META-INF/manifest.json"))
        if m["format"] != "sgw-file-enc-v1" or m["keyTransport"] != "RSA-OAEP-256" or m["recipientKid"] != kid:
            fail(f"manifest {m}")
        bits = {"AES-128-CBC": 128, "AES-192-CBC": 192, "AES-256-CBC": 256}[m["contentEncryption"]]
        skey = key.decrypt(z.read("META-INF/session-key.bin"), OAEP256)
        if len(skey) * 8 != bits:
            fail("session key length")
        h = hashlib.sha256()
        with z.open("payload.enc") as src:
            while chunk := src.read(CHUNK):
                h.update(chunk)
        if h.hexdigest() != m["encryptedSha256"]:
            fail("payload.enc digest")
        with z.open("payload.enc") as src, open(a.out, "wb") as dst:
            iv = src.read(16)
            dec = Cipher(algorithms.AES(skey), modes.CBC(iv)).decryptor()
            unpad = padding.PKCS7(128).unpadder()
            n = 0
            while chunk := src.read(CHUNK):
                out = unpad.update(dec.update(chunk))
                n += len(out)
                dst.write(out)
            out = unpad.update(dec.finalize()) + unpad.finalize()
            n += len(out)
            dst.write(out)
        if n != m["size"]:
            fail("size")


def cmd_sign(a):
    key = load_key(a.key)
    _, kid = load_cert(a.cert)
    entry = "payload/" + a.name
    h, n = hashlib.sha256(), 0
    with zipfile.ZipFile(a.zip, "w") as z:
        with open(getattr(a, "in"), "rb") as src, z.open(zipfile.ZipInfo(entry), "w", force_zip64=True) as dst:
            while chunk := src.read(CHUNK):
                h.update(chunk)
                n += len(chunk)
                dst.write(chunk)
        m = json.dumps({"format": "sgw-file-sig-v1", "signatureAlgorithm": "RS256", "signerKid": kid,
                        "payload": {"name": entry, "size": n, "sha256": h.hexdigest()}}).encode()
        z.writestr("META-INF/manifest.json", m)
        z.writestr("META-INF/signature.sig", key.sign(m, apad.PKCS1v15(), hashes.SHA256()))


def cmd_encrypt(a):
    cert, kid = load_cert(a.cert)
    skey = os.urandom(a.aes // 8)
    iv = os.urandom(16)
    enc = Cipher(algorithms.AES(skey), modes.CBC(iv)).encryptor()
    pad = padding.PKCS7(128).padder()
    h, n, en = hashlib.sha256(iv), 0, 16
    with zipfile.ZipFile(a.zip, "w") as z:
        with open(getattr(a, "in"), "rb") as src, z.open(zipfile.ZipInfo("payload.enc"), "w", force_zip64=True) as dst:
            dst.write(iv)
            while chunk := src.read(CHUNK):
                n += len(chunk)
                c = enc.update(pad.update(chunk))
                h.update(c)
                en += len(c)
                dst.write(c)
            c = enc.update(pad.finalize()) + enc.finalize()
            h.update(c)
            en += len(c)
            dst.write(c)
        z.writestr("META-INF/session-key.bin", cert.public_key().encrypt(skey, OAEP256))
        z.writestr("META-INF/manifest.json", json.dumps({
            "format": "sgw-file-enc-v1", "contentEncryption": f"AES-{a.aes}-CBC",
            "keyTransport": "RSA-OAEP-256", "recipientKid": kid, "name": a.name, "size": n,
            "encryptedSize": en, "encryptedSha256": h.hexdigest()}))


def main():
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify")
    v.add_argument("--zip", required=True)
    v.add_argument("--signer-cert", required=True)
    v.add_argument("--out", required=True)
    d = sub.add_parser("decrypt")
    d.add_argument("--zip", required=True)
    d.add_argument("--key", required=True)
    d.add_argument("--recipient-cert", required=True)
    d.add_argument("--out", required=True)
    s = sub.add_parser("sign")
    s.add_argument("--in", required=True)
    s.add_argument("--name", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--cert", required=True)
    s.add_argument("--zip", required=True)
    e = sub.add_parser("encrypt")
    e.add_argument("--in", required=True)
    e.add_argument("--name", required=True)
    e.add_argument("--cert", required=True)
    e.add_argument("--aes", type=int, choices=[128, 192, 256], required=True)
    e.add_argument("--zip", required=True)
    a = p.parse_args()
    {"verify": cmd_verify, "decrypt": cmd_decrypt, "sign": cmd_sign, "encrypt": cmd_encrypt}[a.cmd](a)


if __name__ == "__main__":
    main()
