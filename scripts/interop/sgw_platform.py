#!/usr/bin/env python3
"""An independent SGW platform for the interoperability test (gateway/tests/interop_mosquitto.rs).

Written from docs/protocol.md (revision 1.1) and docs/schemas/ alone, with Python packages only
(paho-mqtt 2.2, jwcrypto, cryptography, jsonschema; scripts/crosscheck/mask.py as the utility's
unmasking oracle); it never runs or imports the Rust code. It talks to the real gateway through a
real broker (mosquitto) and serves the certificate endpoint itself, so a disagreement between the
gateway and the text shows up as a failed check naming the clause.

Clauses implemented, platform side:
  §1  DES-MQTT-1 (mutual TLS client of the broker), DES-MQTT-3/4 (topics: subscribes
      /tenants/+/sgw/v1/up/#, publishes down/{type}; every up message checked for shape, tenant,
      direction), DES-MQTT-6 (QoS 1, retain false, both ways), DES-MQTT-7 (1 MiB payload check).
  §3  DES-ENV-1 (strict decode: schema, repeated members, no fraction/exponent numbers, member set
      and order when encoding), DES-ENV-2 (timestamps), DES-ENV-3 (correlation), DES-ENV-4
      (gatewayId = tenant = signer), DES-ENV-6 (text bytes), DES-ENV-7 (±300 s), DES-ENV-8 (the
      platform's reply memory: a duplicate request gets the stored reply), DES-MSG-1.
  §5  DES-SEAL-1..6: sign-then-encrypt of every command (JWS RS256 by the platform's key inside a
      JWE RSA-OAEP-256/A128CBC-HS256 to the gateway's certificate, validated first), opening of
      every up message in the order of DES-SEAL-5 with the header allowlists of DES-SEAL-2..4, and
      checks that the gateway writes exactly the headers the sender must write.
  §6  DES-MSG-CONN-1..3 (connect, connect.result OK with the test's timers, the gateway's order
      after it: monitor.status first), DES-MSG-DISC-1, DES-MSG-PS-1..5 (start, stop, results,
      `ack`), DES-MSG-DATA-1..4 (data, data.ack, retransmission of an unacknowledged message
      identical under the same messageId, no retransmission after the ack, no data while
      stopped), DES-MSG-MON-1/2, DES-MSG-AN-1 and the negative case of DES-SEAL-5 / IF-PSTART-2 /
      §6.8: a periodic.start whose JWS signature is tampered is refused, never answered, reported
      as `anomaly` kind `security`, and does not start anything.
  §7  DES-PROF-2..4: the JSON data profile opened (JWE to the platform, JWS by the gateway),
      header and records checked against the uploaded CSV (DES-CSV-1..4 read independently) and
      gateway.toml's dataset (DES-PROV-2); masked columns (DES-MASK-1/4) are not in clear and
      unmask (oracle: the utility's key) to the uploaded values.
  §10 DES-CERT-1 (the HTTPS endpoint: root.pem, platform.pem, crl.pem/der, apps; mutual TLS with
      the TLS CRL, DES-CERT-5), DES-CERT-4 (validation of the gateway's data-protection
      certificate with the gateway role, CN = gateway ID).
  §11 DES-PROV-1/2 (reads the bundle's gateway.toml for the dataset definition).

Usage:  python3 scripts/interop/sgw_platform.py CONFIG.json
CONFIG names the files and timers (written by the Rust test). Protocol with the parent:
stdout carries one JSON object per line: {"event":"ready","httpsPort":N} once the broker link is
subscribed and the HTTPS endpoint listens, {"event":"started"} after the applied start,
{"event":"stopped"} after the applied stop, {"event":"flows-done"} when the gateway may be shut
down, and last {"event":"result","ok":bool,"failures":[...],...}. stdin carries lines from the
parent: "after-stop-upload-done". Diagnostics go to stderr.
"""
import os
import sys

import base64  # noqa: E402
import csv  # noqa: E402
import datetime as dt  # noqa: E402
import hashlib  # noqa: E402
import http.server  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import queue  # noqa: E402
import re  # noqa: E402
import ssl  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import tomllib  # noqa: E402
import uuid  # noqa: E402

import jsonschema  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from jwcrypto import jwe, jwk, jws  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "scripts", "crosscheck"))
import mask as maskpy  # noqa: E402  (the utility's unmasking, DES-MASK-2/3: a test oracle only)

MAX_PAYLOAD = 1024 * 1024  # DES-MQTT-7
MAX_ENVELOPE = 262144  # DES-ENV-5
MAX_TEXT = 1024  # DES-ENV-6
STALE_SEC = 300  # DES-ENV-7
ROLE_ARC = "2.25.222881631345099252851491374019625207159"  # DES-CERT-4
ROLE_OID = {"platform": ROLE_ARC + ".1", "gateway": ROLE_ARC + ".2", "application": ROLE_ARC + ".3"}
TS = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.([0-9]{1,9}))?(Z|([+-])([0-9]{2}):([0-9]{2}))$")
TOPIC = re.compile(r"^/tenants/([A-Za-z0-9]{1,32})/sgw/v1/(up|down)/([^/]+)$")  # DES-MQTT-3
MASKED = re.compile(r"^m1\.([A-Za-z0-9]{1,16})\.([A-Za-z0-9_-]+)$")  # DES-MASK-1
B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
# DES-MSG-1: type -> (direction, kind)
TYPES = {
    "connect": ("up", "request"), "connect.result": ("down", "reply"),
    "disconnect": ("up", "request"), "disconnect.result": ("down", "reply"),
    "periodic.start": ("down", "request"), "periodic.start.result": ("up", "reply"),
    "periodic.stop": ("down", "request"), "periodic.stop.result": ("up", "reply"),
    "data": ("up", "request"), "data.ack": ("down", "reply"),
    "resend.request": ("down", "request"), "resend.result": ("up", "reply"),
    "monitor.status": ("up", "request"), "anomaly": ("up", "request"),
    "ack": ("down", "reply"),
}
MSG = ("sgw-msg", "sgw-msg+jws")  # DES-SEAL-2/3: typ, cty of messages
PROFILE = ("sgw-profile", "sgw-profile+jws")  # DES-PROF-4


def log(*a):
    print("sgw_platform.py:", *a, file=sys.stderr, flush=True)


def emit(obj):
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def b64u_strict(s):
    """base64url without padding (RFC 7515 §2), strictly."""
    if not B64URL.match(s) or len(s) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def strict_json(raw):
    """DES-ENV-1: UTF-8 JSON, no repeated member name, no number with fraction or exponent
    (no field of protocol v1 is a non-integer number)."""
    def pairs(items):
        keys = [k for k, _ in items]
        if len(keys) != len(set(keys)):
            raise ValueError(f"repeated member name in {keys}")
        return dict(items)

    def no_float(s):
        raise ValueError(f"number with fraction or exponent: {s}")
    text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw
    return json.loads(text, object_pairs_hook=pairs, parse_float=no_float,
                      parse_constant=no_float)


def parse_ts(s):
    """DES-ENV-2 timestamp -> aware datetime (calendar-valid, leap second allowed)."""
    m = TS.match(s)
    if not m:
        raise ValueError(f"timestamp {s!r}")
    y, mo, d, h, mi, sec = (int(m.group(i)) for i in range(1, 7))
    frac = (m.group(8) or "")[:6].ljust(6, "0")
    if m.group(9) == "Z":
        off = dt.timedelta(0)
    else:
        oh, om = int(m.group(11)), int(m.group(12))
        if oh > 23 or om > 59:
            raise ValueError(f"offset {s!r}")
        off = dt.timedelta(hours=oh, minutes=om) * (1 if m.group(10) == "+" else -1)
    return dt.datetime(y, mo, d, h, mi, min(sec, 59), int(frac), tzinfo=dt.timezone(off))


def now_ts():
    """DES-ENV-2 as encoders write it: +00:00, 3 fraction digits."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def kid_of(cert):
    """DES-SEAL-2: lower-case hex SHA-256 of the certificate DER, and its base64url form."""
    d = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()
    return d.hex(), b64u(d)


def pub_jwk(cert):
    return jwk.JWK.from_pem(cert.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


class Refused(Exception):
    """An up message that failed to open (DES-SEAL-5) or to decode (§6.10)."""


# ---------------------------------------------------------------------------------- the checks
class Checks:
    def __init__(self):
        self.failures, self.count = [], 0

    def ok(self, cond, clause, what):
        self.count += 1
        if not cond:
            self.failures.append(f"{clause}: {what}")
            log("FAIL", clause, what)
        return bool(cond)


# ---------------------------------------------------------------------------------- PKI, sealing
class Pki:
    """The platform's keys and its view of the gateway (DES-CERT-*, DES-SEAL-*)."""

    def __init__(self, cfg, checks):
        p = cfg["pki"]
        self.c = checks
        self.gw = cfg["gatewayId"]
        rd = lambda k: open(p[k], "rb").read()  # noqa: E731
        self.root = x509.load_pem_x509_certificate(rd("root"))
        self.crl = x509.load_pem_x509_crl(rd("crl"))
        self.own = x509.load_pem_x509_certificate(rd("platformCert"))
        self.own_key = jwk.JWK.from_pem(rd("platformKey"))
        self.peer = x509.load_pem_x509_certificate(rd("gatewayCert"))
        self.own_kid, self.own_x5t = kid_of(self.own)
        self.peer_kid, self.peer_x5t = kid_of(self.peer)

    def cert_problem(self, cert, role, name, at):
        """DES-CERT-4 steps 1-7 in order; None when valid, else the first failing step's name."""
        if cert.issuer != self.root.subject:
            return "CertWrongIssuer"
        try:
            cert.verify_directly_issued_by(self.root)
        except Exception:  # noqa: BLE001
            return "CertUntrusted"
        try:
            eku = [o.dotted_string for o in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value]
        except x509.ExtensionNotFound:
            eku = []
        roles = sorted({o for o in eku if o in ROLE_OID.values()})
        cn = [a.value for a in cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)]
        if roles != [ROLE_OID[role]] or cn != [name]:
            return "CertWrongRole"
        pk = cert.public_key()
        if not isinstance(pk, rsa.RSAPublicKey) or pk.key_size < 2048:
            return "WeakKey"
        if at < cert.not_valid_before_utc:
            return "CertNotYetValid"
        if at > cert.not_valid_after_utc:
            return "CertExpired"
        crl = self.crl
        if crl.issuer != self.root.subject or not crl.is_signature_valid(self.root.public_key()):
            return "CrlBadSignature"
        if at < crl.last_update_utc:
            return "CrlNotYetValid"
        if crl.next_update_utc is None or at >= crl.next_update_utc:
            return "CrlStale"
        if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
            return "CertRevoked"
        return None

    def seal(self, payload, tamper_signature=False):
        """DES-SEAL-1..3: JWS (platform key) inside JWE (to the gateway's certificate, validated
        first). `tamper_signature` flips one bit of the RS256 signature (the negative case)."""
        problem = self.cert_problem(self.peer, "gateway", self.gw, dt.datetime.now(dt.timezone.utc))
        if problem:
            raise RuntimeError(f"DES-SEAL-3: the gateway's certificate is refused: {problem}")
        s = jws.JWS(payload)
        s.add_signature(self.own_key, None, protected=json.dumps(
            {"alg": "RS256", "typ": MSG[0], "kid": self.own_kid, "x5t#S256": self.own_x5t}))
        inner = s.serialize(compact=True)
        if tamper_signature:
            h, p, sig = inner.split(".")
            raw = bytearray(b64u_strict(sig))
            raw[len(raw) // 2] ^= 0x01
            inner = f"{h}.{p}.{b64u(bytes(raw))}"
        e = jwe.JWE(inner.encode("ascii"), protected=json.dumps(
            {"alg": "RSA-OAEP-256", "enc": "A128CBC-HS256", "cty": MSG[1], "kid": self.peer_kid}))
        e.allowed_algs = ["RSA-OAEP-256", "A128CBC-HS256"]
        e.add_recipient(pub_jwk(self.peer))
        return e.serialize(compact=True).encode("ascii")

    def open(self, token, kind, where):
        """DES-SEAL-5 (messages) / DES-PROF-4 (JSON profiles), in the clause's order. Raises
        Refused; also checks (without refusing) that the sender wrote exactly the headers
        DES-SEAL-2/3 say a sender writes."""
        typ, cty = kind
        if isinstance(token, (bytes, bytearray)):
            if len(token) > MAX_PAYLOAD:
                raise Refused("DES-MQTT-7: payload over 1 MiB")
            try:
                token = token.decode("ascii")
            except UnicodeDecodeError:
                raise Refused("DES-SEAL-5 (2): not ASCII") from None
        parts = token.split(".")
        if len(parts) != 5:
            raise Refused("DES-SEAL-5 (2): not five parts")
        try:
            hdr = strict_json(b64u_strict(parts[0]))
            iv, ct, tag = (b64u_strict(parts[i]) for i in (2, 3, 4))
            b64u_strict(parts[1])
        except ValueError as e:
            raise Refused(f"DES-SEAL-5 (2): {e}") from None
        if not isinstance(hdr, dict):
            raise Refused("DES-SEAL-4: JWE header not an object")
        extra = set(hdr) - {"alg", "enc", "kid", "cty", "typ"}
        if extra:
            raise Refused(f"DES-SEAL-3/4: JWE header members {sorted(extra)}")
        if hdr.get("alg") not in ("RSA-OAEP-256", "RSA-OAEP") or hdr.get("enc") != "A128CBC-HS256":
            raise Refused(f"DES-SEAL-3: JWE alg/enc {hdr.get('alg')}/{hdr.get('enc')}")
        if hdr.get("cty") != cty or hdr.get("kid") != self.own_kid:
            raise Refused(f"DES-SEAL-3: JWE cty/kid {hdr.get('cty')}/{hdr.get('kid')}")
        if len(iv) != 16 or len(tag) != 16 or not ct or len(ct) % 16:
            raise Refused("DES-SEAL-5 (2): IV, tag or ciphertext length")
        self.c.ok(hdr == {"alg": "RSA-OAEP-256", "enc": "A128CBC-HS256", "cty": cty, "kid": self.own_kid},
                  "DES-SEAL-3", f"{where}: the sender writes exactly alg RSA-OAEP-256, enc, cty, kid: {hdr}")
        e = jwe.JWE()
        e.allowed_algs = ["RSA-OAEP-256", "RSA-OAEP", "A128CBC-HS256"]
        try:
            e.deserialize(token, key=self.own_key)
        except Exception as ex:  # noqa: BLE001 - one failure, no oracle (DES-SEAL-5)
            raise Refused(f"DES-SEAL-5 (3/4): JWE does not decrypt: {ex!r}") from None
        try:
            inner = e.payload.decode("utf-8")
            ip = inner.split(".")
            if len(ip) != 3:
                raise ValueError("JWS not three parts")
            ih = strict_json(b64u_strict(ip[0]))
        except ValueError as ex:
            raise Refused(f"DES-SEAL-5 (5): {ex}") from None
        if not isinstance(ih, dict):
            raise Refused("DES-SEAL-4: JWS header not an object")
        extra = set(ih) - {"alg", "typ", "kid", "x5t#S256", "cty"}
        if extra or any(not isinstance(v, str) for v in ih.values()):
            raise Refused(f"DES-SEAL-2/4: JWS header members {sorted(ih)}")
        if ih.get("alg") != "RS256" or ih.get("typ") != typ:
            raise Refused(f"DES-SEAL-2: JWS alg/typ {ih.get('alg')}/{ih.get('typ')}")
        if ih.get("kid") != self.peer_kid:
            raise Refused("DES-SEAL-6: kid is not the gateway's data-protection certificate's")
        problem = self.cert_problem(self.peer, "gateway", self.gw, dt.datetime.now(dt.timezone.utc))
        if problem:
            raise Refused(f"DES-SEAL-6 / DES-CERT-4: {problem}")
        if "x5t#S256" in ih and ih["x5t#S256"] != self.peer_x5t:
            raise Refused("DES-SEAL-2: x5t#S256 is not the signer's")
        s = jws.JWS()
        s.allowed_algs = ["RS256"]
        try:
            s.deserialize(inner, key=pub_jwk(self.peer))
        except Exception as ex:  # noqa: BLE001
            raise Refused(f"DES-SEAL-5 (5): signature: {ex!r}") from None
        self.c.ok(ih == {"alg": "RS256", "typ": typ, "kid": self.peer_kid, "x5t#S256": self.peer_x5t},
                  "DES-SEAL-2", f"{where}: the sender writes exactly alg, typ, kid, x5t#S256: {ih}")
        return s.payload


# ---------------------------------------------------------------------------------- HTTPS (§10)
def https_server(cfg, pki, requests):
    """DES-CERT-1 endpoint: mutual TLS (client certificate of the TLS PKI, checked against the
    CRL, DES-CERT-5), GET only, the paths of the table."""
    p, gw = cfg["pki"], cfg["gatewayId"]
    files = {
        "/sgw/v1/certs/root.pem": (open(p["root"], "rb").read(), "application/x-pem-file"),
        "/sgw/v1/certs/platform.pem": (open(p["platformCert"], "rb").read(), "application/x-pem-file"),
        "/sgw/v1/crl.pem": (open(p["crl"], "rb").read(), "application/x-pem-file"),
        "/sgw/v1/crl.der": (pki.crl.public_bytes(serialization.Encoding.DER), "application/pkix-crl"),
        "/sgw/v1/certs/apps": (b"[]", "application/json"),  # no application certificates
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            peer = self.connection.getpeercert() or {}
            subject = {k: v for rdn in peer.get("subject", ()) for k, v in rdn}
            known = subject.get("commonName") == gw and subject.get("organizationName") == gw
            if not known:
                status, body, ctype = 403, b"", "text/plain"
            elif self.path in files:
                body, ctype = files[self.path]
                status = 200
            else:
                status, body, ctype = 404, b"", "text/plain"
            requests.append({"path": self.path, "status": status, "client": subject.get("commonName")})
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):
            log("https:", fmt % args)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # DES-MQTT-1 / DES-CERT-1
    ctx.load_cert_chain(cfg["https"]["cert"], cfg["https"]["key"])
    ctx.load_verify_locations(cafile=cfg["mqtt"]["ca"])
    ctx.load_verify_locations(cafile=p["crl"])  # the TLS CRL (one root for both PKIs)
    ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    ctx.verify_mode = ssl.CERT_REQUIRED
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


# ---------------------------------------------------------------------------------- the dataset
class Expected:
    """The uploaded CSV read independently (DES-CSV-1..4) and the dataset of gateway.toml."""

    def __init__(self, cfg):
        bundle = os.path.dirname(cfg["gatewayToml"])
        with open(cfg["gatewayToml"], "rb") as f:
            toml = tomllib.load(f)
        self.ds = next(d for d in toml["datasets"] if d["name"] == cfg["dataset"])
        self.columns = self.ds["columns"]
        enc = {"utf-8": "utf-8-sig", "cp932": "cp932"}[self.ds["encoding"]]
        text = open(cfg["csv"], "rb").read().decode(enc)
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
        if self.ds["header_row"]:
            header, rows = rows[0], rows[1:]
            assert header == [c["name"] for c in self.columns], f"CSV header {header}"
        self.rows = [[self.canonical(c, v) for c, v in zip(self.columns, r)] for r in rows]
        self.keys_dir = os.path.join(bundle, toml["masking"]["keys_dir"])
        self.active_key = toml["masking"]["active_key"]
        self._keys = None
        self.plain_masked = {v for r in self.rows for c, v in zip(self.columns, r) if c["masked"] and v}

    @property
    def keys(self):
        """The utility's masking keys (DES-MASK-3), read when first needed: the utility makes
        them after the platform started."""
        if self._keys is None:
            self._keys = {n[:-4]: open(os.path.join(self.keys_dir, n)).read().strip()
                          for n in os.listdir(self.keys_dir) if n.endswith(".key")}
        return self._keys

    @staticmethod
    def canonical(col, v):
        """DES-CSV-4 'stored as': integers canonical, everything else as is."""
        if col["type"] == "integer" and v != "":
            return str(int(v))
        return v


# ---------------------------------------------------------------------------------- the platform
class Platform:
    def __init__(self, cfg):
        self.cfg = cfg
        self.c = Checks()
        self.gw = cfg["gatewayId"]
        self.t = cfg["timers"]
        self.pki = Pki(cfg, self.c)
        self.expected = Expected(cfg)
        with open(os.path.join(ROOT, "docs", "schemas", "envelope.schema.json")) as f:
            self.env_schema = jsonschema.Draft202012Validator(json.load(f), format_checker=jsonschema.FormatChecker())
        with open(os.path.join(ROOT, "docs", "schemas", "profile.schema.json")) as f:
            self.prof_schema = jsonschema.Draft202012Validator(json.load(f), format_checker=jsonschema.FormatChecker())
        self.inbox = queue.Queue()
        self.stdin = queue.Queue()
        self.https_requests = []
        self.subscribed = threading.Event()
        # state
        self.replies = {}  # DES-ENV-8: request messageId -> (type, timestamp, reply bytes)
        self.session = False
        self.connect = None
        self.ids = {}  # messageId -> envelope of every up message (DES-ID-2)
        self.types_seen = []  # (type, in session, phase) in arrival order
        self.statuses = []  # (arrival, envelope) of monitor.status
        self.anomalies = {}  # messageId -> envelope (de-duplicated, DES-MSG-AN-2)
        self.commands = {}  # messageId -> {"type", "body", "tampered", "results", "sent"}
        self.results = {}  # result messageId -> (arrival, envelope) (first copy)
        self.result_dups = []  # (arrival, messageId) of re-sent results
        self.acked_results = {}  # result messageId -> when our ack went out
        self.data = {}  # data messageId -> {"env", "first", "transmissions", "acked_at"}
        self.data_order = []
        self.held_mid = None  # the data message whose first transmission is not acknowledged
        self.records = {}  # seq -> fields
        self.phase = "connecting"
        self.disconnected = None

    # ---------------------------------------------------------------- transport
    def topic(self, typ):
        return f"/tenants/{self.gw}/sgw/v1/down/{typ}"

    def start_mqtt(self):
        m = self.cfg["mqtt"]
        cl = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="platform",
                         protocol=mqtt.MQTTv311, clean_session=True)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # DES-MQTT-1
        ctx.load_verify_locations(cafile=m["ca"])
        ctx.load_cert_chain(m["cert"], m["key"])
        cl.tls_set_context(ctx)

        def on_connect(client, userdata, flags, reason, props):
            log("broker connected:", reason)
            client.subscribe("/tenants/+/sgw/v1/up/#", qos=1)  # DES-MQTT-4

        def on_subscribe(client, userdata, mid, reasons, props):
            log("subscribed:", [str(r) for r in reasons])
            if all(not r.is_failure for r in reasons):
                self.subscribed.set()

        def on_message(client, userdata, msg):
            self.inbox.put((time.monotonic(), msg.topic, bytes(msg.payload), msg.qos, msg.retain))
        cl.on_connect, cl.on_subscribe, cl.on_message = on_connect, on_subscribe, on_message
        deadline = time.monotonic() + 10
        while True:
            try:
                cl.connect(m["host"], m["port"], keepalive=60)  # DES-MQTT-5
                break
            except OSError as e:
                if time.monotonic() > deadline:
                    raise
                log("broker not up yet:", e)
                time.sleep(0.2)
        cl.loop_start()
        self.mqtt = cl

    def publish(self, typ, env_bytes, tamper=False):
        payload = self.pki.seal(env_bytes, tamper_signature=tamper)
        info = self.mqtt.publish(self.topic(typ), payload, qos=1, retain=False)  # DES-MQTT-6
        info.wait_for_publish(5)

    def envelope(self, typ, body, in_reply_to=None, code="OK"):
        """DES-ENV-1: members in order, compact UTF-8 JSON; the platform's messageIds are UUIDs."""
        env = {"version": 1, "messageId": "p-" + uuid.uuid4().hex, "gatewayId": self.gw,
               "type": typ, "timestamp": now_ts()}
        if in_reply_to is not None:
            env["inReplyTo"] = in_reply_to
            env["result"] = {"code": code}
        env["body"] = body
        errs = list(self.env_schema.iter_errors(env))
        if errs:
            raise RuntimeError(f"the test's own {typ} breaks the schema: {errs[0].message}")
        return env, json.dumps(env, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def reply(self, request, typ, body):
        """A reply, remembered for DES-ENV-8."""
        _, raw = self.envelope(typ, body, in_reply_to=request["messageId"])
        self.replies[request["messageId"]] = (request["type"], request["timestamp"], raw)
        self.publish(typ, raw)

    def command(self, typ, body, tamper=False):
        env, raw = self.envelope(typ, body)
        self.commands[env["messageId"]] = {"type": typ, "body": body, "tampered": tamper,
                                           "results": [], "sent": time.monotonic()}
        self.publish(typ, raw, tamper=tamper)
        return env["messageId"]

    # ---------------------------------------------------------------- receiving
    def decode(self, topic, payload, qos, retain):
        """Platform order of checks (§6.10, DES-MSG-3) for an up message; returns the envelope."""
        where = topic
        m = TOPIC.match(topic)
        self.c.ok(m is not None and m.group(2) == "up", "DES-MQTT-3/4", f"up topic shape: {topic}")
        if m is None:
            raise Refused("topic")
        tenant, _, level = m.groups()
        self.c.ok(tenant == self.gw, "DES-MQTT-4", f"tenant {tenant}")
        self.c.ok(TYPES.get(level, ("?",))[0] == "up", "DES-MQTT-4", f"{level} is not an up type")
        self.c.ok(not retain, "DES-MQTT-6", f"{topic}: retain flag set")
        self.c.ok(qos == 1, "DES-MQTT-6", f"{topic}: delivered with QoS {qos}")
        raw = self.pki.open(payload, MSG, where)
        self.c.ok(len(raw) <= MAX_ENVELOPE, "DES-ENV-5", f"{topic}: envelope of {len(raw)} bytes")
        try:
            env = strict_json(raw)
        except ValueError as e:
            raise Refused(f"DES-ENV-1: {e}") from None
        errs = sorted(self.env_schema.iter_errors(env), key=lambda e: list(e.path))
        for e in errs[:3]:
            self.c.ok(False, "DES-ENV-1 (schema)", f"{topic}: {'/'.join(map(str, e.path))}: {e.message[:300]}")
        if errs:
            raise Refused("schema")
        order = ["version", "messageId", "gatewayId", "type", "timestamp", "inReplyTo", "result", "body", "ext"]
        self.c.ok(list(env) == [k for k in order if k in env], "DES-ENV-1", f"member order {list(env)}")
        self.c.ok(env["type"] == level, "DES-MQTT-4", f"type {env['type']} on topic level {level}")
        self.c.ok(env["gatewayId"] == tenant, "DES-ENV-4", f"gatewayId {env['gatewayId']} on tenant {tenant}")
        try:
            when = parse_ts(env["timestamp"])
            self.c.ok(abs((dt.datetime.now(dt.timezone.utc) - when).total_seconds()) <= STALE_SEC,
                      "DES-ENV-7", f"{env['type']} timestamp {env['timestamp']} outside ±300 s")
        except ValueError as e:
            self.c.ok(False, "DES-ENV-2", str(e))
        self.check_timestamps(env, env["type"])
        self.check_texts(env)
        return env

    def check_timestamps(self, value, where):
        """DES-ENV-2: every timestamp (envelope, body, profile header) calendar-valid and written
        as encoders write it: ±hh:mm (+00:00 for UTC, never Z) and 0, 3, 6 or 9 fraction digits."""
        if isinstance(value, dict):
            for k, v in value.items():
                if k in ("timestamp", "notAfter", "from", "to", "createdAt") and isinstance(v, str):
                    m = TS.match(v)
                    try:
                        parse_ts(v)
                        ok = m.group(9) != "Z" and len(m.group(8) or "") in (0, 3, 6, 9)
                    except (ValueError, AttributeError):
                        ok = False
                    self.c.ok(ok, "DES-ENV-2", f"{where}: {k} {v!r} is not as encoders write it")
                else:
                    self.check_timestamps(v, where)
        elif isinstance(value, list):
            for v in value:
                self.check_timestamps(v, where)

    def check_texts(self, env):
        """DES-ENV-6: free text at most 1024 bytes of UTF-8."""
        b, texts = env["body"], []
        texts += [(env.get("result") or {}).get("reason", "")]
        if env["type"] == "anomaly":
            texts += [b.get("rule", ""), b.get("detail", ""), b.get("topic", "")]
        if env["type"] == "disconnect":
            texts += [b.get("reason", "")]
        if env["type"] == "connect":
            texts += list(b["software"].values())
        if env["type"] == "monitor.status":
            texts += [c["name"] for c in b["certificates"]] + [b.get("lastError", "")]
        for t in texts:
            self.c.ok(len(t.encode("utf-8")) <= MAX_TEXT, "DES-ENV-6", f"{env['type']}: text over 1024 bytes")

    def pump(self, timeout):
        """Handles every message that arrives within `timeout` seconds (at least one wait)."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            try:
                arrival, topic, payload, qos, retain = self.inbox.get(timeout=left)
            except queue.Empty:
                return
            self.handle(arrival, topic, payload, qos, retain)

    def wait_for(self, what, cond, timeout):
        end = time.monotonic() + timeout
        while not cond():
            left = end - time.monotonic()
            if left <= 0:
                self.c.ok(False, "timeout", f"{self.phase}: {what} within {timeout} s")
                raise Abort(what)
            self.pump(min(left, 0.1))
        return True

    def handle(self, arrival, topic, payload, qos, retain):
        try:
            env = self.decode(topic, payload, qos, retain)
        except Refused as e:
            self.c.ok(False, "DES-SEAL-5", f"an up message on {topic} does not open or decode: {e}")
            return
        typ = env["type"]
        # DES-ID-2: a messageId names one message; only a retransmission (identical) repeats it.
        prev = self.ids.setdefault(env["messageId"], env)
        self.c.ok(prev == env, "DES-ID-2", f"messageId {env['messageId']} reused for another message")
        self.types_seen.append((typ, self.session, self.phase))
        log(f"<- {typ} {env['messageId']} ({self.phase})")
        # DES-MSG-CONN-3: nothing but connect before the session.
        if not self.session and typ != "connect":
            self.c.ok(False, "DES-MSG-CONN-3", f"{typ} sent before an OK connect.result")
        # DES-ENV-8: a duplicate connect/disconnect gets the stored reply, unchanged (re-sealed);
        # data and results are de-duplicated by their handlers (DES-MSG-DATA-3, DES-MSG-PS-5).
        if typ in ("connect", "disconnect") and self.resend_stored(env):
            return
        getattr(self, "on_" + typ.replace(".", "_"), self.on_unexpected)(arrival, env)

    def resend_stored(self, env):
        """DES-ENV-8: re-sends the stored reply of a duplicate request; False if none."""
        got = self.replies.get(env["messageId"])
        if got is None or got[0] != env["type"] or got[1] != env["timestamp"]:
            return False
        self.publish(strict_json(got[2])["type"], got[2])
        return True

    # ---------------------------------------------------------------- per type
    def on_unexpected(self, arrival, env):
        self.c.ok(False, "DES-MSG-1", f"unexpected up message {env['type']} in phase {self.phase}")

    def on_connect(self, arrival, env):
        b = env["body"]
        self.c.ok(self.connect is None, "DES-MSG-CONN-3", "a second connect in one test run")
        self.c.ok(1 in b["versions"] and b["versions"] == sorted(b["versions"], reverse=True),
                  "DES-MSG-CONN-1", f"versions {b['versions']}")
        self.c.ok("json" in b["formats"], "DES-MSG-CONN-1", f"formats {b['formats']}")
        self.c.ok(b["bootCount"] >= 1, "DES-MSG-CONN-1", "bootCount incremented before the first connect")
        self.c.ok(b["lastSeq"] == 0, "DES-MSG-CONN-1", f"a fresh gateway's lastSeq {b['lastSeq']}")
        self.c.ok(b["periodic"] == {"running": False, "datasets": [], "intervalSec": 0, "format": "json",
                                    "commandSeq": 0},
                  "DES-MSG-CONN-1 / §6.1 PeriodicState", f"a fresh gateway's periodic {b['periodic']}")
        self.connect = env
        # DES-MSG-CONN-4: first connect ever: OK, a new sequence space, ackedThrough 0.
        self.reply(env, "connect.result", {"version": 1, "monitorIntervalSec": self.t["monitorIntervalSec"],
                                           "ackTimeoutSec": self.t["ackTimeoutSec"], "ackedThrough": 0})
        self.session = True
        self.session_types_from = len(self.types_seen)

    def on_disconnect(self, arrival, env):
        self.c.ok(self.phase == "shutdown", "DES-MSG-DISC-1", f"disconnect in phase {self.phase}")
        self.reply(env, "disconnect.result", {})
        self.session = False
        self.disconnected = env

    def on_monitor_status(self, arrival, env):
        b = env["body"]
        names = [c["name"] for c in b["certificates"]]
        for want in ("tls-client", "data-protection", "platform", "root", "crl"):
            self.c.ok(want in names, "DES-MSG-MON-1", f"certificates lists {want}: {names}")
        self.c.ok(b["storage"]["unacked"] <= b["storage"]["records"], "DES-MSG-MON-1", f"storage {b['storage']}")
        self.c.ok(b["anomaliesDropped"] <= b["anomalies"], "DES-MSG-MON-1", "anomaliesDropped <= anomalies")
        if self.statuses:
            last = self.statuses[-1][1]["body"]
            self.c.ok(b["uptimeSec"] >= last["uptimeSec"], "DES-MSG-MON-1", "uptimeSec went backwards")
            self.c.ok(b["lastSeq"] >= last["lastSeq"], "DES-ID-4", "lastSeq went backwards")
        self.statuses.append((arrival, env))

    def on_anomaly(self, arrival, env):
        self.anomalies.setdefault(env["messageId"], (arrival, env))

    def on_periodic_start_result(self, arrival, env):
        self.on_result(arrival, env, "periodic.start")

    def on_periodic_stop_result(self, arrival, env):
        self.on_result(arrival, env, "periodic.stop")

    def on_result(self, arrival, env, request_type):
        cmd = self.commands.get(env["inReplyTo"])
        # §6.10 platform step 14/15: answered with `ack` either way.
        self.c.ok(cmd is not None and cmd["type"] == request_type, "DES-ENV-3",
                  f"{env['type']} answers {env['inReplyTo']}, no outstanding {request_type}")
        if cmd is not None:
            self.c.ok(not cmd["tampered"], "DES-SEAL-5 / IF-PSTART-2",
                      f"the gateway answered a command whose signature was tampered: {env['result']}")
            cmd["results"].append(env)
        if env["messageId"] in self.results:
            # DES-MSG-PS-5: a re-sent result (same messageId) is answered with the same ack.
            self.c.ok(env == self.results[env["messageId"]][1], "DES-MSG-PS-5", "a re-sent result differs")
            self.result_dups.append((arrival, env["messageId"]))
            self.resend_stored(env)
            return
        self.results[env["messageId"]] = (arrival, env)
        self.reply(env, "ack", {})  # DES-MSG-PS-5
        self.acked_results[env["messageId"]] = time.monotonic()

    def on_data(self, arrival, env):
        self.on_data_transmission(arrival, env)

    def on_data_transmission(self, arrival, env):
        mid, b = env["messageId"], env["body"]
        entry = self.data.get(mid)
        if entry is None:
            self.c.ok(self.phase in ("running", "acked"), "DES-MSG-DATA-4",
                      f"data {b['range']} in phase {self.phase}: periodic data only while started")
            entry = {"env": env, "first": arrival, "transmissions": [arrival], "acked_at": None}
            self.data[mid] = entry
            self.data_order.append(mid)
            self.check_data(env)
        else:
            entry["transmissions"].append(arrival)
            # DES-MSG-DATA-3: identical: same messageId, timestamp, range, epoch, format, profile.
            self.c.ok(env == entry["env"], "DES-MSG-DATA-3",
                      f"data {mid} retransmitted with other content (timestamp/range/profile differ)")
            if entry["acked_at"] is not None and arrival - entry["acked_at"] > self.t["ackTimeoutSec"] / 2:
                self.c.ok(False, "DES-MSG-DATA-2/3",
                          f"data {mid} {b['range']} sent again {arrival - entry['acked_at']:.2f} s after its OK data.ack")
            if self.resend_stored(env):  # DES-MSG-DATA-3: a duplicate is acknowledged again
                return
        if self.held_mid is None:
            self.held_mid = mid
        if mid == self.held_mid and len(entry["transmissions"]) == 1:
            log(f"holding the ack of {mid} (DES-MSG-DATA-3 retransmission check)")
            return
        if mid == self.held_mid and len(entry["transmissions"]) == 2:
            gap = entry["transmissions"][1] - entry["transmissions"][0]
            self.c.ok(gap >= self.t["ackTimeoutSec"] * 0.8, "DES-MSG-DATA-3",
                      f"retransmitted after {gap:.2f} s, before ackTimeoutSec {self.t['ackTimeoutSec']}")
            self.retransmit_gap = gap
        self.reply(env, "data.ack", {"range": b["range"]})  # DES-MSG-DATA-2
        if entry["acked_at"] is None:
            entry["acked_at"] = time.monotonic()

    def check_data(self, env):
        """DES-MSG-DATA-1, DES-PROF-2..4, DES-MASK-1/4 against the uploaded CSV."""
        b, mid = env["body"], env["messageId"]
        r = b["range"]
        where = f"data {mid} {r['first']}..{r['last']}"
        self.c.ok(b["kind"] == "periodic" and "request" not in b, "DES-MSG-DATA-1", f"{where}: kind {b['kind']}")
        self.c.ok(b["dataset"] == self.cfg["dataset"], "DES-MSG-DATA-1", f"{where}: dataset {b['dataset']}")
        self.c.ok(b["epoch"] == self.connect["body"]["epoch"], "DES-MSG-DATA-1 / DES-ID-5",
                  f"{where}: epoch {b['epoch']} is not the session's")
        self.c.ok(b["format"] == "json", "DES-PROF-1", f"{where}: format {b['format']} after a json start")
        self.c.ok(1 <= r["first"] <= r["last"], "DES-ID-4", f"{where}: range")
        try:
            plain = self.pki.open(b["profile"], PROFILE, where + " profile")
            prof = strict_json(plain)
        except (Refused, ValueError) as e:
            self.c.ok(False, "DES-PROF-4", f"{where}: the profile does not open: {e}")
            return
        for e in list(self.prof_schema.iter_errors(prof))[:3]:
            self.c.ok(False, "DES-PROF-2/3 (schema)", f"{where}: {e.message[:300]}")
        h, recs = prof.get("header", {}), prof.get("records", [])
        self.c.ok(h.get("gatewayId") == env["gatewayId"] and h.get("dataset") == b["dataset"]
                  and h.get("range") == r, "DES-MSG-DATA-1", f"{where}: profile header {h.get('range')}")
        self.c.ok(h.get("sourceSystem") == self.expected.ds["source_system"], "DES-PROF-2",
                  f"{where}: sourceSystem {h.get('sourceSystem')}")
        want_cols = [{k: c[k] for k in ("name", "type", "unit", "masked") if k in c} for c in self.expected.columns]
        self.c.ok(h.get("columns") == want_cols, "DES-PROF-2", f"{where}: columns {h.get('columns')} != gateway.toml's")
        self.check_timestamps({"createdAt": h.get("createdAt")}, where + " profile header")
        n = r["last"] - r["first"] + 1
        if not self.c.ok(len(recs) == n, "DES-PROF-3", f"{where}: {len(recs)} records for a range of {n}"):
            return
        cols = self.expected.columns
        for i, rec in enumerate(recs):
            seq = r["first"] + i
            if not self.c.ok(len(rec) == len(cols), "DES-PROF-3", f"{where}: record {seq} has {len(rec)} fields"):
                continue
            self.c.ok(seq not in self.records, "DES-ID-4", f"seq {seq} sent in two messages")
            self.records[seq] = rec
            if not self.c.ok(1 <= seq <= len(self.expected.rows), "DES-ID-4",
                             f"seq {seq}: a fresh gateway numbers the file's records 1..{len(self.expected.rows)}"):
                continue
            row = self.expected.rows[seq - 1]
            for col, got, up in zip(cols, rec, row):
                name = col["name"]
                if not col["masked"]:
                    self.c.ok(got == up, "DES-PROF-3", f"seq {seq} {name}: {got!r} != uploaded {up!r}")
                    continue
                if up == "":
                    self.c.ok(got == "", "DES-MASK-4", f"seq {seq} {name}: an empty field stays empty")
                    continue
                m = MASKED.match(got)
                self.c.ok(m is not None and got != up, "DES-MASK-1",
                          f"seq {seq} {name}: not in m1.<keyId>.<b64> form (in clear?)")
                if m is None:
                    continue
                self.c.ok(m.group(1) == self.expected.active_key, "DES-MASK-3", f"seq {seq} {name}: keyId {m.group(1)}")
                try:
                    back = maskpy.unmask(self.expected.keys, name, got)
                except ValueError as e:
                    back = f"<{e}>"
                self.c.ok(back == up, "DES-MASK-1/2", f"seq {seq} {name}: does not unmask to the uploaded value")
            for got in rec:
                leak = [p for p in self.expected.plain_masked if p in got]
                self.c.ok(not leak, "DES-MASK-4 / SEC-MASK-1", f"seq {seq}: a masked column's value in clear")

    # ---------------------------------------------------------------- the scenario
    def latest_status_after(self, t):
        s = [e for a, e in self.statuses if a > t]
        return s[-1]["body"] if s else None

    def set_phase(self, p):
        log(f"== phase {p}")
        self.phase = p

    def run(self):
        t = self.t
        srv = https_server(self.cfg, self.pki, self.https_requests)
        self.start_mqtt()
        if not self.subscribed.wait(10):
            raise Abort("DES-MQTT-4: the platform could not subscribe")
        threading.Thread(target=self.read_stdin, daemon=True).start()
        emit({"event": "ready", "httpsPort": srv.server_address[1]})

        # §6.1 connect → connect.result OK; first monitor.status (DES-MSG-CONN-3, DES-MSG-MON-2).
        self.wait_for("connect", lambda: self.connect is not None, 30)
        self.set_phase("session")
        self.wait_for("first monitor.status", lambda: self.statuses, 5 + t["monitorIntervalSec"])
        after = [typ for typ, _, _ in self.types_seen[self.session_types_from:]]
        self.c.ok(after[:1] == ["monitor.status"], "DES-MSG-CONN-3",
                  f"the first message after the OK connect.result is monitor.status, got {after[:3]}")

        # Negative: a periodic.start with a tampered signature (DES-SEAL-5, IF-PSTART-2, §6.8).
        self.set_phase("tampered")
        bad = self.command("periodic.start", {"commandSeq": 1, "datasets": [self.cfg["dataset"]],
                                              "intervalSec": t["intervalSec"], "format": "json"}, tamper=True)
        sec = lambda: [e for _, e in self.anomalies.values() if e["body"]["kind"] == "security"]  # noqa: E731
        self.wait_for("anomaly kind security for the tampered start", sec, 10)
        a = sec()[0]["body"]
        # A status published after the anomaly (one publisher, QoS 1: in order) tells the state.
        t_anomaly = next(arr for arr, e in self.anomalies.values() if e["body"]["kind"] == "security")
        down = self.topic("periodic.start")
        self.c.ok(a["rule"] == "IF-PSTART-2", "DES-SEAL-5 / §6.10 step 4", f"anomaly rule {a['rule']}")
        self.c.ok("SECURITY_FAILED" in a["detail"], "DES-SEAL-5 / DES-MSG-AN-1", f"anomaly detail {a['detail']!r}")
        self.c.ok(a.get("topic") == down or down in a["detail"], "DES-SEAL-5 / DES-MSG-AN-1",
                  f"the anomaly names the topic {down}: {a}")
        # Not acted on: still stopped, commandSeq not advanced (DES-MSG-PS-4).
        self.wait_for("monitor.status after the refusal", lambda: self.latest_status_after(t_anomaly),
                      3 + 2 * t["monitorIntervalSec"])
        st = self.latest_status_after(t_anomaly)
        self.c.ok(st["periodic"]["running"] is False and st["periodic"]["commandSeq"] == 0, "DES-SEAL-5 / IF-PSTART-2",
                  f"the tampered start changed the state: {st['periodic']}")
        self.c.ok(st["anomalies"] >= 1, "DES-MSG-AN-2", f"monitor.status.anomalies {st['anomalies']} counts the refusal")

        # §6.3 periodic.start → result OK → ack (DES-MSG-PS-1..5).
        self.set_phase("starting")
        start = self.command("periodic.start", {"commandSeq": 1, "datasets": [self.cfg["dataset"]],
                                                "intervalSec": t["intervalSec"], "format": "json"})
        self.wait_for("periodic.start.result", lambda: self.commands[start]["results"], 10)
        r = self.commands[start]["results"][0]
        self.c.ok(r["result"]["code"] == "OK", "DES-MSG-PS-4",
                  f"start commandSeq 1 after a refused one: {r['result']} (the tampered one was applied?)")
        self.c.ok(r["body"] == {"running": True, "datasets": [self.cfg["dataset"]], "intervalSec": t["intervalSec"],
                                "format": "json", "commandSeq": 1}, "DES-MSG-PS-3", f"start result body {r['body']}")
        self.c.ok(not self.commands[bad]["results"], "IF-PSTART-2", "the tampered start was answered")
        self.set_phase("running")
        emit({"event": "started"})

        # §6.4 data of the uploaded CSV; the first message's first transmission is not acked.
        n = len(self.expected.rows)
        self.wait_for(f"data of all {n} records", lambda: len(self.records) >= n, 30)
        self.wait_for("every data message acknowledged",
                      lambda: all(d["acked_at"] for d in self.data.values()), 10 + 2 * t["ackTimeoutSec"])
        self.c.ok(sorted(self.records) == list(range(1, n + 1)), "DES-ID-4 / IF-PSEND-1",
                  f"seqs {sorted(self.records)[:3]}… for {n} uploaded rows")
        firsts = [self.data[m]["env"]["body"]["range"]["first"] for m in self.data_order]
        self.c.ok(firsts == sorted(firsts), "IF-PSEND-3", f"data sent in seq order: {firsts}")
        self.c.ok(len(self.data) >= 2, "DES-MSG-DATA-6",
                  f"{n} records in {len(self.data)} message(s) with max_records_per_message {self.cfg['maxRecordsPerMessage']}")
        for m in self.data_order:
            rg = self.data[m]["env"]["body"]["range"]
            self.c.ok(rg["last"] - rg["first"] + 1 <= self.cfg["maxRecordsPerMessage"], "DES-MSG-DATA-6",
                      f"message {rg} over max_records_per_message")
        first = self.data[self.data_order[0]]
        self.c.ok(len(first["transmissions"]) >= 2, "DES-MSG-DATA-3", "the unacknowledged message was not sent again")

        # After the acks: no retransmission and no new data within a window; monitor.status shows
        # every record acknowledged (DES-MSG-DATA-2/3, DES-MSG-MON-1).
        self.set_phase("acked")
        t_acked = time.monotonic()
        before = {m: len(d["transmissions"]) for m, d in self.data.items()}
        window = 3 * t["ackTimeoutSec"] + 1
        self.pump(window)
        again = {m: len(d["transmissions"]) - before[m] for m, d in self.data.items() if m in before}
        self.c.ok(not any(again.values()) and len(self.data) == len(before), "DES-MSG-DATA-2/3",
                  f"within {window} s after the acks: re-sent {again}, new {len(self.data) - len(before)}")
        self.wait_for("monitor.status with every record acknowledged",
                      lambda: (lambda s: s and s["lastSeq"] == n and s["storage"]["unacked"] == 0)(
                          self.latest_status_after(t_acked)), 3 + 2 * t["monitorIntervalSec"])
        st = self.latest_status_after(t_acked)
        self.c.ok(st["storage"]["held"] == 0 and st["storage"]["records"] == n and st["periodic"]["running"]
                  and st["storage"]["oldestUnackedSec"] == 0 and st["storage"]["freeBytes"] > 0,
                  "DES-MSG-MON-1", f"monitor.status after the acks: {st['storage']} {st['periodic']}")

        # §6.5 periodic.stop → result OK → ack; then nothing is sent (DES-MSG-PS-2/3, DES-MSG-DATA-4).
        self.set_phase("stopping")
        stop = self.command("periodic.stop", {"commandSeq": 2})
        self.wait_for("periodic.stop.result", lambda: self.commands[stop]["results"], 10)
        r = self.commands[stop]["results"][0]
        self.c.ok(r["result"]["code"] == "OK", "DES-MSG-PS-4", f"stop commandSeq 2: {r['result']}")
        self.c.ok(r["body"] == {"running": False, "datasets": [], "intervalSec": 0, "format": "json", "commandSeq": 2},
                  "DES-MSG-PS-3", f"stop result body {r['body']}")
        self.set_phase("stopped")
        t_stop = time.monotonic()
        n_data = len(self.data)
        emit({"event": "stopped"})
        self.wait_for("the parent's upload after the stop", lambda: self.stdin_has("after-stop-upload-done"), 20)
        self.pump(2 * t["intervalSec"] + 1)
        self.c.ok(len(self.data) == n_data, "DES-MSG-DATA-4 / IF-PSTOP-1",
                  f"{len(self.data) - n_data} data message(s) after the applied stop")
        st = self.latest_status_after(t_stop)
        self.c.ok(st is not None and st["periodic"]["running"] is False and st["lastSeq"] == n,
                  "DES-MSG-PS-3 / DES-MSG-MON-1", f"monitor.status after the stop: {st and st['periodic']}, lastSeq {st and st['lastSeq']}")

        # DES-MSG-MON-2: monitor.status every monitorIntervalSec while in session (loose bounds:
        # the gateway's timer, the broker and this process add latency).
        arr = [a for a, _ in self.statuses]
        gaps = [round(b - a, 2) for a, b in zip(arr, arr[1:])]
        self.status_gaps = gaps
        iv = t["monitorIntervalSec"]
        self.c.ok(gaps and 0.5 * iv <= min(gaps) and max(gaps) <= 2.5 * iv + 0.5, "DES-MSG-MON-2",
                  f"monitor.status intervals {gaps} for monitorIntervalSec {iv}")

        # DES-MSG-PS-5: results are not re-sent once acked (grace: one ackTimeout for in-flight copies).
        late = [m for a, m in self.result_dups if a - self.acked_results.get(m, a) > t["ackTimeoutSec"]]
        self.c.ok(not late, "DES-MSG-PS-5", f"results re-sent after their ack: {late}")

        # §6.2 disconnect on the gateway's shutdown.
        self.set_phase("shutdown")
        emit({"event": "flows-done"})
        self.wait_for("disconnect", lambda: self.disconnected is not None, 20)
        self.pump(0.3)

        # DES-MQTT-6: nothing published retained. A live delivery always has retain 0 (MQTT
        # 3.1.1 §3.3.1.3), so subscribe afresh: the broker then delivers what is retained.
        self.set_phase("retain-probe")
        self.subscribed.clear()
        self.mqtt.unsubscribe("/tenants/+/sgw/v1/up/#")
        self.mqtt.subscribe("/tenants/+/sgw/v1/up/#", qos=1)
        self.wait_for("the fresh subscription", self.subscribed.is_set, 5)
        n_seen = len(self.types_seen)
        self.pump(0.5)
        retained = [typ for typ, _, _ in self.types_seen[n_seen:]]
        self.c.ok(not retained, "DES-MQTT-6", f"retained messages delivered to a new subscription: {retained}")

        # Anomalies: exactly the refusal of the tampered start (DES-SEAL-5) and the upload refused
        # 450 while stopped (DES-FTP-6: kind ingest, rule SC-FTP-1, the reply line as detail).
        found = [e["body"] for _, e in self.anomalies.values()]
        ingest = [a for a in found if a["kind"] == "ingest"]
        self.c.ok(len(ingest) == 1 and ingest[0]["rule"] == "SC-FTP-1"
                  and ingest[0]["detail"] == f"450 DES-FTP-6: storing stopped for {self.cfg['dataset']}",
                  "DES-FTP-6 / DES-MSG-AN-1", f"the 450 upload's anomaly: {ingest}")
        others = [a for a in found if a["kind"] not in ("security", "ingest")] + sec()[1:]
        self.c.ok(not others, "DES-MSG-AN-1", f"unexpected anomalies: {others}")
        # DES-CERT-3: root.pem, platform.pem and the CRL fetched at start-up over mutual TLS.
        got = {q["path"] for q in self.https_requests if q["status"] == 200}
        for want in ("/sgw/v1/certs/root.pem", "/sgw/v1/certs/platform.pem"):
            self.c.ok(want in got, "DES-CERT-3", f"the gateway did not fetch {want}: {sorted(got)}")
        self.c.ok(got & {"/sgw/v1/crl.pem", "/sgw/v1/crl.der"}, "DES-CERT-3", f"no CRL fetched: {sorted(got)}")
        bad_https = [q for q in self.https_requests if q["status"] != 200]
        self.c.ok(not bad_https, "DES-CERT-1", f"requests not answered 200: {bad_https}")

    def read_stdin(self):
        for line in sys.stdin:
            self.stdin.put(line.strip())

    def stdin_has(self, word):
        try:
            while True:
                if self.stdin.get_nowait() == word:
                    return True
        except queue.Empty:
            return False

    def summary(self):
        d = [self.data[m] for m in self.data_order]
        return {
            "connectEpoch": self.connect and self.connect["body"]["epoch"],
            "records": len(self.records),
            "dataMessages": [{"range": e["env"]["body"]["range"], "transmissions": len(e["transmissions"])} for e in d],
            "retransmitAfterSec": round(getattr(self, "retransmit_gap", -1), 2),
            "anomalies": [e["body"] for _, e in self.anomalies.values()],
            "statusGaps": getattr(self, "status_gaps", None),
            "httpsRequests": self.https_requests,
            "types": [t for t, _, _ in self.types_seen],
        }


class Abort(Exception):
    pass


def main():
    cfg = json.load(open(sys.argv[1]))
    p = Platform(cfg)
    deadline = cfg.get("deadlineSec", 50)
    timer = threading.Timer(deadline, lambda: (emit({"event": "result", "ok": False, "failures": [
        f"hard deadline of {deadline} s in phase {p.phase}"] + p.c.failures, "checks": p.c.count}), os._exit(3)))
    timer.daemon = True
    timer.start()
    try:
        p.run()
    except Abort as e:
        log("aborted:", e)
    except Exception as e:  # noqa: BLE001 - reported as a failure, with the traceback on stderr
        import traceback
        traceback.print_exc()
        p.c.ok(False, "sgw_platform.py", f"{type(e).__name__}: {e}")
    timer.cancel()
    emit({"event": "result", "ok": not p.c.failures, "failures": p.c.failures, "checks": p.c.count,
          "summary": p.summary()})
    try:
        p.mqtt.disconnect()
        p.mqtt.loop_stop()
    except Exception:  # noqa: BLE001
        pass


if __name__ == "__main__":
    main()
