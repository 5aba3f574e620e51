#!/usr/bin/env python3
"""Generate vectors/data/jws_rs256.json, jwe.json and seal.json (SEC-JSON-*, DES-SEAL).

Public vectors (RFC 7515 A.2, RFC 7516 A.1/A.2, RFC 7520 4.1/5.1/5.2): the RFC appendix values
as carried by jwcrypto 1.6.1's own test modules (tests.py, tests-cookbook.py), each re-verified
here with jwcrypto's API before it is written. Home-made vectors: made here with jwcrypto and
`cryptography` (never with the Rust code); every `valid` case is verified with jwcrypto and every
cryptographically broken `invalid` case is checked to be refused by jwcrypto as well. Policy
refusals (header allowlist, kid, typ, key size) are SGW rules that jwcrypto does not enforce.
"""
import hashlib
import hmac
import importlib.util
import json
import os

import jwcrypto
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding as apad
from jwcrypto import jwe, jwk, jws
from jwcrypto.common import base64url_decode

from common import (NOW, VectorFile, b64u, cert_pem, crl_pem, d, issue, key_pem, kid, make_crl,
                    make_root, note, pub_pem, rsa_key, x5t)

GEN = "scripts/vectors/gen_jose.py (jwcrypto 1.6.1, cryptography)"
JWC_DIR = os.path.dirname(jwcrypto.__file__)
ALL_ALGS = ["RS256", "RS512", "PS256", "HS256", "RSA1_5", "RSA-OAEP", "RSA-OAEP-256",
            "A128CBC-HS256", "A256CBC-HS512", "A128GCM", "A256GCM"]


def load_mod(fname):
    spec = importlib.util.spec_from_file_location(fname.replace("-", "_")[:-3], os.path.join(JWC_DIR, fname))
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


T = load_mod("tests.py")
C = load_mod("tests-cookbook.py")


def jwc_verify(token, pub):
    s = jws.JWS()
    s.allowed_algs = ["RS256"]
    s.deserialize(token, key=pub)
    return s.payload


def jwc_refuses(token, pub):
    try:
        jwc_verify(token, pub)
        return False
    except Exception:  # noqa: BLE001
        return True


def jwc_decrypt(token, priv, algs=ALL_ALGS):
    e = jwe.JWE()
    e.allowed_algs = algs
    e.deserialize(token, key=priv)
    return e.payload


def jwc_decrypt_refuses(token, priv):
    try:
        jwc_decrypt(token, priv, ["RSA-OAEP", "RSA-OAEP-256", "A128CBC-HS256"])
        return False
    except Exception:  # noqa: BLE001
        return True


def raw_jws(header, payload, key):
    inp = f"{b64u(json.dumps(header).encode())}.{b64u(payload)}"
    sig = key.sign(inp.encode(), apad.PKCS1v15(), hashes.SHA256())
    return f"{inp}.{b64u(sig)}"


def jwk_of(k):
    return jwk.JWK.from_pem(key_pem(k).encode())


def jwk_pub(k):
    return jwk.JWK.from_pem(pub_pem(k).encode())


def jwc_jwe(plaintext, header, to_key):
    e = jwe.JWE(plaintext, protected=json.dumps(header))
    e.allowed_algs = ALL_ALGS
    e.add_recipient(to_key)
    return e.serialize(compact=True)


def flip(token, part, index=0):
    parts = token.split(".")
    raw = bytearray(base64url_decode(parts[part]))
    raw[index] ^= 1
    parts[part] = b64u(bytes(raw))
    return ".".join(parts)


NOTES_JWS = {
    "Rfc7515": note("KNOWN_VECTOR", "RFC 7515 appendix A.2 RS256 example."),
    "Rfc7520": note("KNOWN_VECTOR", "RFC 7520 (JOSE cookbook) example."),
    "Generated": note("FUNCTIONALITY", "A correct RS256 JWS made by jwcrypto."),
    "AlgNone": note("AUTH_BYPASS", "alg none must never be accepted."),
    "HmacKeyConfusion": note("AUTH_BYPASS", "HS256 keyed with the signer's RSA public key must be refused."),
    "UnsupportedAlg": note("ALGORITHM_CONFUSION", "Only RS256 is accepted (SEC-JSON-SIG-1)."),
    "ForbiddenHeader": note("MISSING_CHECK", "crit/jku/x5u/jwk/zip/x5c and unknown header parameters are refused."),
    "ModifiedPayload": note("SIGNATURE_FORGERY", "Payload changed after signing."),
    "ModifiedSignature": note("SIGNATURE_FORGERY", "Signature bytes changed."),
    "Truncated": note("MALFORMED", "Token cut short or missing a part."),
    "WrongKey": note("SIGNATURE_FORGERY", "Signed by a key other than the expected signer's."),
    "WeakKey": note("WEAK_KEY", "RSA key under 2048 bits is refused."),
    "DuplicateHeader": note("MALFORMED", "Protected header with a duplicate member name (parser differential)."),
    "UnexpectedType": note("MISSING_CHECK", "typ differs from the profile's."),
    "WrongKid": note("MISSING_CHECK", "kid differs from the expected signer's."),
}


def gen_jws():
    vf = VectorFile("jws_rs256.json", "JWS-RS256", GEN,
                    ["JWS compact serialization, RS256 only (SEC-JSON-SIG-1/2).",
                     "Harness: verify `token` with `publicKeyPem` under the group's policy (typ/kid "
                     "required when given); valid => payload equals `payloadB64`."], NOTES_JWS)
    # RFC 7515 A.2
    key = jwk.JWK(**T.A2_key)
    pem_pub = key.export_to_pem().decode()
    token = "{}.{}.{}".format(b64u(T.A2_example["protected"].encode()), b64u(T.A2_example["payload"]),
                              b64u(T.A2_example["signature"]))
    assert jwc_verify(token, key) == T.A2_example["payload"]
    g = vf.group("JwsVerify", ["SEC-JSON-SIG-1", "SEC-JSON-SIG-2"], publicKeyPem=pem_pub)
    vf.case(g, "RFC 7515 A.2 RS256 example", "valid", ["Rfc7515"], token=token, payloadB64=b64u(T.A2_example["payload"]))
    vf.case(g, "RFC 7515 A.2 with one signature bit flipped", "invalid", ["Rfc7515", "ModifiedSignature"],
            token=flip(token, 2, 5), payloadB64=b64u(T.A2_example["payload"]))
    # RFC 7520 4.1
    key = jwk.JWK(**C.RSA_Private_Key_3_4)
    token = C.JWS_compact_4_1_3
    payload = jwc_verify(token, key)
    assert payload == C.Payload_plaintext_b64_4.encode() or b64u(payload) == C.Payload_plaintext_b64_4
    g = vf.group("JwsVerify", ["SEC-JSON-SIG-1", "SEC-JSON-SIG-2"], publicKeyPem=key.export_to_pem().decode())
    vf.case(g, "RFC 7520 4.1 RS256 signature (bilbo.baggins key)", "valid", ["Rfc7520"], token=token, payloadB64=b64u(payload))
    # Home-made
    k, other = rsa_key(), rsa_key()
    pub = jwk_pub(k)
    payload = '{"version":"1","type":"connect","note":"水道"}'.encode()
    g = vf.group("JwsVerify", ["SEC-JSON-SIG-1", "SEC-JSON-SIG-2"], publicKeyPem=pub_pem(k))
    s = jws.JWS(payload)
    s.add_signature(jwk_of(k), protected=json.dumps({"alg": "RS256"}))
    good = s.serialize(compact=True)
    assert jwc_verify(good, pub) == payload
    vf.case(g, "RS256 by jwcrypto", "valid", ["Generated"], token=good, payloadB64=b64u(payload))
    h = b64u(b'{"alg":"none"}')
    none = f"{h}.{b64u(payload)}."
    assert jwc_refuses(none, pub)
    vf.case(g, "alg none, empty signature", "invalid", ["AlgNone"], token=none, payloadB64=b64u(payload))
    for secret, what in [(pub_pem(k).encode(), "PEM"), (k.public_key().public_bytes(
            serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo), "DER")]:
        inp = b64u(b'{"alg":"HS256"}') + "." + b64u(payload)
        tok = f"{inp}.{b64u(hmac.new(secret, inp.encode(), hashlib.sha256).digest())}"
        assert jwc_refuses(tok, pub)
        vf.case(g, f"HS256 keyed with the public key {what}", "invalid", ["HmacKeyConfusion"], token=tok, payloadB64=b64u(payload))
    for alg in ["RS512", "PS256"]:
        s = jws.JWS(payload)
        s.allowed_algs = ALL_ALGS
        s.add_signature(jwk_of(k), alg=alg, protected=json.dumps({"alg": alg}))
        tok = s.serialize(compact=True)
        assert jwc_refuses(tok, pub)
        vf.case(g, f"correct {alg} signature: algorithm not accepted", "invalid", ["UnsupportedAlg"], token=tok, payloadB64=b64u(payload))
    for extra in [{"crit": ["exp"], "exp": 1}, {"jku": "https://evil.example/jwks"},
                  {"x5u": "https://evil.example/c.pem"}, {"jwk": json.loads(pub.export_public())},
                  {"zip": "DEF"}, {"x5c": ["AAAA"]}, {"unknownParam": 1}]:
        tok = raw_jws({"alg": "RS256", **extra}, payload, k)
        vf.case(g, f"valid RS256 with header {next(iter(extra))}", "invalid", ["ForbiddenHeader"], token=tok, payloadB64=b64u(payload))
    inp = b64u(b'{"alg":"none","alg":"RS256"}') + "." + b64u(payload)
    tok = inp + "." + b64u(k.sign(inp.encode(), apad.PKCS1v15(), hashes.SHA256()))
    jwc_dup = jwc_refuses(tok, pub)
    vf.case(g, "valid RS256 signature, header has alg twice", "invalid", ["DuplicateHeader"], token=tok,
            payloadB64=b64u(payload))
    parts = good.split(".")
    forged = f"{parts[0]}.{b64u(payload.replace(b'connect', b'disconn'))}.{parts[2]}"
    assert jwc_refuses(forged, pub)
    vf.case(g, "payload modified", "invalid", ["ModifiedPayload"], token=forged, payloadB64=b64u(payload))
    tok = flip(good, 2, 100)
    assert jwc_refuses(tok, pub)
    vf.case(g, "signature bit flipped", "invalid", ["ModifiedSignature"], token=tok, payloadB64=b64u(payload))
    tok = good[:-10]
    assert jwc_refuses(tok, pub)
    vf.case(g, "signature truncated", "invalid", ["Truncated"], token=tok, payloadB64=b64u(payload))
    tok = f"{parts[0]}.{parts[1]}"
    vf.case(g, "two parts only", "invalid", ["Truncated"], token=tok, payloadB64=b64u(payload))
    tok = f"{parts[0]}.{parts[1]}."
    assert jwc_refuses(tok, pub)
    vf.case(g, "empty signature", "invalid", ["Truncated"], token=tok, payloadB64=b64u(payload))
    tok = raw_jws({"alg": "RS256"}, payload, other)
    assert jwc_refuses(tok, pub)
    vf.case(g, "signed by another key", "invalid", ["WrongKey"], token=tok, payloadB64=b64u(payload))
    small = rsa_key(1024)
    tok = raw_jws({"alg": "RS256"}, payload, small)
    assert jwc_verify(tok, jwk_pub(small)) == payload
    g2 = vf.group("JwsVerify", ["SEC-JSON-SIG-1", "SM-DATAENC"], publicKeyPem=pub_pem(small))
    vf.case(g2, "correct RS256 by a 1024-bit key", "invalid", ["WeakKey"], token=tok, payloadB64=b64u(payload))
    g3 = vf.group("JwsVerify", ["SEC-JSON-SIG-2"], publicKeyPem=pub_pem(k), typ="sgw-msg", kid="a" * 64)
    tok = raw_jws({"alg": "RS256", "typ": "sgw-msg", "kid": "a" * 64}, payload, k)
    vf.case(g3, "typ and kid as required", "valid", ["Generated"], token=tok, payloadB64=b64u(payload))
    tok = raw_jws({"alg": "RS256", "typ": "sgw-profile", "kid": "a" * 64}, payload, k)
    vf.case(g3, "typ of another profile", "invalid", ["UnexpectedType"], token=tok, payloadB64=b64u(payload))
    tok = raw_jws({"alg": "RS256", "typ": "sgw-msg", "kid": "b" * 64}, payload, k)
    vf.case(g3, "kid of another signer", "invalid", ["WrongKid"], token=tok, payloadB64=b64u(payload))
    tok = raw_jws({"alg": "RS256", "kid": "a" * 64}, payload, k)
    vf.case(g3, "typ missing", "invalid", ["UnexpectedType"], token=tok, payloadB64=b64u(payload))
    vf.write()
    print(f"  (jwcrypto {'refuses' if jwc_dup else 'accepts'} the duplicate-alg header)")


NOTES_JWE = {
    "Rfc7516": note("KNOWN_VECTOR", "RFC 7516 appendix example (decrypts with jwcrypto)."),
    "Rfc7520": note("KNOWN_VECTOR", "RFC 7520 (JOSE cookbook) example (decrypts with jwcrypto)."),
    "Generated": note("FUNCTIONALITY", "A correct JWE made by jwcrypto."),
    "UnsupportedAlg": note("ALGORITHM_CONFUSION", "Key transport other than RSA-OAEP / RSA-OAEP-256 (e.g. RSA1_5) is refused."),
    "UnsupportedEnc": note("ALGORITHM_CONFUSION", "Content encryption other than A128CBC-HS256 is refused (SEC-JSON-ENC-1)."),
    "ForbiddenHeader": note("MISSING_CHECK", "zip/crit/jku/x5u/jwk and unknown header parameters are refused."),
    "ModifiedCiphertext": note("CCA", "A part of the token was changed; must fail with the one opaque decryption error."),
    "WrongKey": note("CCA", "Encrypted to another key; must fail like any other decryption failure."),
    "Truncated": note("MALFORMED", "Token cut short or missing a part."),
    "WeakKey": note("WEAK_KEY", "RSA key under 2048 bits is refused."),
}


def gen_jwe():
    vf = VectorFile("jwe.json", "JWE-RSA-OAEP-A128CBC-HS256", GEN,
                    ["JWE compact, alg RSA-OAEP-256 or RSA-OAEP, enc A128CBC-HS256 only (SEC-JSON-ENC-1/2).",
                     "Harness: decrypt `token` with `privateKeyPem`; valid => plaintext equals `plaintextB64`."],
                    NOTES_JWE)
    # RFC 7516 A.1 (RSA-OAEP, A256GCM) and A.2 (RSA1_5, A128CBC-HS256)
    for ex, label, flag in [(T.E_A1_ex, "RFC 7516 A.1 RSA-OAEP + A256GCM", "UnsupportedEnc"),
                            (T.E_A2_ex, "RFC 7516 A.2 RSA1_5 + A128CBC-HS256", "UnsupportedAlg")]:
        pt = jwc_decrypt(ex["vector"], ex["key"])
        want = ex["plaintext"] if isinstance(ex["plaintext"], bytes) else ex["plaintext"].encode()
        assert pt == want, label
        g = vf.group("JweDecrypt", ["SEC-JSON-ENC-1", "SEC-JSON-ENC-2"],
                     privateKeyPem=ex["key"].export_to_pem(private_key=True, password=None).decode())
        vf.case(g, label + ": decrypts with jwcrypto, algorithm not accepted by SGW", "invalid",
                ["Rfc7516", flag], token=ex["vector"], plaintextB64=b64u(pt))
    # RFC 7520 5.1 (RSA1_5 + A128CBC-HS256) and 5.2 (RSA-OAEP + A256GCM)
    for keyd, token, label, flag in [
            (C.RSA_key_5_1_1, C.JWE_compact_5_1_5, "RFC 7520 5.1 RSA1_5 + A128CBC-HS256", "UnsupportedAlg"),
            (C.RSA_key_5_2_1, C.JWE_compact_5_2_5, "RFC 7520 5.2 RSA-OAEP + A256GCM", "UnsupportedEnc")]:
        key = jwk.JWK(**keyd)
        pt = jwc_decrypt(token, key)
        assert pt == C.Payload_plaintext_5.encode() if isinstance(C.Payload_plaintext_5, str) else C.Payload_plaintext_5
        g = vf.group("JweDecrypt", ["SEC-JSON-ENC-1", "SEC-JSON-ENC-2"],
                     privateKeyPem=key.export_to_pem(private_key=True, password=None).decode())
        vf.case(g, label + ": decrypts with jwcrypto, algorithm not accepted by SGW", "invalid",
                ["Rfc7520", flag], token=token, plaintextB64=b64u(pt))
    # Home-made
    k, other = rsa_key(), rsa_key()
    priv, pub = jwk_of(k), jwk_pub(k)
    pt = '{"header":{"profileId":"sgw-profile-v1"},"records":[["1","配水池"]]}'.encode()
    g = vf.group("JweDecrypt", ["SEC-JSON-ENC-1", "SEC-JSON-ENC-2"], privateKeyPem=key_pem(k))
    goods = {}
    for alg in ["RSA-OAEP-256", "RSA-OAEP"]:
        tok = jwc_jwe(pt, {"alg": alg, "enc": "A128CBC-HS256"}, pub)
        assert jwc_decrypt(tok, priv) == pt
        goods[alg] = tok
        vf.case(g, f"{alg} + A128CBC-HS256 by jwcrypto", "valid", ["Generated"], token=tok, plaintextB64=b64u(pt))
    good = goods["RSA-OAEP-256"]
    for part, what in [(0, "protected header"), (1, "encrypted key"), (2, "IV"), (3, "ciphertext"), (4, "tag")]:
        if part == 0:
            tok = good.split(".")
            tok[0] = b64u(json.dumps({"alg": "RSA-OAEP-256", "enc": "A128CBC-HS256", "kid": "x"}).encode())
            tok = ".".join(tok)
        else:
            tok = flip(good, part, 3)
        assert jwc_decrypt_refuses(tok, priv), what
        vf.case(g, f"{what} modified", "invalid", ["ModifiedCiphertext"], token=tok, plaintextB64=b64u(pt))
    tok = jwc_jwe(pt, {"alg": "RSA-OAEP-256", "enc": "A128CBC-HS256"}, jwk_pub(other))
    assert jwc_decrypt_refuses(tok, priv)
    vf.case(g, "encrypted to another key", "invalid", ["WrongKey"], token=tok, plaintextB64=b64u(pt))
    for enc in ["A256CBC-HS512", "A128GCM", "A256GCM"]:
        tok = jwc_jwe(pt, {"alg": "RSA-OAEP-256", "enc": enc}, pub)
        assert jwc_decrypt(tok, priv) == pt
        vf.case(g, f"enc {enc}", "invalid", ["UnsupportedEnc"], token=tok, plaintextB64=b64u(pt))
    tok = jwc_jwe(pt, {"alg": "RSA1_5", "enc": "A128CBC-HS256"}, pub)
    vf.case(g, "alg RSA1_5", "invalid", ["UnsupportedAlg"], token=tok, plaintextB64=b64u(pt))
    tok = jwc_jwe(pt, {"alg": "RSA-OAEP-256", "enc": "A128CBC-HS256", "zip": "DEF"}, pub)
    assert jwc_decrypt(tok, priv) == pt
    vf.case(g, "zip DEF", "invalid", ["ForbiddenHeader"], token=tok, plaintextB64=b64u(pt))
    for extra in [{"jku": "https://evil.example/jwks"}, {"x5u": "https://evil.example/c.pem"},
                  {"jwk": json.loads(pub.export_public())}, {"crit": ["exp"], "exp": 1}]:
        try:
            tok = jwc_jwe(pt, {"alg": "RSA-OAEP-256", "enc": "A128CBC-HS256", **extra}, pub)
        except Exception:  # noqa: BLE001 - jwcrypto refuses to make some; build it by hand
            continue
        vf.case(g, f"header {next(iter(extra))}", "invalid", ["ForbiddenHeader"], token=tok, plaintextB64=b64u(pt))
    vf.case(g, "four parts", "invalid", ["Truncated"], token=good.rsplit(".", 1)[0], plaintextB64=b64u(pt))
    vf.case(g, "tag cut short", "invalid", ["Truncated"], token=good[:-4], plaintextB64=b64u(pt))
    small = rsa_key(1024)
    tok = jwc_jwe(pt, {"alg": "RSA-OAEP-256", "enc": "A128CBC-HS256"}, jwk_pub(small))
    assert jwc_decrypt(tok, jwk_of(small)) == pt
    g2 = vf.group("JweDecrypt", ["SEC-JSON-ENC-2", "SM-DATAENC"], privateKeyPem=key_pem(small))
    vf.case(g2, "correct token to a 1024-bit key", "invalid", ["WeakKey"], token=tok, plaintextB64=b64u(pt))
    vf.write()


NOTES_SEAL = {
    "Generated": note("FUNCTIONALITY", "Sealed the DES-SEAL way by jwcrypto; jwcrypto opens it."),
    "OaepSha1": note("FUNCTIONALITY", "Key transport RSA-OAEP (SHA-1), accepted on receipt."),
    "WrongProfile": note("MISSING_CHECK", "Token of the other profile (typ/cty) must not be accepted."),
    "SignerMismatch": note("AUTH_BYPASS", "Signed by a known party that is not the expected sender."),
    "UnknownSigner": note("AUTH_BYPASS", "Signed by a key whose certificate is unknown."),
    "AlgNone": note("AUTH_BYPASS", "Inner JWS with alg none."),
    "WrongRecipient": note("MISSING_CHECK", "Encrypted to another recipient's kid/key."),
    "ModifiedCiphertext": note("CCA", "Outer token modified."),
    "CertExpired": note("EXPIRED_CERT", "Sender certificate expired at `now`."),
    "CertRevoked": note("REVOKED_CERT", "Sender certificate on the CRL."),
}


def seal(payload, sender_key, sender_cert, recipient_cert, typ, cty, alg="RSA-OAEP-256", inner_header=None):
    ih = inner_header or {"alg": "RS256", "typ": typ, "kid": kid(sender_cert), "x5t#S256": x5t(sender_cert)}
    if ih.get("alg") == "none":
        inner = f"{b64u(json.dumps(ih).encode())}.{b64u(payload)}."
    else:
        inner = raw_jws(ih, payload, sender_key)
    return jwc_jwe(inner.encode(), {"alg": alg, "enc": "A128CBC-HS256", "cty": cty, "kid": kid(recipient_cert)},
                   jwk.JWK.from_pem(recipient_cert.public_key().public_bytes(
                       serialization.Encoding.PEM,
                       serialization.PublicFormat.SubjectPublicKeyInfo)))


def jwc_open(token, recipient_key, sender_cert, typ):
    inner = jwc_decrypt(token, jwk_of(recipient_key), ["RSA-OAEP", "RSA-OAEP-256", "A128CBC-HS256"]).decode()
    h = json.loads(base64url_decode(inner.split(".")[0]))
    assert h["typ"] == typ and h["kid"] == kid(sender_cert)
    return jwc_verify(inner, jwk.JWK.from_pem(sender_cert.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo)))


def gen_seal():
    vf = VectorFile("seal.json", "SGW-SEAL-NESTED-JWS-IN-JWE", GEN,
                    ["Nested sign-then-encrypt (DES-SEAL message sealing, DES-PROF JSON profile).",
                     "Harness: KeyStore(own = recipientKeyPem/recipientCertPem, root = rootPem, CRL = crlPem, "
                     "peers gateway `GW0001` = senderCertPem, application `APP01` = otherCertPem, each under "
                     "its role and CN, DES-CERT-4); open(profile, expected sender `GW0001`, token, now); "
                     "valid => payload equals `payloadB64`."], NOTES_SEAL)
    root_k = rsa_key()
    root = make_root(root_k)
    rk, sk, ok_, uk = rsa_key(), rsa_key(), rsa_key(), rsa_key()
    rcert = issue(root_k, root, "platform", rk, 100, roles=["platform"])
    scert = issue(root_k, root, "GW0001", sk, 101, roles=["gateway"])
    ocert = issue(root_k, root, "APP01", ok_, 102, roles=["application"])
    ucert = issue(uk, make_root(uk, "Unknown Root"), "stranger", uk, 103, roles=["gateway"])
    crl = make_crl(root_k, root, [999])
    payload = '{"version":"1","type":"periodic.start","commandSeq":7,"note":"定周期"}'.encode()
    for profile, typ, cty in [("message", "sgw-msg", "sgw-msg+jws"), ("jsonProfile", "sgw-profile", "sgw-profile+jws")]:
        base = dict(profile=profile, now=NOW, rootPem=cert_pem(root), crlPem=crl_pem(crl),
                    recipientKeyPem=key_pem(rk), recipientCertPem=cert_pem(rcert),
                    senderCertPem=cert_pem(scert), otherCertPem=cert_pem(ocert))
        g = vf.group("SealOpen", ["SEC-JSON-SIG-1", "SEC-JSON-SIG-2", "SEC-JSON-ENC-1", "SEC-JSON-ENC-2", "SEC-CERT-2"], **base)
        other_typ, other_cty = ("sgw-profile", "sgw-profile+jws") if profile == "message" else ("sgw-msg", "sgw-msg+jws")
        tok = seal(payload, sk, scert, rcert, typ, cty)
        assert jwc_open(tok, rk, scert, typ) == payload
        vf.case(g, f"{profile}: RSA-OAEP-256 sealed by jwcrypto", "valid", ["Generated"], token=tok, payloadB64=b64u(payload))
        tok = seal(payload, sk, scert, rcert, typ, cty, alg="RSA-OAEP")
        assert jwc_open(tok, rk, scert, typ) == payload
        vf.case(g, f"{profile}: RSA-OAEP (SHA-1) sealed by jwcrypto", "valid", ["Generated", "OaepSha1"], token=tok, payloadB64=b64u(payload))
        vf.case(g, f"{profile}: token of the other profile", "invalid", ["WrongProfile"],
                token=seal(payload, sk, scert, rcert, other_typ, other_cty), payloadB64=b64u(payload))
        vf.case(g, f"{profile}: signed by the known party `other`", "invalid", ["SignerMismatch"],
                token=seal(payload, ok_, ocert, rcert, typ, cty), payloadB64=b64u(payload))
        vf.case(g, f"{profile}: signed by an unknown party", "invalid", ["UnknownSigner"],
                token=seal(payload, uk, ucert, rcert, typ, cty), payloadB64=b64u(payload))
        vf.case(g, f"{profile}: inner alg none claiming the sender's kid", "invalid", ["AlgNone"],
                token=seal(payload, sk, scert, rcert, typ, cty, inner_header={"alg": "none", "typ": typ, "kid": kid(scert)}),
                payloadB64=b64u(payload))
        vf.case(g, f"{profile}: encrypted to `other`", "invalid", ["WrongRecipient"],
                token=seal(payload, sk, scert, ocert, typ, cty), payloadB64=b64u(payload))
        good = seal(payload, sk, scert, rcert, typ, cty)
        vf.case(g, f"{profile}: ciphertext modified", "invalid", ["ModifiedCiphertext"], token=flip(good, 3, 7), payloadB64=b64u(payload))
        g2 = vf.group("SealOpen", ["SEC-CERT-2", "SM-CERTEXP"], **{**base, "now": "2031-06-01T00:00:00Z",
                                                                   "crlPem": crl_pem(make_crl(root_k, root, [], nxt=d(2032, 1, 1)))})
        vf.case(g2, f"{profile}: sender certificate expired at now", "invalid", ["CertExpired"], token=good, payloadB64=b64u(payload))
        g3 = vf.group("SealOpen", ["SEC-CERT-2"], **{**base, "crlPem": crl_pem(make_crl(root_k, root, [101]))})
        vf.case(g3, f"{profile}: sender certificate revoked", "invalid", ["CertRevoked"], token=good, payloadB64=b64u(payload))
    vf.write()


if __name__ == "__main__":
    gen_jws()
    gen_jwe()
    gen_seal()
