#!/usr/bin/env python3
"""Generator of the parts of `vectors/golden/` that are made from the text of docs/protocol.md
with Python `cryptography` and `zipfile` only (never the Rust code):

  pki/       a one-level data-protection PKI (DES-CERT-4): root, platform, gateway GW0001, and
             gateway GW0002 whose certificate is revoked; the CRL (DES-CERT-3). Test keys only.
  masking/   the masking key, a plain CSV, the same CSV masked (DES-MASK-1/2) and its columns.
  archive/   an evacuation archive and its index.jsonl (DES-EVAC-2/3/4, DES-FILE-1/2/3).

The PKI is kept if it exists (every sealed golden file depends on it); `--new-pki` makes a new
one, after which the Rust part must be regenerated too (see vectors/golden/README.md):

  python3 scripts/vectors/gen_golden.py [--new-pki]

The archive is randomised (session key, IV, OAEP), so each run changes its bytes, not its
meaning. Everything else is deterministic given the PKI.
"""
import argparse
import datetime as dt
import hashlib
import io
import json
import os
import sys
import zipfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as apad
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.x509.oid import NameOID, ObjectIdentifier

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
GOLDEN = os.path.join(ROOT, "vectors", "golden")
sys.path.insert(0, os.path.join(ROOT, "scripts", "crosscheck"))
import mask as maskpy  # noqa: E402  (scripts/crosscheck/mask.py, DES-MASK-2)

JST = dt.timezone(dt.timedelta(hours=9))
ROLE_ARC = "2.25.222881631345099252851491374019625207159"
ROLE_OIDS = {"platform": ROLE_ARC + ".1", "gateway": ROLE_ARC + ".2"}

# The fixed facts of the golden set (README: "Fixed values").
LEAF_FROM = dt.datetime(2026, 11, 1, tzinfo=JST)
LEAF_TO = dt.datetime(2027, 11, 1, tzinfo=JST)
CRL_THIS = dt.datetime(2026, 11, 20, tzinfo=JST)
CRL_NEXT = dt.datetime(2026, 11, 27, tzinfo=JST)
CRL_NUMBER = 7
REVOKED_SERIAL = 4
MASK_KEY_ID = "k2026a"
MASK_KEY = bytes(range(32))  # the DES-MASK-2 example key
COLUMNS = [
    {"name": "需要家番号", "type": "string", "masked": True},
    {"name": "検針日", "type": "date", "masked": False},
    {"name": "使用水量", "type": "decimal", "unit": "m3", "masked": False},
    {"name": "請求額", "type": "integer", "unit": "JPY", "masked": False},
]
ROWS = [
    ["0012345678", "2026-11-20", "21.5", "3410"],
    ["0012345679", "2026-11-20", "18.0", "2980"],
    ["0098765432", "2026-11-21", "7.25", "1200"],
    ["0012345678", "2026-11-21", "3.0", "640"],
]
ARCHIVE_EPOCH = "3f9c0d6e1a2b4c5d8e7f60718293a4b5"
ARCHIVE_INGESTED = ["2026-08-01T09:00:00+09:00", "2026-08-01T09:00:00+09:00",
                    "2026-08-02T09:00:00+09:00", "2026-08-02T09:00:00+09:00"]
ARCHIVE_CREATED = "2026-11-22T03:00:00+09:00"
ZIP_TIME = (2026, 11, 22, 3, 0, 0)


def compact(obj):
    """Compact JSON, members in the order given, UTF-8 text as is (not \\u-escaped)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def write(rel, data):
    path = os.path.join(GOLDEN, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))


def read(rel):
    with open(os.path.join(GOLDEN, rel), "rb") as f:
        return f.read()


# ------------------------------------------------------------------------------------- PKI

def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SGW golden files (TEST ONLY)"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def key_pem(k):
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption())


def make_pki():
    root_key = new_key()
    root = (x509.CertificateBuilder().subject_name(name("SGW Golden Root")).issuer_name(name("SGW Golden Root"))
            .public_key(root_key.public_key()).serial_number(1)
            .not_valid_before(dt.datetime(2026, 1, 1, tzinfo=JST))
            .not_valid_after(dt.datetime(2036, 1, 1, tzinfo=JST))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    write("pki/root.pem", root.public_bytes(serialization.Encoding.PEM))
    write("pki/root.key", key_pem(root_key))
    for cn, role, serial in (("platform", "platform", 2), ("GW0001", "gateway", 3),
                             ("GW0002", "gateway", REVOKED_SERIAL)):
        k = new_key()
        c = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(root.subject)
             .public_key(k.public_key()).serial_number(serial)
             .not_valid_before(LEAF_FROM).not_valid_after(LEAF_TO)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.ExtendedKeyUsage([ObjectIdentifier(ROLE_OIDS[role])]), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
                            critical=False)
             .sign(root_key, hashes.SHA256()))
        write(f"pki/{cn}.pem", c.public_bytes(serialization.Encoding.PEM))
        write(f"pki/{cn}.key", key_pem(k))
    make_crl(root, root_key)


def make_crl(root, root_key):
    crl = (x509.CertificateRevocationListBuilder().issuer_name(root.subject)
           .last_update(CRL_THIS).next_update(CRL_NEXT)
           .add_extension(x509.CRLNumber(CRL_NUMBER), critical=False)
           .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
                          critical=False)
           .add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(REVOKED_SERIAL)
                                    .revocation_date(dt.datetime(2026, 11, 15, tzinfo=JST)).build())
           .sign(root_key, hashes.SHA256()))
    write("pki/crl.pem", crl.public_bytes(serialization.Encoding.PEM))


# --------------------------------------------------------------------------------- masking

def masked_rows():
    return [[maskpy.mask(MASK_KEY_ID, MASK_KEY, c["name"], v) if c["masked"] else v
             for c, v in zip(COLUMNS, row)] for row in ROWS]


def csv_text(rows):
    # RFC 4180 with CRLF line ends (DES-CSV-1); no field needs quoting.
    lines = [",".join(c["name"] for c in COLUMNS)] + [",".join(r) for r in rows]
    return "".join(line + "\r\n" for line in lines)


def make_masking():
    write(f"masking/{MASK_KEY_ID}.key", MASK_KEY.hex() + "\n")
    write("masking/columns.json", json.dumps(COLUMNS, ensure_ascii=False, indent=1) + "\n")
    write("masking/billing.csv", csv_text(ROWS))
    write("masking/billing.masked.csv", csv_text(masked_rows()))


# --------------------------------------------------------------------------------- archive

def zip_entry(name, method):
    zi = zipfile.ZipInfo(name, date_time=ZIP_TIME)
    zi.compress_type = method
    return zi


def kid_of(cert):
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def signed_zip(payload_name, data, key, cert):
    """DES-FILE-1: payload/<name> deflated, META-INF/manifest.json and META-INF/signature.sig
    stored, in this order; RS256 (PKCS#1 v1.5, SHA-256) over the exact manifest bytes."""
    entry = "payload/" + payload_name
    manifest = compact({"format": "sgw-file-sig-v1", "signatureAlgorithm": "RS256",
                        "signerKid": kid_of(cert),
                        "payload": {"name": entry, "size": len(data),
                                    "sha256": hashlib.sha256(data).hexdigest()}})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(zip_entry(entry, zipfile.ZIP_DEFLATED), data)
        z.writestr(zip_entry("META-INF/manifest.json", zipfile.ZIP_STORED), manifest)
        z.writestr(zip_entry("META-INF/signature.sig", zipfile.ZIP_STORED),
                   key.sign(manifest, apad.PKCS1v15(), hashes.SHA256()))
    return buf.getvalue()


def encrypted_zip(name_, data, cert):
    """DES-FILE-2: payload.enc (IV ‖ AES-128-CBC, PKCS#7), META-INF/session-key.bin (RSA-OAEP-256),
    META-INF/manifest.json, all stored, in this order."""
    skey, iv = os.urandom(16), os.urandom(16)
    pad = padding.PKCS7(128).padder()
    enc = Cipher(algorithms.AES(skey), modes.CBC(iv)).encryptor()
    payload = iv + enc.update(pad.update(data) + pad.finalize()) + enc.finalize()
    oaep = apad.OAEP(mgf=apad.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    manifest = compact({"format": "sgw-file-enc-v1", "contentEncryption": "AES-128-CBC",
                        "keyTransport": "RSA-OAEP-256", "recipientKid": kid_of(cert), "name": name_,
                        "size": len(data), "encryptedSize": len(payload),
                        "encryptedSha256": hashlib.sha256(payload).hexdigest()})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(zip_entry("payload.enc", zipfile.ZIP_STORED), payload)
        z.writestr(zip_entry("META-INF/session-key.bin", zipfile.ZIP_STORED),
                   cert.public_key().encrypt(skey, oaep))
        z.writestr(zip_entry("META-INF/manifest.json", zipfile.ZIP_STORED), manifest)
    return buf.getvalue()


def make_archive():
    cert = x509.load_pem_x509_certificate(read("pki/GW0001.pem"))
    key = serialization.load_pem_private_key(read("pki/GW0001.key"), password=None)
    rows = masked_rows()
    first, last = 1, len(rows)
    header = {"format": "sgw-archive-v1", "gatewayId": "GW0001", "epoch": ARCHIVE_EPOCH,
              "dataset": "billing", "columns": COLUMNS, "range": {"first": first, "last": last},
              "records": last - first + 1, "createdAt": ARCHIVE_CREATED}
    lines = [compact(header)] + [compact({"seq": first + i, "ingestedAt": ARCHIVE_INGESTED[i], "fields": r})
                                 for i, r in enumerate(rows)]
    records = b"".join(line + b"\n" for line in lines)
    sgwa = encrypted_zip("records.sig.zip", signed_zip("records.jsonl", records, key, cert), cert)
    file_name = f"GW0001_billing_{ARCHIVE_EPOCH}_{first:020}-{last:020}.sgwa"
    index = compact({"file": file_name, "dataset": "billing", "epoch": ARCHIVE_EPOCH,
                     "range": {"first": first, "last": last}, "ingestedFrom": ARCHIVE_INGESTED[0],
                     "ingestedTo": ARCHIVE_INGESTED[-1], "records": last - first + 1,
                     "sha256": hashlib.sha256(sgwa).hexdigest()})
    for old in os.listdir(os.path.join(GOLDEN, "archive")) if os.path.isdir(os.path.join(GOLDEN, "archive")) else []:
        if old.endswith(".sgwa"):
            os.remove(os.path.join(GOLDEN, "archive", old))
    write("archive/" + file_name, sgwa)
    write("archive/index.jsonl", index + b"\n")
    write("archive/expected-records.jsonl", records)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--new-pki", action="store_true", help="make a new PKI (then regenerate the Rust part)")
    a = p.parse_args()
    if a.new_pki or not os.path.exists(os.path.join(GOLDEN, "pki", "root.pem")):
        make_pki()
    make_masking()
    make_archive()
    print("vectors/golden: pki, masking, archive written")


if __name__ == "__main__":
    main()
