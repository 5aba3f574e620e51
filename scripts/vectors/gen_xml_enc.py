#!/usr/bin/env python3
"""Generates vectors/data/xml-enc.json: XML Encryption of one element and the DESIGN.md XML
profile protection (SEC-XML-ENC-1/2, SEC-XML-SIG-2, 表 4-2, 4-3). Ciphertexts are produced by
python-xmlsec (libxmlsec1 1.3: AES-128/192/256-CBC with rsa-oaep-mgf1p and xmlenc11 rsa-oaep
SHA-1/SHA-256) and the Debian xmlsec1 CLI (rsa-oaep-mgf1p); every valid vector is decrypted by
python-xmlsec before being written, and `plaintextC14n` is lxml's exclusive c14n of the
plaintext document. Profile vectors are encrypted and then signed by python-xmlsec.

Usage: python3 scripts/vectors/gen_xml_enc.py > vectors/data/xml-enc.json
"""
import base64
import json
import re
import sys

from gen_xml_common import RECORDS, Party, c14n, ok, profile, run, tool, write


def with_error(test, error):
    """Only invalid tests carry `error` (the gateway's XmlError variant; vectors lint)."""
    if error is not None:
        test["error"] = error
    return test


def decrypts(party, xml):
    f = write("dcheck.xml", xml)
    return ok("decrypt-xmlsec", party.key_path, f)


def xmlsec1_encrypt(party, pf, aes):
    tmpl = ('<xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" '
            'Type="http://www.w3.org/2001/04/xmlenc#Element" Id="body"><xenc:EncryptionMethod '
            f'Algorithm="http://www.w3.org/2001/04/xmlenc#{aes}-cbc"/><ds:KeyInfo '
            'xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><xenc:EncryptedKey><xenc:EncryptionMethod '
            'Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"/><xenc:CipherData>'
            '<xenc:CipherValue/></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo><xenc:CipherData>'
            '<xenc:CipherValue/></xenc:CipherData></xenc:EncryptedData>')
    t = write("etmpl.xml", tmpl)
    return run(["xmlsec1", "--encrypt", "--pubkey-cert-pem", party.cert_path, "--session-key",
                "aes-" + aes[3:], "--id-attr:Id", "Body", "--node-id", "body", "--xml-data", pf, t])


def last_cipher_value(xml):
    ms = list(re.finditer(r"<xenc:CipherValue>([^<]+)</xenc:CipherValue>", xml))
    return ms[-1]


def with_data(xml, fn):
    m = last_cipher_value(xml)
    raw = base64.b64decode("".join(m.group(1).split()))
    new = base64.b64encode(fn(raw)).decode()
    return xml[:m.start(1)] + new + xml[m.end(1):]


def with_wrapped_key(xml, new_bytes):
    m = list(re.finditer(r"<xenc:CipherValue>([^<]+)</xenc:CipherValue>", xml))[0]
    return xml[:m.start(1)] + base64.b64encode(new_bytes).decode() + xml[m.end(1):]


def main():
    rcpt = Party("recipient")
    signer = Party("signer")
    other = Party("other")
    plain = profile(RECORDS)
    pf = write("plain.xml", plain)
    expected = c14n(plain)

    tests = []
    def add(comment, flags, result, xml, error=None):
        if result == "valid":
            assert decrypts(rcpt, xml), comment
        tests.append(with_error(dict(comment=comment, flags=flags, result=result, xml=xml,
                          plaintextC14n=expected if result == "valid" else None), error))

    enc = {}
    for aes in ["aes128", "aes192", "aes256"]:
        for oaep in ["mgf1p", "oaep11-sha1", "oaep11-sha256"]:
            x = tool("encrypt-xmlsec", rcpt.cert_path, pf, "body", aes, oaep)
            enc[(aes, oaep)] = x
            add(f"python-xmlsec {aes}-cbc, key transport {oaep}", ["ValidEncryption"], "valid", x)
        add(f"xmlsec1 CLI {aes}-cbc, key transport rsa-oaep-mgf1p", ["ValidEncryption"], "valid",
            xmlsec1_encrypt(rcpt, pf, aes))
    base = enc[("aes128", "oaep11-sha256")]
    add("rsa-1_5 key transport (valid for xmlsec)", ["Rsa15"], "invalid",
        tool("encrypt-xmlsec", rcpt.cert_path, pf, "body", "aes128", "rsa15"), "AlgorithmRefused")
    add("tripledes-cbc content encryption", ["WeakAlgorithm"], "invalid",
        tool("encrypt-xmlsec", rcpt.cert_path, pf, "body", "des3", "oaep11-sha256"), "AlgorithmRefused")
    add("aes128-gcm content encryption (not in 表 4-2)", ["UnsupportedAlgorithm"], "invalid",
        tool("encrypt-xmlsec", rcpt.cert_path, pf, "body", "aes128gcm", "oaep11-sha256"), "AlgorithmRefused")
    add("Type=Content (only Element is accepted)", ["Structure"], "invalid",
        base.replace("xmlenc#Element", "xmlenc#Content", 1), "Structure")
    add("last ciphertext block modified (padding or plaintext broken)", ["ModifiedCiphertext"],
        "invalid", with_data(base, lambda r: r[:-1] + bytes([r[-1] ^ 0x5A])), "Decryption")
    add("first ciphertext block modified (garbled plaintext)", ["ModifiedCiphertext"],
        "invalid", with_data(base, lambda r: r[:16] + bytes([r[16] ^ 1]) + r[17:]), "Decryption")
    add("ciphertext truncated to a non-multiple of the block size", ["ModifiedCiphertext"],
        "invalid", with_data(base, lambda r: r[:-5]), "Decryption")
    add("ciphertext is the IV only", ["ModifiedCiphertext"], "invalid",
        with_data(base, lambda r: r[:16]), "Decryption")
    add("wrapped key replaced with random bytes (bad OAEP)", ["BadOaep"], "invalid",
        with_wrapped_key(base, bytes(range(256))), "Decryption")
    add("CipherReference instead of CipherValue", ["Structure"], "invalid",
        base.replace("<xenc:CipherData>", '<xenc:CipherData><xenc:CipherReference URI="http://example.invalid/"/>', 1),
        "Structure")
    add("DOCTYPE with an external entity", ["Dtd"], "invalid",
        '<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>' + base, "DtdRefused")

    wrong_key = [dict(comment=f"encrypted for another recipient ({aes})", flags=["WrongKey"],
                      result="invalid", xml=tool("encrypt-xmlsec", other.cert_path, pf, "body", aes, "oaep11-sha256"),
                      plaintextC14n=None, error="Decryption") for aes in ["aes128", "aes256"]]

    # Profiles: encrypt (python-xmlsec), then sign (python-xmlsec), DESIGN.md layout.
    prof = []
    def addp(comment, flags, result, xml, error=None):
        prof.append(with_error(dict(comment=comment, flags=flags, result=result, xml=xml,
                         plaintextC14n=expected if result == "valid" else None), error))
    def enc_then_sign(aes, oaep, signer_party=signer, ident=None):
        e = write("p-enc.xml", tool("encrypt-xmlsec", rcpt.cert_path, pf, "body", aes, oaep))
        args = ["sign-xmlsec", signer_party.key_path, signer_party.cert_path, e] + ([ident] if ident else [])
        return tool(*args)
    for aes in ["aes128", "aes192", "aes256"]:
        x = enc_then_sign(aes, "oaep11-sha256")
        assert decrypts(rcpt, x)
        addp(f"python-xmlsec encrypt ({aes}, xmlenc11 rsa-oaep sha256/mgf1sha256) then sign",
             ["ValidProfile"], "valid", x)
    addp("python-xmlsec encrypt (aes128, rsa-oaep-mgf1p) then sign", ["ValidProfile"], "valid",
         enc_then_sign("aes128", "mgf1p"))
    p1 = enc_then_sign("aes128", "oaep11-sha256")
    addp("signature references the Header only", ["Wrapping"], "invalid",
         enc_then_sign("aes128", "oaep11-sha256", ident="header"), "Structure")
    signed_plain = write("p-signed.xml", tool("sign-xmlsec", signer.key_path, signer.cert_path, pf))
    addp("signed, then encrypted (wrong order: Body changed after signing)", ["WrongOrder"],
         "invalid", tool("encrypt-xmlsec", rcpt.cert_path, signed_plain, "body", "aes128", "oaep11-sha256"),
         "DigestMismatch")
    data_b64 = last_cipher_value(re.sub(r"<Signature.*", "", p1, flags=re.S)).group(1)
    addp("ciphertext modified after signing", ["ModifiedCiphertext"], "invalid",
         p1.replace(data_b64, ("B" if data_b64[0] == "A" else "A") + data_b64[1:], 1),
         "DigestMismatch")
    addp("rsa-1_5 key transport, validly signed", ["Rsa15"], "invalid",
         enc_then_sign("aes128", "rsa15"), "AlgorithmRefused")
    addp("signed by another key", ["WrongKey"], "invalid",
         enc_then_sign("aes128", "oaep11-sha256", signer_party=other), "Structure")
    addp("Signature moved before the Header (valid enveloped signature, wrong place)", ["Wrapping"],
         "invalid", re.sub(r"(<sgw:DataProfile[^>]*>)(.*?)(<Signature[ >].*</Signature>)",
                           lambda m: m.group(1) + m.group(3) + m.group(2), p1, flags=re.S), "Structure")

    groups = [
        dict(type="XmlEncDecrypt", requirements=["SEC-XML-ENC-1", "SEC-XML-ENC-2"],
             recipientPrivateKeyPem=rcpt.key_pem, recipientCertificatePem=rcpt.cert_pem,
             keySize=2048, tests=tests + wrong_key),
        dict(type="XmlProfileOpen", requirements=["SEC-XML-ENC-2", "SEC-XML-SIG-2"],
             recipientPrivateKeyPem=rcpt.key_pem, signerCertificatePem=signer.cert_pem,
             keySize=2048, tests=prof),
    ]
    tc = 0
    for g in groups:
        for t in g["tests"]:
            tc += 1
            t["tcId"] = tc
    doc = {
        "algorithm": "XMLENC-AES-CBC-RSA-OAEP",
        "generatorVersion": "gen_xml_enc.py 1",
        "numberOfTests": tc,
        "header": [
            "XmlEncDecrypt: decrypt every EncryptedData of xml with recipientPrivateKeyPem;",
            "XmlProfileOpen: verify with signerCertificatePem, check the DESIGN.md layout, decrypt.",
            "valid: the result's exclusive c14n equals plaintextC14n; invalid: refused, error",
            "names the gateway's XmlError variant.",
        ],
        "notes": {
            "ValidEncryption": {"bugType": "FUNCTIONALITY", "description": "Produced by python-xmlsec or xmlsec1 and decrypted by python-xmlsec."},
            "ValidProfile": {"bugType": "FUNCTIONALITY", "description": "Encrypt-then-sign profile produced by python-xmlsec."},
            "Rsa15": {"bugType": "WEAK_PARAMS", "description": "RSA PKCS#1 v1.5 key transport is refused (Bleichenbacher)."},
            "WeakAlgorithm": {"bugType": "WEAK_PARAMS", "description": "Content cipher outside 表 4-2."},
            "UnsupportedAlgorithm": {"bugType": "WEAK_PARAMS", "description": "Content cipher outside 表 4-2."},
            "Structure": {"bugType": "MALFORMED_INPUT", "description": "EncryptedData outside the accepted syntax."},
            "ModifiedCiphertext": {"bugType": "AUTH_BYPASS", "description": "Ciphertext changed."},
            "BadOaep": {"bugType": "CCA", "description": "Key transport block does not decrypt; same error as any other decryption failure."},
            "WrongKey": {"bugType": "AUTH_BYPASS", "description": "Not for this recipient / not by this signer."},
            "Wrapping": {"bugType": "WRAPPING", "description": "Signature not covering the whole document or not where the layout says."},
            "WrongOrder": {"bugType": "FUNCTIONALITY", "description": "Sign-then-encrypt is not the DESIGN.md order."},
            "Dtd": {"bugType": "MALFORMED_INPUT", "description": "DOCTYPE refused."},
        },
        "testGroups": groups,
    }
    json.dump(doc, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
