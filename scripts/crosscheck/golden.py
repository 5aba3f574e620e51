#!/usr/bin/env python3
"""Independent checker of the golden files in vectors/golden/ (docs/protocol.md; README there).

Written from the text of docs/protocol.md with Python packages only (jsonschema, jwcrypto,
cryptography, lxml, python-xmlsec, zipfile; scripts/crosscheck/mask.py for DES-MASK-2); it never
runs the Rust code. It is what a vendor can run to see that the golden set is consistent with
the protocol text, and the model for checking their own implementation's output.

  python3 scripts/crosscheck/golden.py [--golden DIR] [--schemas DIR] [--only PART,...]

PARTS: pki, envelopes, sealed, masking, archive, transcripts (default: all). Every failure is
printed as `FAIL <file>: <what>`; the exit status is 1 if there is any.
"""
import argparse
import base64
import csv
import datetime as dt
import hashlib
import io
import json
import os
import re
import sys
import zipfile

import jsonschema
from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as apad
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from jwcrypto import jwe, jwk, jws

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import mask as maskpy  # noqa: E402

ROLE_ARC = "2.25.222881631345099252851491374019625207159"
ROLE_OID = {"platform": ROLE_ARC + ".1", "gateway": ROLE_ARC + ".2", "application": ROLE_ARC + ".3"}
TS = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$")
ENV_ORDER = ["version", "messageId", "gatewayId", "type", "timestamp", "inReplyTo", "result", "body"]
# DES-MSG-1: type -> (direction, the request it answers or None)
TYPES = {
    "connect": ("up", None), "connect.result": ("down", "connect"),
    "disconnect": ("up", None), "disconnect.result": ("down", "disconnect"),
    "periodic.start": ("down", None), "periodic.start.result": ("up", "periodic.start"),
    "periodic.stop": ("down", None), "periodic.stop.result": ("up", "periodic.stop"),
    "data": ("up", None), "data.ack": ("down", "data"),
    "resend.request": ("down", None), "resend.result": ("up", "resend.request"),
    "monitor.status": ("up", None), "anomaly": ("up", None),
    "ack": ("down", ("periodic.start.result", "periodic.stop.result")),
}
TOPIC = re.compile(r"^/tenants/([A-Za-z0-9]{1,32})/sgw/v1/(up|down)/([a-z.]+)$")
MAX_ENVELOPE = 262144
XENC = "http://www.w3.org/2001/04/xmlenc#"
DS = "http://www.w3.org/2000/09/xmldsig#"
SGW = "urn:sgw:profile:v1"


class Checker:
    def __init__(self, golden, schemas):
        self.g, self.failures, self.checks = golden, [], 0
        with open(os.path.join(schemas, "envelope.schema.json")) as f:
            self.env_schema = jsonschema.Draft202012Validator(json.load(f))
        with open(os.path.join(schemas, "profile.schema.json")) as f:
            self.prof_schema = jsonschema.Draft202012Validator(json.load(f))
        self.profiles = {}
        self.cache = {}

    # ---------------------------------------------------------------- plumbing
    def fail(self, where, what):
        self.failures.append(f"FAIL {where}: {what}")

    def ok(self, cond, where, what):
        self.checks += 1
        if not cond:
            self.fail(where, what)
        return cond

    def path(self, rel):
        return os.path.join(self.g, rel)

    def read(self, rel):
        with open(self.path(rel), "rb") as f:
            return f.read()

    @staticmethod
    def strict_json(text):
        """JSON with no repeated member name (DES-ENV-1)."""
        def hook(pairs):
            keys = [k for k, _ in pairs]
            if len(keys) != len(set(keys)):
                raise ValueError(f"repeated member in {keys}")
            return dict(pairs)
        return json.loads(text, object_pairs_hook=hook)

    def cert(self, name):
        return x509.load_pem_x509_certificate(self.read(f"pki/{name}.pem"))

    def key(self, name):
        if ("key", name) not in self.cache:
            self.cache[("key", name)] = serialization.load_pem_private_key(self.read(f"pki/{name}.key"), password=None)
        return self.cache[("key", name)]

    def jwk_private(self, name):
        if ("jwk", name) not in self.cache:
            self.cache[("jwk", name)] = jwk.JWK.from_pem(self.read(f"pki/{name}.key"))
        return self.cache[("jwk", name)]

    @staticmethod
    def kid(cert):
        return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()

    @staticmethod
    def when(s):
        return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))

    # ---------------------------------------------------------------- PKI (DES-CERT-3/4)
    def cert_problem(self, cert, expect_name, at):
        """DES-CERT-4 steps 1-7, in their order, for `cert` used as `expect_name`'s certificate
        at `at`; None if valid, else the name of the first failing step."""
        root = self.cert("root")
        crl = x509.load_pem_x509_crl(self.read("pki/crl.pem"))
        if cert.issuer != root.subject:
            return "CertWrongIssuer"
        try:
            cert.verify_directly_issued_by(root)
        except Exception:  # noqa: BLE001
            return "CertUntrusted"
        # (3) role: the role's EKU OID and no other role OID; exactly one CN, the expected name.
        role = "platform" if expect_name == "platform" else "gateway"
        try:
            eku = [o.dotted_string for o in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value]
        except x509.ExtensionNotFound:
            eku = []
        roles = sorted({o for o in eku if o in ROLE_OID.values()})
        cn = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
        if roles != [ROLE_OID[role]] or [a.value for a in cn] != [expect_name]:
            return "CertWrongRole"
        pk = cert.public_key()
        if not isinstance(pk, rsa.RSAPublicKey) or pk.key_size < 2048:
            return "WeakKey"
        if at < cert.not_valid_before_utc:
            return "CertNotYetValid"
        if at > cert.not_valid_after_utc:
            return "CertExpired"
        if crl.issuer != root.subject or not crl.is_signature_valid(root.public_key()):
            return "CrlBadSignature"
        if at < crl.last_update_utc:
            return "CrlNotYetValid"
        if crl.next_update_utc is None or at >= crl.next_update_utc:
            return "CrlStale"
        if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
            return "CertRevoked"
        return None

    def check_pki(self, at):
        root = self.cert("root")
        where = "pki/root.pem"
        self.ok(root.issuer == root.subject, where, "the root is not self-issued")
        try:
            root.verify_directly_issued_by(root)
            self.ok(True, where, "")
        except Exception as e:  # noqa: BLE001
            self.fail(where, f"the root is not self-signed: {e}")
        self.ok(root.public_key().key_size >= 2048, where, "root key under 2048 bits")
        self.ok(root.not_valid_before_utc <= at <= root.not_valid_after_utc, where, "root not valid at the check time")
        crl = x509.load_pem_x509_crl(self.read("pki/crl.pem"))
        try:
            number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        except x509.ExtensionNotFound:
            number = None
        self.ok(number is not None, "pki/crl.pem", "no CRL number (DES-CERT-3)")
        for name, valid in (("platform", None), ("GW0001", None), ("GW0002", "CertRevoked")):
            c = self.cert(name)
            got = self.cert_problem(c, name, at)
            self.ok(got == valid, f"pki/{name}.pem", f"DES-CERT-4 says {got}, expected {valid}")
            k = self.key(name)
            self.ok(k.public_key().public_numbers() == c.public_key().public_numbers(),
                    f"pki/{name}.key", "the key does not match the certificate")
        # The CRL must be what puts GW0002 out: one that no longer lists it would accept it.
        self.ok(crl.get_revoked_certificate_by_serial_number(self.cert("GW0002").serial_number) is not None,
                "pki/crl.pem", "GW0002 is not revoked")

    # ---------------------------------------------------------------- envelopes (§3, §6)
    def check_envelope_rules(self, env, where):
        """The schema plus the encoder rules the schema cannot state (DES-ENV-1/2/6, §15)."""
        errors = sorted(self.env_schema.iter_errors(env), key=lambda e: list(e.path))
        for e in errors[:3]:
            self.fail(where, f"schema: {'/'.join(map(str, e.path))}: {e.message[:200]}")
        self.checks += 1
        keys = [k for k in env]
        self.ok(keys == [k for k in ENV_ORDER if k in env], where, f"member order {keys} (DES-ENV-1)")

        def walk(v, path):
            if isinstance(v, str) and TS.match(v):
                frac = re.search(r"\.([0-9]+)", v)
                self.ok(v[-6] in "+-" and len(frac.group(1)) in (3, 6, 9) if frac else v[-6] in "+-",
                        where, f"{path}: encoders write ±hh:mm and 0/3/6/9 fraction digits (DES-ENV-2): {v}")
            elif isinstance(v, dict):
                for k, x in v.items():
                    walk(x, f"{path}/{k}")
            elif isinstance(v, list):
                for i, x in enumerate(v):
                    walk(x, f"{path}/{i}")
        walk(env, "")
        body = env.get("body", {})
        for r in [body.get("range"), body.get("seq")]:
            if isinstance(r, dict):
                self.ok(1 <= r.get("first", 0) <= r.get("last", -1), where, f"range {r} (DES-ID-4)")
        reason = (env.get("result") or {}).get("reason", "")
        self.ok(len(reason.encode()) <= 1024, where, "reason over 1024 bytes (DES-ENV-6)")

    def check_envelopes(self):
        for t in TYPES:
            where = f"envelopes/{t}.json"
            try:
                raw = self.read(where)
                env = self.strict_json(raw)
            except Exception as e:  # noqa: BLE001
                self.fail(where, f"unreadable: {e}")
                continue
            self.ok(env.get("type") == t, where, "type differs from the file name")
            self.ok(json.dumps(env, ensure_ascii=False, separators=(",", ":")).encode() == raw, where,
                    "not compact UTF-8 JSON as encoders write it")
            self.check_envelope_rules(env, where)
            if t == "data":
                self.open_data_profile(env, where, self.when(env["timestamp"]))

    # ---------------------------------------------------------------- sealing (§5, §7)
    def open_jose(self, token, profile, recipient, signer, at, where):
        """DES-SEAL-1..6 / DES-PROF-4 with jwcrypto: the payload, or None (failure reported)."""
        typ, cty = {"message": ("sgw-msg", "sgw-msg+jws"), "profile": ("sgw-profile", "sgw-profile+jws")}[profile]
        rcert, scert = self.cert(recipient), self.cert(signer)
        parts = token.split(".")
        if not self.ok(len(parts) == 5, where, "not a JWE compact serialization"):
            return None
        try:
            outer = self.strict_json(jws.base64url_decode(parts[0]))
        except ValueError as ex:
            self.fail(where, f"JWE header is not JSON: {ex}")
            return None
        want = {"alg": "RSA-OAEP-256", "enc": "A128CBC-HS256", "cty": cty, "kid": self.kid(rcert)}
        if not self.ok(outer == want, where, f"JWE header {outer} (DES-SEAL-3)"):
            return None
        e = jwe.JWE()
        e.allowed_algs = ["RSA-OAEP-256", "A128CBC-HS256"]
        try:
            e.deserialize(token, key=self.jwk_private(recipient))
        except Exception as ex:  # noqa: BLE001
            self.fail(where, f"JWE does not decrypt: {ex!r}")
            return None
        try:
            inner = e.payload.decode("ascii")
            ih = self.strict_json(jws.base64url_decode(inner.split(".")[0]))
        except ValueError as ex:
            self.fail(where, f"JWS header is not JSON: {ex}")
            return None
        der = scert.public_bytes(serialization.Encoding.DER)
        want = {"alg": "RS256", "typ": typ, "kid": self.kid(scert),
                "x5t#S256": base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()}
        if not self.ok(ih == want, where, f"JWS header {ih} (DES-SEAL-2)"):
            return None
        s = jws.JWS()
        s.allowed_algs = ["RS256"]
        try:
            s.deserialize(inner, key=jwk.JWK.from_pem(scert.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)))
        except Exception as ex:  # noqa: BLE001
            self.fail(where, f"JWS signature: {ex!r}")
            return None
        problem = self.cert_problem(scert, signer, at)
        if problem:
            return ("refused", problem)
        return s.payload

    def open_xml(self, doc, recipient, signer, at, where):
        """DES-PROF-6/7 with python-xmlsec: the plain profile XML (Body back, no Signature) or
        None (failure reported)."""
        import xmlsec
        from lxml import etree
        parser = etree.XMLParser(resolve_entities=False, no_network=True)
        try:
            root = etree.fromstring(doc.encode(), parser)
        except Exception as ex:  # noqa: BLE001
            self.fail(where, f"XML does not parse: {ex}")
            return None
        kids = [c.tag for c in root if isinstance(c.tag, str)]
        if not self.ok(kids == [f"{{{SGW}}}Header", f"{{{XENC}}}EncryptedData", f"{{{DS}}}Signature"], where,
                       f"layout {kids} (DES-PROF-7 (4))"):
            return None
        sig = root.find(f"{{{DS}}}Signature")
        ref = sig.find(f"{{{DS}}}SignedInfo/{{{DS}}}Reference")
        self.ok(ref is not None and ref.get("URI") == "", where, "Reference URI is not \"\" (DES-PROF-7 (2))")
        emb = sig.findall(f".//{{{DS}}}X509Certificate")
        scert = self.cert(signer)
        self.ok(len(emb) == 1 and base64.b64decode("".join(emb[0].text.split())) ==
                scert.public_bytes(serialization.Encoding.DER), where,
                "the embedded certificate is not the signer's (DES-PROF-7 (3))")
        ctx = xmlsec.SignatureContext()
        ctx.key = xmlsec.Key.from_memory(self.read(f"pki/{signer}.pem"), xmlsec.constants.KeyDataFormatCertPem)
        try:
            ctx.verify(sig)
        except Exception as ex:  # noqa: BLE001
            self.fail(where, f"XML signature does not verify: {ex}")
            return None
        problem = self.cert_problem(scert, signer, at)
        if problem:
            return ("refused", problem)
        manager = xmlsec.KeysManager()
        manager.add_key(xmlsec.Key.from_memory(self.read(f"pki/{recipient}.key"), xmlsec.constants.KeyDataFormatPem))
        ectx = xmlsec.EncryptionContext(manager)
        try:
            ectx.decrypt(root.find(f"{{{XENC}}}EncryptedData"))
        except Exception as ex:  # noqa: BLE001
            self.fail(where, f"XML does not decrypt: {ex}")
            return None
        root.remove(root.find(f"{{{DS}}}Signature"))
        return etree.tostring(root, method="c14n", exclusive=True)

    @staticmethod
    def c14n(xml_bytes):
        from lxml import etree
        return etree.tostring(etree.fromstring(xml_bytes), method="c14n", exclusive=True)

    @staticmethod
    def xml_profile(xml_bytes):
        """(header dict, records) of a plain XML profile (DES-PROF-5)."""
        from lxml import etree
        root = etree.fromstring(xml_bytes)
        h = root.find(f"{{{SGW}}}Header")
        t = lambda n: h.find(f"{{{SGW}}}{n}").text  # noqa: E731
        rng = h.find(f"{{{SGW}}}Range")
        header = {"gatewayId": t("GatewayId"), "dataset": t("Dataset"),
                  "range": {"first": int(rng.get("first")), "last": int(rng.get("last"))}}
        records = [[f.text or "" for f in r] for r in root.find(f"{{{SGW}}}Body")]
        return header, records

    def open_data_profile(self, env, where, at):
        """Opens `data.profile` as the platform does (DES-MSG-DATA-1, DES-PROF-4/7); checks it
        against the envelope; returns the records or None."""
        body = env["body"]
        key = (body["profile"], env["gatewayId"])
        if key in self.profiles:
            return self.profiles[key]
        records = None
        if body["format"] == "json":
            got = self.open_jose(body["profile"], "profile", "platform", env["gatewayId"], at, where + " profile")
            if isinstance(got, bytes):
                p = self.strict_json(got)
                for e in list(self.prof_schema.iter_errors(p))[:3]:
                    self.fail(where, f"profile schema: {e.message[:200]}")
                header, records = p["header"], p["records"]
                self.check_profile_counts(p, where)
            elif isinstance(got, tuple):
                self.fail(where, f"profile signer refused: {got[1]}")
        else:
            got = self.open_xml(body["profile"], "platform", env["gatewayId"], at, where + " profile")
            if isinstance(got, bytes):
                header, records = self.xml_profile(got)
            elif isinstance(got, tuple):
                self.fail(where, f"profile signer refused: {got[1]}")
        if records is not None:
            for k in ("gatewayId", "dataset", "range"):
                src = env if k == "gatewayId" else body
                self.ok(header[k] == src[k], where, f"profile header {k} {header[k]} differs from the message's (DES-MSG-DATA-1)")
            r = body["range"]
            self.ok(len(records) == r["last"] - r["first"] + 1, where, "record count differs from the range (DES-PROF-3)")
        self.profiles[key] = records
        return records

    def check_profile_counts(self, p, where):
        """DES-PROF-3 counts no schema states: range length records of columns fields each."""
        r, n = p["header"]["range"], len(p["header"]["columns"])
        self.ok(len(p["records"]) == r["last"] - r["first"] + 1, where, "record count differs from the range (DES-PROF-3)")
        for i, rec in enumerate(p["records"]):
            self.ok(len(rec) == n, where, f"record {i} has {len(rec)} fields for {n} columns (DES-PROF-3)")

    def check_sealed(self):
        idx = self.strict_json(self.read("sealed/index.json"))
        at = self.when(idx["checkTime"])
        for t, (d, _) in TYPES.items():
            self.ok(any(v["file"] == f"{d}-{t}.jwe" for v in idx["vectors"]), "sealed/index.json",
                    f"no sealed {t}")
        for v in idx["vectors"]:
            where = "sealed/" + v["file"]
            data = self.read(where).decode()
            if v["kind"] == "xml-profile":
                got = self.open_xml(data, v["recipient"], v["signer"], at, where)
            else:
                prof = "message" if v["kind"] == "message" else "profile"
                got = self.open_jose(data.strip(), prof, v["recipient"], v["signer"], at, where)
            if v["expect"] == "refuse":
                self.ok(isinstance(got, tuple) and got[1] == "CertRevoked", where,
                        f"must be refused for the revoked signer, got {got!r:.80}")
                continue
            if isinstance(got, tuple):
                self.fail(where, f"refused: {got[1]}")
                continue
            if got is None:
                continue
            want = self.read(v["plaintext"])
            if v["kind"] == "xml-profile":
                self.ok(got == self.c14n(want), where, "does not open to the plain profile")
            else:
                self.ok(got == want, where, f"does not open to {v['plaintext']}")
        p = self.strict_json(self.read("sealed/profile.json"))
        for e in list(self.prof_schema.iter_errors(p))[:3]:
            self.fail("sealed/profile.json", f"profile schema: {e.message[:200]}")
        self.check_profile_counts(p, "sealed/profile.json")
        h, recs = self.xml_profile(self.read("sealed/profile.xml"))
        self.ok(recs == p["records"] and h["range"] == p["header"]["range"], "sealed/profile.xml",
                "the XML profile does not carry the JSON profile's data")

    # ---------------------------------------------------------------- masking (§9)
    def golden_key(self):
        return {"k2026a": self.read("masking/k2026a.key").decode().strip()}

    def check_masking(self):
        cols = self.strict_json(self.read("masking/columns.json"))
        key = bytes.fromhex(self.golden_key()["k2026a"])

        def rows(rel):
            return list(csv.reader(io.StringIO(self.read(rel).decode("utf-8"), newline=""), strict=True))
        plain, masked = rows("masking/billing.csv"), rows("masking/billing.masked.csv")
        where = "masking/billing.masked.csv"
        self.ok(plain[0] == masked[0] == [c["name"] for c in cols], where, "header rows differ from the columns")
        self.ok(len(plain) == len(masked), where, "row counts differ")
        for pr, mr in zip(plain[1:], masked[1:]):
            for c, pv, mv in zip(cols, pr, mr):
                if not c["masked"]:
                    self.ok(pv == mv, where, f"unmasked column {c['name']} changed")
                    continue
                self.ok(re.fullmatch(r"m1\.[A-Za-z0-9]{1,16}\.[A-Za-z0-9_-]+", mv) is not None, where,
                        f"{mv}: not m1.<keyId>.<b64> (DES-MASK-1)")
                self.ok(maskpy.mask("k2026a", key, c["name"], pv) == mv, where,
                        f"{mv}: not the deterministic masking of its value (DES-MASK-2)")
                try:
                    self.ok(maskpy.unmask(self.golden_key(), c["name"], mv) == pv, where, f"{mv} unmasks to another value")
                except ValueError as e:
                    self.fail(where, f"{mv} does not unmask: {e} (DES-MASK-3)")

    # ---------------------------------------------------------------- archive (§8, §13)
    def zip_entries(self, data, where, names, methods):
        """DES-FILE-1/2/4/5 layout: exactly `names` in this order with these methods."""
        z = zipfile.ZipFile(io.BytesIO(data))
        infos = z.infolist()
        self.ok([i.filename for i in infos] == names, where, f"entries {[i.filename for i in infos]}, expected {names}")
        self.ok([i.compress_type for i in infos] == methods, where, f"compression methods {[i.compress_type for i in infos]}")
        self.ok(all(i.flag_bits & 1 == 0 for i in infos), where, "ZIP encryption is not allowed")
        return z

    def check_archive(self):
        gw_cert, gw_key = self.cert("GW0001"), self.key("GW0001")
        cols = self.strict_json(self.read("masking/columns.json"))
        lines = self.read("archive/index.jsonl").decode().split("\n")
        self.ok(lines[-1] == "", "archive/index.jsonl", "lines must end with LF")
        for line in lines[:-1]:
            idx = self.strict_json(line)
            where = "archive/" + idx.get("file", "?")
            self.ok(list(idx) == ["file", "dataset", "epoch", "range", "ingestedFrom", "ingestedTo", "records", "sha256"],
                    "archive/index.jsonl", f"members {list(idx)} (DES-EVAC-4)")
            self.ok(json.dumps(idx, ensure_ascii=False, separators=(",", ":")) == line, "archive/index.jsonl", "not compact JSON")
            try:
                sgwa = self.read(where)
            except OSError:
                self.fail(where, "missing")
                continue
            self.ok(hashlib.sha256(sgwa).hexdigest() == idx["sha256"], where, "SHA-256 differs from the index line (DES-EVAC-4/5)")
            m = re.fullmatch(r"([A-Za-z0-9]{1,32})_([a-z][a-z0-9_-]{0,31})_([0-9a-f]{32})_([0-9]{20})-([0-9]{20})\.sgwa", idx["file"])
            if not self.ok(m is not None, where, "file name is not {gw}_{dataset}_{epoch}_{first:020}-{last:020}.sgwa (DES-EVAC-2)"):
                continue
            # DES-FILE-2: the encrypted ZIP to the gateway's own certificate.
            try:
                z = self.zip_entries(sgwa, where, ["payload.enc", "META-INF/session-key.bin", "META-INF/manifest.json"], [0, 0, 0])
                mbytes = z.read("META-INF/manifest.json")
                man = self.strict_json(mbytes)
                self.ok(list(man) == ["format", "contentEncryption", "keyTransport", "recipientKid", "name", "size",
                                      "encryptedSize", "encryptedSha256"], where, f"manifest members {list(man)} (DES-FILE-3)")
                self.ok(man["format"] == "sgw-file-enc-v1" and man["keyTransport"] == "RSA-OAEP-256"
                        and man["recipientKid"] == self.kid(gw_cert) and man["name"] == "records.sig.zip", where,
                        f"encrypted manifest {man} (DES-FILE-2, DES-EVAC-3)")
                enc = z.read("payload.enc")
                self.ok(len(enc) == man["encryptedSize"] and hashlib.sha256(enc).hexdigest() == man["encryptedSha256"]
                        and len(enc) >= 32 and len(enc) % 16 == 0, where, "payload.enc size or SHA-256")
                oaep = apad.OAEP(mgf=apad.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
                skey = gw_key.decrypt(z.read("META-INF/session-key.bin"), oaep)
                bits = {"AES-128-CBC": 16, "AES-192-CBC": 24, "AES-256-CBC": 32}[man["contentEncryption"]]
                self.ok(len(skey) == bits, where, "session key length")
                dec = Cipher(algorithms.AES(skey), modes.CBC(enc[:16])).decryptor()
                unpad = padding.PKCS7(128).unpadder()
                signed = unpad.update(dec.update(enc[16:]) + dec.finalize()) + unpad.finalize()
                self.ok(len(signed) == man["size"], where, "plaintext size")
                # DES-FILE-1: the signed ZIP by the gateway's own key.
                z2 = self.zip_entries(signed, where + " (records.sig.zip)",
                                      ["payload/records.jsonl", "META-INF/manifest.json", "META-INF/signature.sig"], [8, 0, 0])
                m2 = z2.read("META-INF/manifest.json")
                gw_cert.public_key().verify(z2.read("META-INF/signature.sig"), m2, apad.PKCS1v15(), hashes.SHA256())
                sman = self.strict_json(m2)
                records = z2.read("payload/records.jsonl")
                self.ok(sman == {"format": "sgw-file-sig-v1", "signatureAlgorithm": "RS256", "signerKid": self.kid(gw_cert),
                                 "payload": {"name": "payload/records.jsonl", "size": len(records),
                                             "sha256": hashlib.sha256(records).hexdigest()}}
                        and list(sman) == ["format", "signatureAlgorithm", "signerKid", "payload"], where,
                        f"signed manifest {sman} (DES-FILE-1/3)")
            except Exception as ex:  # noqa: BLE001
                self.fail(where, f"does not open: {ex!r}")
                continue
            self.check_records(records, idx, m, cols, where)
            self.ok(records == self.read("archive/expected-records.jsonl"), where, "differs from expected-records.jsonl")

    def check_records(self, records, idx, m, cols, where):
        """DES-EVAC-3 records.jsonl against the index line and the file name."""
        text = records.decode("utf-8")
        self.ok(text.endswith("\n"), where, "records.jsonl lines must end with LF")
        lines = [self.strict_json(x) for x in text.split("\n")[:-1]]
        h = lines[0]
        self.ok(list(h) == ["format", "gatewayId", "epoch", "dataset", "columns", "range", "records", "createdAt"],
                where, f"header members {list(h)}")
        self.ok(h["format"] == "sgw-archive-v1" and h["columns"] == cols, where, "header format or columns")
        first, last = h["range"]["first"], h["range"]["last"]
        self.ok((h["gatewayId"], h["dataset"], h["epoch"], f"{first:020}", f"{last:020}") == m.groups(), where,
                "header differs from the file name")
        for k in ("dataset", "epoch", "range", "records"):
            self.ok(h[k] == idx[k], where, f"header {k} differs from the index line")
        self.ok(h["records"] == last - first + 1 == len(lines) - 1, where, "record count")
        for i, r in enumerate(lines[1:]):
            self.ok(list(r) == ["seq", "ingestedAt", "fields"] and r["seq"] == first + i
                    and len(r["fields"]) == len(cols), where, f"record line {i + 2}")
            for c, v in zip(cols, r["fields"]):
                if c["masked"]:
                    try:
                        maskpy.unmask(self.golden_key(), c["name"], v)
                    except ValueError as e:
                        self.fail(where, f"masked value {v} does not unmask: {e}")
        times = [self.when(r["ingestedAt"]) for r in lines[1:]]
        self.ok(self.when(idx["ingestedFrom"]) == min(times) and self.when(idx["ingestedTo"]) == max(times), where,
                "ingestedFrom/To are not the earliest/latest ingest time")

    # ---------------------------------------------------------------- transcripts (§6)
    def check_transcripts(self):
        cols = self.strict_json(self.read("masking/columns.json"))
        for name in sorted(os.listdir(self.path("transcripts"))):
            self.check_transcript("transcripts/" + name, cols)

    def check_transcript(self, where, cols):
        doc = self.strict_json(self.read(where))
        gw = doc["gateway"]["gatewayId"]
        connect_timeout = doc["gateway"]["connectTimeoutSec"]
        last = self.when(doc["start"])
        store, requests, sent = {}, {}, {}
        # Timing rules read from the text: DES-MQTT-8 (connect retries), DES-MSG-MON-2 with
        # DES-MSG-CONN-2 (monitor interval, 0 means 60), DES-MSG-DATA-3 (ack timeout, 0 means 30).
        link = {"failed": 0, "connect": None, "result": None, "session": None}
        data_sends = {}
        for i, s in enumerate(doc["steps"]):
            w = f"{where} step {i + 1}"
            at = self.when(s["at"])
            self.ok(at >= last, w, "time goes backwards")
            last = at
            if "event" in s:
                if s["event"] in ("transport.up", "transport.down", "restart", "shutdown"):
                    link = {"failed": 0, "connect": None, "result": None, "session": None}
                    data_sends = {}
                if s["event"] == "ingest":
                    first, lst = s["seqs"]["first"], s["seqs"]["last"]
                    self.ok(lst - first + 1 == len(s["records"]), w, "seqs do not match the record count (DES-ID-4)")
                    for j, rec in enumerate(s["records"]):
                        store[first + j] = rec
                        for c, v in zip(cols, rec):
                            if c["masked"]:
                                try:
                                    maskpy.unmask(self.golden_key(), c["name"], v)
                                except ValueError:
                                    self.fail(w, f"ingested value {v} is not masked with the golden key (DES-MASK-4)")
                continue
            tm = TOPIC.match(s["topic"])
            if not self.ok(tm is not None and tm.group(1) == gw and tm.group(2) == s["direction"], w,
                           f"topic {s['topic']} (DES-MQTT-3/4)"):
                continue
            if "raw" in s:
                raw = s["raw"]
                if "padTo" in s:
                    raw = raw.replace('"pad":""', '"pad":"' + "x" * (s["padTo"] - len(raw)) + '"', 1)
                    self.ok(len(raw.encode()) == s["padTo"] > MAX_ENVELOPE, w, "padTo expansion")
                try:
                    p = json.loads(raw)
                    if isinstance(p, dict) and "messageId" in p:
                        requests[p["messageId"]] = p.get("type")
                except ValueError:
                    pass
                continue
            if "envelope" not in s:
                continue
            env = s["envelope"]
            self.check_envelope_rules(env, w)
            t = env["type"]
            self.ok(tm.group(3) == t and TYPES.get(t, ("?",))[0] == s["direction"], w,
                    f"{t} on {s['topic']} (DES-MSG-1, DES-MQTT-4)")
            self.ok(env["gatewayId"] == gw, w, "gatewayId is not the tenant (DES-ENV-4)")
            answers = TYPES.get(t, (None, None))[1]
            if answers:
                req = env.get("inReplyTo")
                ok_types = answers if isinstance(answers, tuple) else (answers,)
                self.ok(requests.get(req) in ok_types, w,
                        f"inReplyTo {req} names no earlier {'/'.join(ok_types)} (DES-ENV-3)")
            requests[env["messageId"]] = t
            mid = (env["messageId"], t)
            if (answers or t == "data") and not s.get("injected"):
                if mid in sent:
                    self.ok(sent[mid] == env, w, f"{t} {env['messageId']} sent again with other content (DES-ENV-8, DES-MSG-DATA-3)")
                sent[mid] = env
            if not s.get("injected"):
                self.check_timing(link, data_sends, s, env, at, connect_timeout, w)
            elif t == "connect.result" and link["connect"] and env.get("inReplyTo") == link["connect"][0]:
                link["result"] = (env["result"]["code"], at)
            if t == "data":
                recs = self.open_data_profile(env, w, at)
                r = env["body"]["range"]
                if recs is not None and not s.get("injected"):
                    want = [store.get(q) for q in range(r["first"], r["last"] + 1)]
                    self.ok(recs == want, w, "the profile does not carry the ingested records")

    def check_timing(self, link, data_sends, s, env, at, connect_timeout, w):
        t = env["type"]
        sec = dt.timedelta(seconds=1)
        if t == "connect":
            if link["connect"] is not None:
                if link["result"] and link["result"][0] not in ("BUSY", "INTERNAL", "STALE"):
                    # A lasting refusal: every 300 s, no jitter (DES-MSG-CONN-3, DES-MQTT-8).
                    self.ok(at - link["result"][1] == 300 * sec, w, "a lasting refusal is retried after exactly 300 s")
                else:
                    trigger = link["result"][1] if link["result"] else link["connect"][1] + connect_timeout * sec
                    link["failed"] += 1
                    base = min(300, 2 ** (link["failed"] - 1))
                    d = (at - trigger) / sec
                    self.ok(0.5 * base <= d < base, w, f"back-off d_{link['failed']} = {d} s, not in [{0.5 * base}, {base}) (DES-MQTT-8)")
            link["connect"], link["result"] = (env["messageId"], at), None
        elif t == "connect.result" and link["connect"] and env.get("inReplyTo") == link["connect"][0]:
            code = env["result"]["code"]
            link["result"] = (code, at)
            if code == "OK" and s.get("delivered", True):
                b = env["body"]
                link["session"] = {"monitor": b["monitorIntervalSec"] or 60, "ack": b["ackTimeoutSec"] or 30,
                                   "last_status": None}
        elif t == "monitor.status" and link["session"]:
            prev = link["session"]["last_status"]
            if prev is not None:
                self.ok(at - prev == link["session"]["monitor"] * sec, w,
                        f"monitor.status {at - prev} after the previous, monitorIntervalSec {link['session']['monitor']} (DES-MSG-MON-2, DES-MSG-CONN-2)")
            link["session"]["last_status"] = at
        elif t == "data" and link["session"]:
            times = data_sends.setdefault(env["messageId"], [])
            if times:
                k = len(times)
                want = min(2 ** (k - 1), 8) * link["session"]["ack"] * sec
                self.ok(at - times[-1] == want, w,
                        f"retransmission {k} after {at - times[-1]}, expected {want} (DES-MSG-DATA-3, DES-MSG-CONN-2)")
            times.append(at)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--golden", default=os.path.join(ROOT, "vectors", "golden"))
    p.add_argument("--schemas", default=os.path.join(ROOT, "docs", "schemas"))
    p.add_argument("--only", default="pki,envelopes,sealed,masking,archive,transcripts")
    a = p.parse_args()
    c = Checker(a.golden, a.schemas)
    at = c.when(c.strict_json(c.read("sealed/index.json"))["checkTime"])
    for part in a.only.split(","):
        try:
            {"pki": lambda: c.check_pki(at), "envelopes": c.check_envelopes, "sealed": c.check_sealed,
             "masking": c.check_masking, "archive": c.check_archive, "transcripts": c.check_transcripts}[part]()
        except Exception as ex:  # noqa: BLE001 - a crash is a failure, never a pass
            c.fail(part, f"checker stopped: {ex!r}")
    for f in c.failures:
        print(f)
    print(f"golden: {c.checks} checks, {len(c.failures)} failures ({a.only})")
    sys.exit(1 if c.failures else 0)


if __name__ == "__main__":
    main()
