#!/usr/bin/env python3
"""Peer for `xml_profile/protect_aes128` and `open_aes128` at 1 MiB (docs/PERFORMANCE.md).

xmlsec1 (libxmlsec1 + libxml2 + OpenSSL), two whole processes each way, as the DES-PROF
layout does it: protect = `xmlsec1 --encrypt` of sgw:Body (aes128-cbc, key transport
rsa-oaep-mgf1p: xmlsec1 1.2 has no xmlenc11 rsa-oaep) then `xmlsec1 --sign` of the whole
document (enveloped, URI="", exc-c14n, rsa-sha256, sha256; the Signature template is already
the root's last child); open = `xmlsec1 --verify` then `xmlsec1 --decrypt`. Fresh RSA-2048
keys and self-signed certificates (openssl CLI). Prints the median wall time of --runs runs
of each pair, the peak RSS of the largest process (/usr/bin/time), and the bare process start
(`xmlsec1 --version`) for scale.

usage: xmlsec1_protect.py XML_PROFILE_1MiB.xml [--runs 7]
"""
import argparse
import os
import statistics
import subprocess
import tempfile
import time

SIG_TMPL = (
    '<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo>'
    '<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'
    '<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>'
    '<ds:Reference URI=""><ds:Transforms>'
    '<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>'
    '<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms>'
    '<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/>'
    '</ds:Reference></ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo><ds:X509Data/></ds:KeyInfo>'
    '</ds:Signature>'
)
ENC_TMPL = (
    '<xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" '
    'Type="http://www.w3.org/2001/04/xmlenc#Element" Id="body">'
    '<xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>'
    '<ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><xenc:EncryptedKey>'
    '<xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"/>'
    '<xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo>'
    '<xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedData>'
)


def run(cmd):
    """Runs cmd under /usr/bin/time; returns (wall seconds, peak RSS KiB)."""
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr}")
    return dt, int(p.stderr.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("xml")
    ap.add_argument("--runs", type=int, default=7)
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="sgw-xmlsec1-")
    j = lambda n: os.path.join(d, n)  # noqa: E731
    for who in ("gw", "pf"):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", f"/CN={who}", "-keyout", j(f"{who}.key"), "-out", j(f"{who}.pem")],
                       check=True, capture_output=True)
    doc = open(a.xml, encoding="utf-8").read()
    i = doc.rindex("</sgw:DataProfile>")
    open(j("plain.xml"), "w", encoding="utf-8").write(doc[:i] + SIG_TMPL + doc[i:])
    open(j("enc-tmpl.xml"), "w").write(ENC_TMPL)
    body = "urn:sgw:profile:v1:Body"
    encrypt = ["xmlsec1", "--encrypt", "--pubkey-cert-pem", j("pf.pem"), "--session-key", "aes-128",
               "--xml-data", j("plain.xml"), "--node-name", body, "--output", j("enc.xml"),
               j("enc-tmpl.xml")]
    sign = ["xmlsec1", "--sign", "--privkey-pem", f"{j('gw.key')},{j('gw.pem')}",
            "--output", j("signed.xml"), j("enc.xml")]
    verify = ["xmlsec1", "--verify", "--pubkey-cert-pem", j("gw.pem"),
              "--enabled-key-data", "rsa", j("signed.xml")]
    decrypt = ["xmlsec1", "--decrypt", "--privkey-pem", j("pf.key"), "--output", j("out.xml"),
               j("signed.xml")]
    version = ["xmlsec1", "--version"]
    results = {}
    for name, pair in (("start (xmlsec1 --version)", [version]), ("protect (encrypt+sign)", [encrypt, sign]),
                       ("open (verify+decrypt)", [verify, decrypt])):
        walls, rss = [], 0
        for _ in range(a.runs):
            total = 0.0
            for cmd in pair:
                dt, kb = run(cmd)
                total += dt
                rss = max(rss, kb)
            walls.append(total)
        results[name] = (statistics.median(walls), rss, walls)
    print(f"input {len(doc.encode())} bytes, protected {os.path.getsize(j('signed.xml'))} bytes, "
          f"work dir {d}")
    for name, (m, rss, walls) in results.items():
        print(f"xmlsec1 {name}: median {m * 1e3:.1f} ms, peak RSS {rss / 1024:.1f} MiB "
              f"(runs ms: {', '.join(f'{w * 1e3:.0f}' for w in walls)})")


if __name__ == "__main__":
    main()
