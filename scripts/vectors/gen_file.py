#!/usr/bin/env python3
"""Generate vectors/data/file_sign.json and file_encrypt.json (SEC-FILE-SIG-1/2, SEC-FILE-ENC-1/2).

Every ZIP is made here with Python `zipfile` + `cryptography` following the layout in
gateway/src/security/file.rs's module doc (never with the Rust code). Valid cases are checked
here by re-verifying / re-decrypting with `cryptography`; hardening cases (ZIP slip, bombs,
duplicate/unexpected/missing entries) are built by hand with `zipfile`.
"""
import hashlib
import io
import json
import os
import warnings
import zipfile

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import padding as apad
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from common import (NOW, VectorFile, b64, cert_pem, crl_pem, issue, key_pem, kid, make_crl, make_root,
                    note, rsa_key)

GEN = "scripts/vectors/gen_file.py (cryptography, zipfile)"
OAEP256 = apad.OAEP(mgf=apad.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
warnings.simplefilter("ignore")  # zipfile warns on duplicate names, which we make on purpose

NOTES = {
    "Generated": note("FUNCTIONALITY", "Made by Python cryptography/zipfile per the layout."),
    "ZipSlip": note("PATH_TRAVERSAL", "Entry name with .., absolute path or backslash."),
    "ZipBomb": note("RESOURCE_EXHAUSTION", "Entry expands beyond the ratio or size limits."),
    "DuplicateEntry": note("MISSING_CHECK", "Two entries with one name."),
    "UnexpectedEntry": note("MISSING_CHECK", "An entry outside the fixed layout."),
    "MissingEntry": note("MISSING_CHECK", "An entry of the layout is missing."),
    "ModifiedSignature": note("SIGNATURE_FORGERY", "signature.sig changed."),
    "ModifiedPayload": note("SIGNATURE_FORGERY", "Payload changed after signing."),
    "ModifiedManifest": note("SIGNATURE_FORGERY", "manifest.json changed after signing."),
    "WrongSigner": note("AUTH_BYPASS", "Signed by a known party other than the expected signer."),
    "ModifiedCiphertext": note("CCA", "payload.enc or session key changed."),
    "WrongRecipient": note("MISSING_CHECK", "Encrypted for another recipient."),
    "UnsupportedAlg": note("ALGORITHM_CONFUSION", "Manifest names an algorithm not accepted."),
}


def zip_of(entries, method=zipfile.ZIP_DEFLATED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n, data in entries:
            z.writestr(zipfile.ZipInfo(n), data, compress_type=method)
    return buf.getvalue()


def signed_entries(key, cert, name, data):
    entry = "payload/" + name
    m = json.dumps({"format": "sgw-file-sig-v1", "signatureAlgorithm": "RS256", "signerKid": kid(cert),
                    "payload": {"name": entry, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}}).encode()
    return [[entry, data], ["META-INF/manifest.json", m],
            ["META-INF/signature.sig", key.sign(m, apad.PKCS1v15(), hashes.SHA256())]]


def check_signed(z, cert):
    zf = zipfile.ZipFile(io.BytesIO(z))
    m = zf.read("META-INF/manifest.json")
    cert.public_key().verify(zf.read("META-INF/signature.sig"), m, apad.PKCS1v15(), hashes.SHA256())
    mm = json.loads(m)
    assert hashlib.sha256(zf.read(mm["payload"]["name"])).hexdigest() == mm["payload"]["sha256"]


def enc_entries(cert, name, data, bits, skey=None, alg="RSA-OAEP-256"):
    skey = skey or os.urandom(bits // 8)
    iv = os.urandom(16)
    p = padding.PKCS7(128).padder()
    e = Cipher(algorithms.AES(skey), modes.CBC(iv)).encryptor()
    enc = iv + e.update(p.update(data) + p.finalize()) + e.finalize()
    m = json.dumps({"format": "sgw-file-enc-v1", "contentEncryption": f"AES-{bits}-CBC", "keyTransport": alg,
                    "recipientKid": kid(cert), "name": name, "size": len(data), "encryptedSize": len(enc),
                    "encryptedSha256": hashlib.sha256(enc).hexdigest()}).encode()
    return [["payload.enc", enc], ["META-INF/session-key.bin", cert.public_key().encrypt(skey, OAEP256)],
            ["META-INF/manifest.json", m]]


def check_enc(z, key):
    zf = zipfile.ZipFile(io.BytesIO(z))
    skey = key.decrypt(zf.read("META-INF/session-key.bin"), OAEP256)
    enc = zf.read("payload.enc")
    d = Cipher(algorithms.AES(skey), modes.CBC(enc[:16])).decryptor()
    u = padding.PKCS7(128).unpadder()
    return u.update(d.update(enc[16:]) + d.finalize()) + u.finalize()


def main():
    root_k = rsa_key()
    root = make_root(root_k)
    own_k, sig_k, oth_k = rsa_key(), rsa_key(), rsa_key()
    own = issue(root_k, root, "platform", own_k, 200, roles=["platform"])
    sig = issue(root_k, root, "GW0001", sig_k, 201, roles=["gateway"])
    oth = issue(root_k, root, "APP01", oth_k, 202, roles=["application"])
    crl = make_crl(root_k, root, [])
    data = "seq,meter,value\n".encode() + b"".join(f"{i},M-{i % 97:03},{i * 1.5}\n".encode() for i in range(60)) \
        + "1,配水池,12.5\n".encode()
    params = dict(now=NOW, rootPem=cert_pem(root), crlPem=crl_pem(crl), ownKeyPem=key_pem(own_k),
                  ownCertPem=cert_pem(own), signerCertPem=cert_pem(sig), otherCertPem=cert_pem(oth))

    vf = VectorFile("file_sign.json", "SGW-FILE-SIG-ZIP", GEN,
                    ["Signed ZIP sgw-file-sig-v1 (payload/<name>, META-INF/manifest.json, META-INF/signature.sig).",
                     "Harness: facade with own key/cert, root, CRL, peers gateway `GW0001` = signerCertPem, "
                     "application `APP01` = otherCertPem, each under its role and CN (DES-CERT-4); "
                     "verify_file(expected `GW0001`, zipB64, now); valid => output equals payloadB64."],
                    NOTES)
    g = vf.group("FileVerify", ["SEC-FILE-SIG-1", "SEC-FILE-SIG-2"], **params)
    base = signed_entries(sig_k, sig, "readings.csv", data)
    z = zip_of(base)
    check_signed(z, sig)
    vf.case(g, "signed ZIP by cryptography", "valid", ["Generated"], zipB64=b64(z), payloadB64=b64(data))
    z = zip_of(base, zipfile.ZIP_STORED)
    check_signed(z, sig)
    vf.case(g, "signed ZIP, entries stored", "valid", ["Generated"], zipB64=b64(z), payloadB64=b64(data))
    e = [list(x) for x in base]
    e[2][1] = bytes([e[2][1][0] ^ 1]) + e[2][1][1:]
    vf.case(g, "signature modified", "invalid", ["ModifiedSignature"], zipB64=b64(zip_of(e)), payloadB64=b64(data))
    e = [list(x) for x in base]
    e[0][1] = e[0][1].replace(b"M-001", b"M-999")
    vf.case(g, "payload modified", "invalid", ["ModifiedPayload"], zipB64=b64(zip_of(e)), payloadB64=b64(data))
    e = [list(x) for x in base]
    e[1][1] = e[1][1].replace(b'"size": ', b'"size":  ')
    vf.case(g, "manifest re-spaced", "invalid", ["ModifiedManifest"], zipB64=b64(zip_of(e)), payloadB64=b64(data))
    vf.case(g, "signed by `other`", "invalid", ["WrongSigner"],
            zipB64=b64(zip_of(signed_entries(oth_k, oth, "readings.csv", data))), payloadB64=b64(data))
    for bad in ["../evil.csv", "/etc/passwd", "payload\\..\\evil.csv", "payload/../../x"]:
        vf.case(g, f"extra entry {bad!r}", "invalid", ["ZipSlip"], zipB64=b64(zip_of(base + [[bad, b"x"]])), payloadB64=b64(data))
    vf.case(g, "payload entry named payload/../x.csv, signed", "invalid", ["ZipSlip"],
            zipB64=b64(zip_of(signed_entries(sig_k, sig, "../x.csv", data))), payloadB64=b64(data))
    vf.case(g, "manifest twice", "invalid", ["DuplicateEntry"],
            zipB64=b64(zip_of(base + [["META-INF/manifest.json", b"{}"]])), payloadB64=b64(data))
    vf.case(g, "extra META-INF entry", "invalid", ["UnexpectedEntry"],
            zipB64=b64(zip_of(base + [["META-INF/extra.txt", b"x"]])), payloadB64=b64(data))
    vf.case(g, "second payload", "invalid", ["UnexpectedEntry"],
            zipB64=b64(zip_of(base + [["payload/other.csv", b"x"]])), payloadB64=b64(data))
    for i, what in enumerate(["payload", "manifest", "signature"]):
        vf.case(g, f"{what} missing", "invalid", ["MissingEntry"],
                zipB64=b64(zip_of([x for j, x in enumerate(base) if j != i])), payloadB64=b64(data))
    zeros = bytes(8 << 20)
    z = zip_of(signed_entries(sig_k, sig, "zeros.bin", zeros))
    check_signed(z, sig)
    vf.case(g, "correctly signed 8 MiB of zeros (ratio ~1000)", "invalid", ["ZipBomb"], zipB64=b64(z), payloadB64="")
    vf.write()

    vf = VectorFile("file_encrypt.json", "SGW-FILE-ENC-ZIP", GEN,
                    ["Encrypted ZIP sgw-file-enc-v1 (payload.enc, META-INF/session-key.bin, META-INF/manifest.json).",
                     "Harness: facade with own key/cert; decrypt_file(zipB64); valid => output equals payloadB64."],
                    NOTES)
    g = vf.group("FileDecrypt", ["SEC-FILE-ENC-1", "SEC-FILE-ENC-2", "SM-DATAENC"], **params)
    for bits in [128, 192, 256]:
        z = zip_of(enc_entries(own, "readings.csv", data, bits), zipfile.ZIP_STORED)
        assert check_enc(z, own_k) == data
        vf.case(g, f"AES-{bits}-CBC, RSA-OAEP-256", "valid", ["Generated"], zipB64=b64(z), payloadB64=b64(data))
    z = zip_of(enc_entries(own, "empty.csv", b"", 128), zipfile.ZIP_STORED)
    assert check_enc(z, own_k) == b""
    vf.case(g, "empty file", "valid", ["Generated"], zipB64=b64(z), payloadB64="")
    z = zip_of(enc_entries(own, "readings.csv", data, 128), zipfile.ZIP_DEFLATED)
    vf.case(g, "entries deflated", "valid", ["Generated"], zipB64=b64(z), payloadB64=b64(data))
    base = enc_entries(own, "readings.csv", data, 128)
    e = [list(x) for x in base]
    e[0][1] = e[0][1][:40] + bytes([e[0][1][40] ^ 1]) + e[0][1][41:]
    vf.case(g, "payload.enc modified", "invalid", ["ModifiedCiphertext"], zipB64=b64(zip_of(e)), payloadB64=b64(data))
    e = [list(x) for x in base]
    e[1][1] = bytes([e[1][1][0] ^ 1]) + e[1][1][1:]
    vf.case(g, "session key modified", "invalid", ["ModifiedCiphertext"], zipB64=b64(zip_of(e)), payloadB64=b64(data))
    vf.case(g, "encrypted for `other`", "invalid", ["WrongRecipient"],
            zipB64=b64(zip_of(enc_entries(oth, "readings.csv", data, 128))), payloadB64=b64(data))
    e = enc_entries(own, "readings.csv", data, 128, alg="RSA-OAEP")
    e[1][1] = own.public_key().encrypt(os.urandom(16), apad.OAEP(mgf=apad.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None))
    vf.case(g, "manifest keyTransport RSA-OAEP (SHA-1)", "invalid", ["UnsupportedAlg"], zipB64=b64(zip_of(e)), payloadB64=b64(data))
    for bad in ["../evil.csv", "/abs.csv", "a\\..\\b"]:
        vf.case(g, f"extra entry {bad!r}", "invalid", ["ZipSlip"], zipB64=b64(zip_of(base + [[bad, b"x"]])), payloadB64=b64(data))
    vf.case(g, "payload.enc twice", "invalid", ["DuplicateEntry"],
            zipB64=b64(zip_of(base + [["payload.enc", b"x" * 32]])), payloadB64=b64(data))
    vf.case(g, "plaintext copy beside the ciphertext", "invalid", ["UnexpectedEntry"],
            zipB64=b64(zip_of(base + [["readings.csv", data]])), payloadB64=b64(data))
    for i, what in enumerate(["payload.enc", "session key", "manifest"]):
        vf.case(g, f"{what} missing", "invalid", ["MissingEntry"],
                zipB64=b64(zip_of([x for j, x in enumerate(base) if j != i])), payloadB64=b64(data))
    e = [list(x) for x in base]
    e[2][1] = bytes(200_000)
    vf.case(g, "manifest of 200 kB zeros", "invalid", ["ZipBomb"], zipB64=b64(zip_of(e)), payloadB64=b64(data))
    vf.write()


if __name__ == "__main__":
    main()
