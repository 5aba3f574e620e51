"""Shared helpers (not a generator itself) of the XML vector generators (gen_xml_dsig.py, gen_xml_enc.py): test keys
and certificates (cryptography), subprocess wrappers for scripts/crosscheck/xml_tool.py and
the xmlsec1 CLI, lxml canonicalization, the sample profiles."""
import datetime
import os
import subprocess
import sys
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(HERE, "..", "crosscheck", "xml_tool.py")
DS = "http://www.w3.org/2000/09/xmldsig#"
TMP = tempfile.mkdtemp(prefix="sgw-xml-vectors-")


class Party:
    def __init__(self, name, bits=2048):
        self.name = name
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SGW test vectors")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=3650))
                .sign(key, hashes.SHA256()))
        self.key_pem = key.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()).decode()
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        self.key_path = write(f"{name}.key", self.key_pem)
        self.cert_path = write(f"{name}.pem", self.cert_pem)


def write(name, text):
    p = os.path.join(TMP, name)
    with open(p, "w", encoding="utf-8") as f:
        f.write(text)
    return p


def run(args):
    r = subprocess.run(args, capture_output=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr.decode())
        raise SystemExit(f"failed: {args}")
    return r.stdout.decode("utf-8")


def tool(*args):
    return run([sys.executable, TOOL, *args])


def ok(*args):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True).returncode == 0


def c14n(xml, drop_signature=False, element_id=None, prefixes=None):
    root = etree.fromstring(xml.encode("utf-8"))
    if drop_signature:
        for sig in root.iter("{%s}Signature" % DS):
            parent, tail = sig.getparent(), sig.tail
            prev = sig.getprevious()
            parent.remove(sig)
            if tail:
                if prev is not None:
                    prev.tail = (prev.tail or "") + tail
                else:
                    parent.text = (parent.text or "") + tail
            break
    el = root if element_id is None else root.xpath("//*[@Id=$i]", i=element_id)[0]
    kw = {"inclusive_ns_prefixes": prefixes} if prefixes else {}
    return etree.tostring(el, method="c14n", exclusive=True, with_comments=False, **kw).decode("utf-8")


def profile(records):
    rows = "".join(
        f'<sgw:Record seq="{i}" note="{note}"><sgw:F n="customerName">{name}</sgw:F>'
        f'<sgw:F n="address">{addr}</sgw:F><sgw:F n="amount" unit="JPY">{amount}</sgw:F></sgw:Record>\n'
        for i, (name, addr, amount, note) in enumerate(records, 1))
    return ('<sgw:DataProfile xmlns:sgw="urn:sgw:profile:v1">'
            '<sgw:Header Id="header"><sgw:ProfileId>sgw-profile-v1</sgw:ProfileId>'
            '<sgw:GatewayId>GW0001</sgw:GatewayId><sgw:Dataset>料金請求</sgw:Dataset>'
            '<sgw:CreatedAt>2026-11-22T13:45:00+09:00</sgw:CreatedAt></sgw:Header>'
            f'<sgw:Body Id="body">\n{rows}</sgw:Body></sgw:DataProfile>')


RECORDS = [
    ("佐藤 花子", "東京都千代田区霞が関1-2-3", 12345, "漏水調査済 &lt;要確認&gt; &amp; &quot;再検針&quot;"),
    ("鈴木 一郎", "大阪府大阪市北区梅田２丁目４−９", 0, "口座振替 'A&amp;B' 銀行"),
    ("𠮷田 翔", "沖縄県那覇市泉崎1丁目2番2号", 987654, "タブ&#9;改行&#10;復帰&#13;"),
]
