"""Shared helpers of the SGW vector generators (Python `cryptography` and `jwcrypto` only)."""
import base64
import datetime as dt
import hashlib
import json
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "vectors", "data")
UTC = dt.timezone.utc
NOW = "2026-12-01T00:00:00Z"
NOW_DT = dt.datetime(2026, 12, 1, tzinfo=UTC)


# DES-CERT-4 step 3: the extended key usage of each data-protection role, under the UUID arc
# 2.25.<a7ad70d7-5c49-4b24-b382-d7b58589c577 as an integer> (X.667).
ROLE_ARC = "2.25.222881631345099252851491374019625207159"
ROLE_OIDS = {"platform": ROLE_ARC + ".1", "gateway": ROLE_ARC + ".2", "application": ROLE_ARC + ".3"}
assert int(ROLE_ARC.split(".")[2]) == 0xa7ad70d75c494b24b382d7b58589c577


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def b64(b):
    return base64.b64encode(b).decode("ascii")


def rsa_key(bits=2048):
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def key_pem(k):
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption()).decode()


def pub_pem(k):
    return k.public_key().public_bytes(serialization.Encoding.PEM,
                                       serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def cert_pem(c):
    return c.public_bytes(serialization.Encoding.PEM).decode()


def kid(c):
    return hashlib.sha256(c.public_bytes(serialization.Encoding.DER)).hexdigest()


def x5t(c):
    return b64u(hashlib.sha256(c.public_bytes(serialization.Encoding.DER)).digest())


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SGW vectors"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def d(y, m, day):
    return dt.datetime(y, m, day, tzinfo=UTC)


def make_root(key, cn="SGW Vector Root", nb=d(2026, 1, 1), na=d(2036, 1, 1)):
    b = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(cn))
         .public_key(key.public_key()).serial_number(1).not_valid_before(nb).not_valid_after(na)
         .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    return b.sign(key, hashes.SHA256())


def issue(issuer_key, issuer_cert, cn, key, serial, nb=d(2026, 1, 1), na=d(2031, 1, 1), issuer_name=None,
          roles=(), other_ekus=()):
    """A leaf certificate; `roles` (names of ROLE_OIDS) and `other_ekus` (OIDs) go into its
    extended key usage, which is left out when both are empty."""
    b = (x509.CertificateBuilder().subject_name(name(cn))
         .issuer_name(issuer_name or issuer_cert.subject)
         .public_key(key.public_key()).serial_number(serial).not_valid_before(nb).not_valid_after(na)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
    ekus = [ObjectIdentifier(ROLE_OIDS[r]) for r in roles] + [ObjectIdentifier(o) for o in other_ekus]
    if ekus:
        b = b.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
    c = b.sign(issuer_key, hashes.SHA256())
    assert roles_of(c) == [ROLE_OIDS[r] for r in roles]
    return c


def roles_of(c):
    """The role OIDs in `c`'s extended key usage, as re-read by `cryptography`."""
    try:
        eku = c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return []
    return [o.dotted_string for o in eku if o.dotted_string in ROLE_OIDS.values()]


def make_crl(issuer_key, issuer_cert, serials, this=d(2026, 6, 1), nxt=d(2035, 1, 1)):
    b = (x509.CertificateRevocationListBuilder().issuer_name(issuer_cert.subject)
         .last_update(this).next_update(nxt))
    for s in serials:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(s)
                                      .revocation_date(d(2026, 5, 1)).build())
    return b.sign(issuer_key, hashes.SHA256())


def crl_pem(c):
    return c.public_bytes(serialization.Encoding.PEM).decode()


class VectorFile:
    """Collects groups and cases; assigns tcIds; writes the file with an exact count."""

    def __init__(self, filename, algorithm, generator, header, notes):
        self.filename, self.algorithm, self.generator = filename, algorithm, generator
        self.header, self.notes, self.groups, self.next_id = header, notes, [], 1

    def group(self, gtype, requirements, **params):
        g = {"type": gtype, "requirements": requirements, **params, "tests": []}
        self.groups.append(g)
        return g

    def case(self, g, comment, result, flags=(), **inputs):
        for f in flags:
            assert f in self.notes, f
        g["tests"].append({"tcId": self.next_id, "comment": comment, "flags": list(flags),
                           "result": result, **inputs})
        self.next_id += 1

    def write(self):
        n = sum(len(g["tests"]) for g in self.groups)
        doc = {"algorithm": self.algorithm, "generatorVersion": self.generator, "numberOfTests": n,
               "header": self.header, "notes": self.notes, "testGroups": self.groups}
        with open(os.path.join(DATA, self.filename), "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, ensure_ascii=False)
            f.write("\n")
        print(f"{self.filename}: {n} cases")


def note(bug, desc):
    return {"bugType": bug, "description": desc}
