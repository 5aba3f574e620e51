#!/usr/bin/env python3
"""Generate vectors/data/cert_validation.json (SEC-CERT-2, SM-CERTEXP).

Certificates and CRLs are made here with Python `cryptography` (never with the Rust code);
each certificate's and CRL's signature is re-checked here with `cryptography`
(`verify_directly_issued_by`, `is_signature_valid`) so that the "valid" cases are valid and
the forged ones are forged independently of our implementation. Each certificate's role
(extended key usage OIDs of DES-CERT-4 step 3) is re-read with `cryptography` (`roles_of`).
"""
from common import (NOW, NOW_DT, ROLE_OIDS, VectorFile, cert_pem, crl_pem, d, issue, make_crl, make_root,
                    note, roles_of, rsa_key)

GEN = "scripts/vectors/gen_cert.py (cryptography)"
NOTES = {
    "Generated": note("FUNCTIONALITY", "Issued by the root, in period, not revoked, fresh CRL."),
    "Untrusted": note("AUTH_BYPASS", "Issuer name is the root's but the signature is by another key."),
    "WrongIssuer": note("AUTH_BYPASS", "Issued by another CA."),
    "Expired": note("EXPIRED_CERT", "notAfter before now."),
    "NotYetValid": note("EXPIRED_CERT", "notBefore after now."),
    "Revoked": note("REVOKED_CERT", "Serial on the CRL."),
    "CrlForged": note("AUTH_BYPASS", "CRL not signed by the root."),
    "CrlStale": note("MISSING_CHECK", "CRL nextUpdate before now, or no CRL."),
    "CrlNotYetValid": note("MISSING_CHECK", "CRL thisUpdate after now."),
    "WeakKey": note("WEAK_KEY", "RSA key under 2048 bits."),
    "WrongRole": note("AUTH_BYPASS", "Not the expected peer: the extended key usage lacks the role's OID "
                                     "(or lists another role's), or the subject CN is not the expected name."),
}


from cryptography.x509.oid import NameOID  # noqa: E402


def main():
    root_k, rogue_k, leaf_k = rsa_key(), rsa_key(), rsa_key()
    root = make_root(root_k)
    other_root = make_root(rogue_k, "Other Root")
    fresh = make_crl(root_k, root, [999])
    vf = VectorFile("cert_validation.json", "SGW-CERT-VALIDATION", GEN,
                    ["Harness: validate_cert(certPem, expected identity (expectRole, expectName), rootPem, "
                     "crlPem or none, now).",
                     "Valid = chains to the root, has the expected role's extended key usage (and no other "
                     "role's) and CN, in period at now, CRL by the root and current, not revoked."],
                    NOTES)
    g = vf.group("CertValidate", ["SEC-CERT-2", "SM-CERTEXP"], rootPem=cert_pem(root), now=NOW)

    def case(comment, result, flags, cert, crl=fresh, role="platform", expect=None):
        expect_name = expect or cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        inputs = {"certPem": cert_pem(cert), "expectRole": role, "expectName": expect_name}
        if crl is not None:
            inputs["crlPem"] = crl_pem(crl)
        vf.case(g, comment, result, flags, **inputs)

    good = issue(root_k, root, "platform", leaf_k, 300, roles=["platform"])
    good.verify_directly_issued_by(root)
    assert fresh.is_signature_valid(root.public_key())
    case("platform certificate issued by the root", "valid", ["Generated"], good)
    forged = issue(rogue_k, root, "platform", leaf_k, 301, roles=["platform"])
    try:
        forged.verify_directly_issued_by(root)
        raise AssertionError("forged verifies")
    except Exception:  # noqa: BLE001
        pass
    case("root's issuer name, signed by another key", "invalid", ["Untrusted"], forged)
    case("issued by another CA", "invalid", ["WrongIssuer"], issue(rogue_k, other_root, "platform", leaf_k, 302, roles=["platform"]))
    case("expired one day before now", "invalid", ["Expired"],
         issue(root_k, root, "platform", leaf_k, 303, nb=d(2025, 1, 1), na=d(2026, 11, 30), roles=["platform"]))
    case("valid from the day after now", "invalid", ["NotYetValid"],
         issue(root_k, root, "platform", leaf_k, 304, nb=d(2026, 12, 2), na=d(2030, 1, 1), roles=["platform"]))
    case("serial on the CRL", "invalid", ["Revoked"], good, make_crl(root_k, root, [300]))
    bad_crl = make_crl(rogue_k, root, [])
    assert not bad_crl.is_signature_valid(root.public_key())
    case("CRL signed by another key", "invalid", ["CrlForged"], good, bad_crl)
    case("CRL nextUpdate before now", "invalid", ["CrlStale"], good,
         make_crl(root_k, root, [], this=d(2026, 1, 1), nxt=d(2026, 11, 1)))
    case("no CRL", "invalid", ["CrlStale"], good, None)
    case("CRL thisUpdate after now", "invalid", ["CrlNotYetValid"], good,
         make_crl(root_k, root, [], this=d(2026, 12, 15), nxt=d(2027, 1, 1)))
    case("RSA-1024 certificate", "invalid", ["WeakKey"],
         issue(root_k, root, "platform", rsa_key(1024), 305, roles=["platform"]))
    # DES-CERT-4 step 3: role (extended key usage) and name (subject CN).
    gw = issue(root_k, root, "GW0001", leaf_k, 306, roles=["gateway"])
    app = issue(root_k, root, "APP01", leaf_k, 307, roles=["application"])
    case("gateway certificate expected as gateway GW0001", "valid", ["Generated"], gw, role="gateway")
    case("application certificate expected as application APP01", "valid", ["Generated"], app,
         role="application")
    case("platform role plus clientAuth (other purposes are ignored)", "valid", ["Generated"],
         issue(root_k, root, "platform", leaf_k, 308, roles=["platform"], other_ekus=["1.3.6.1.5.5.7.3.2"]))
    case("another gateway's certificate (same root) expected as the platform", "invalid", ["WrongRole"], gw,
         expect="platform")
    case("gateway GW0001's certificate expected as gateway GW0002", "invalid", ["WrongRole"], gw,
         role="gateway", expect="GW0002")
    case("CN platform without an extended key usage", "invalid", ["WrongRole"],
         issue(root_k, root, "platform", leaf_k, 309))
    case("application certificate named platform posing as the platform", "invalid", ["WrongRole"],
         issue(root_k, root, "platform", leaf_k, 310, roles=["application"]))
    case("CN platform with the platform and the gateway role", "invalid", ["WrongRole"],
         issue(root_k, root, "platform", leaf_k, 311, roles=["platform", "gateway"]))
    case("CN platform with only clientAuth", "invalid", ["WrongRole"],
         issue(root_k, root, "platform", leaf_k, 312, other_ekus=["1.3.6.1.5.5.7.3.2"]))
    assert roles_of(gw) == [ROLE_OIDS["gateway"]]
    assert NOW_DT.year == 2026
    vf.write()


if __name__ == "__main__":
    main()
