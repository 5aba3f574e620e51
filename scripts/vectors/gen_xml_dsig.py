#!/usr/bin/env python3
"""Generates vectors/data/xml-dsig.json: enveloped XML Signature verification
(SEC-XML-SIG-1/2, 表 4-8). Valid signatures are produced by independent signers (Debian
xmlsec1 CLI, python-xmlsec / libxmlsec1 1.3, signxml) and verified by python-xmlsec before
being written; invalid ones are wrapping attacks, tampering, refused algorithms/transforms,
wrong or weak keys. `signedC14n` (valid tests) is lxml's exclusive c14n of what the reference
covers (signature removed for URI="").

Usage: python3 scripts/vectors/gen_xml_dsig.py > vectors/data/xml-dsig.json
"""
import base64
import json
import re
import sys

from gen_xml_common import DS, RECORDS, Party, c14n, ok, profile, run, tool, write

EXC = "http://www.w3.org/2001/10/xml-exc-c14n#"
RSA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
ENV = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"


def xmlsec1_template(plain, uri, prefix="ds"):
    p = prefix + ":" if prefix else ""
    decl = f' xmlns:{prefix}="{DS}"' if prefix else f' xmlns="{DS}"'
    sig = (f'<{p}Signature{decl}>\n<{p}SignedInfo>\n'
           f'<{p}CanonicalizationMethod Algorithm="{EXC}"/>\n<{p}SignatureMethod Algorithm="{RSA256}"/>\n'
           f'<{p}Reference URI="{uri}"><{p}Transforms><{p}Transform Algorithm="{ENV}"/>'
           f'<{p}Transform Algorithm="{EXC}"/></{p}Transforms>'
           f'<{p}DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><{p}DigestValue/></{p}Reference>\n'
           f'</{p}SignedInfo>\n<{p}SignatureValue/>\n<{p}KeyInfo><{p}X509Data/></{p}KeyInfo>\n</{p}Signature>')
    return plain.replace("</sgw:DataProfile>", sig + "</sgw:DataProfile>")


def xmlsec1_sign(party, plain, uri="", id_node=None, prefix="ds"):
    t = write("tmpl.xml", xmlsec1_template(plain, uri, prefix))
    args = ["xmlsec1", "--sign", "--privkey-pem", f"{party.key_path},{party.cert_path}"]
    if id_node:
        args += ["--id-attr:Id", id_node]
    return run(args + [t])


def checked(party, xml, ident=None):
    f = write("check.xml", xml)
    args = ["verify-xmlsec", party.cert_path, f] + ([ident] if ident else [])
    assert ok(*args), "python-xmlsec does not verify a valid vector"
    return xml


def flip_b64(xml, tag):
    m = re.search(r"<(?:\w+:)?%s>([^<]+)<" % tag, xml)
    s, i = m.start(1), m.start(1) + 10
    c = "B" if xml[i] == "A" else "A"
    return xml[:i] + c + xml[i + 1:]


def between(s, start, end):
    i = s.index(start)
    return s[i:s.index(end, i) + len(end)]


def main():
    a = Party("signer")
    b = Party("other")
    weak = Party("weak1024", 1024)
    plain = profile(RECORDS)
    pf = write("plain.xml", plain)
    plain_default_ns = plain.replace("sgw:", "").replace("xmlns:sgw=", "xmlns=")
    pdf = write("plain2.xml", plain_default_ns)

    valid = []
    def add_valid(comment, flags, xml, ref, ident=None, prefixes=None):
        checked(a, xml, ident)
        exp = (c14n(xml, drop_signature=True, prefixes=prefixes) if ref == ""
               else c14n(xml, element_id=ref[1:], prefixes=prefixes))
        valid.append(dict(comment=comment, flags=flags, result="valid", xml=xml,
                          reference=ref, signedC14n=exp))

    x1 = xmlsec1_sign(a, plain)
    add_valid("xmlsec1 CLI, URI=\"\", ds prefix, line breaks in the signature", ["ValidSignature"], x1, "")
    add_valid("xmlsec1 CLI, URI=\"#header\" with --id-attr:Id Header", ["ValidSignature", "IdReference"],
              xmlsec1_sign(a, plain, "#header", "Header"), "#header", "h")
    add_valid("xmlsec1 CLI, Signature in the default namespace", ["ValidSignature"],
              xmlsec1_sign(a, plain, "", None, ""), "")
    x2 = tool("sign-xmlsec", a.key_path, a.cert_path, pf)
    add_valid("python-xmlsec, URI=\"\"", ["ValidSignature"], x2, "")
    x3 = tool("sign-xmlsec", a.key_path, a.cert_path, pf, "body")
    add_valid("python-xmlsec, URI=\"#body\"", ["ValidSignature", "IdReference"], x3, "#body", "i")
    add_valid("python-xmlsec, URI=\"\", profile in a default namespace", ["ValidSignature"],
              tool("sign-xmlsec", a.key_path, a.cert_path, pdf), "")
    add_valid("signxml 5 enveloped, rsa-sha256, sha256, exc-c14n", ["ValidSignature"],
              tool("sign-signxml", a.key_path, a.cert_path, pf), "")
    meta = write("plain-meta.xml", plain.replace(
        'xmlns:sgw="urn:sgw:profile:v1"', 'xmlns:sgw="urn:sgw:profile:v1" xmlns:meta="urn:meta"', 1))
    add_valid("python-xmlsec, URI=\"#header\", exc-c14n transform with InclusiveNamespaces "
              "PrefixList=\"meta\" (an in-scope prefix the Header does not use)",
              ["ValidSignature", "IdReference", "InclusiveNamespaces"],
              tool("sign-xmlsec-custom", a.key_path, a.cert_path, meta, "rsa-sha256", "sha256",
                   "#header;exc=meta"), "#header", "i", ["meta"])
    # Wrapping where the signed element is moved and an impostor takes its place: verifies,
    # but only the signed original may be handed to the caller.
    x4 = tool("sign-xmlsec", a.key_path, a.cert_path, pf, "header")
    header = between(x4, "<sgw:Header", "</sgw:Header>")
    impostor = header.replace(' Id="header"', "").replace("GW0001", "GW6666")
    moved = x4.replace(header, impostor, 1).replace(
        "</sgw:DataProfile>", f"<sgw:Wrapper>{header}</sgw:Wrapper></sgw:DataProfile>", 1)
    add_valid("wrapping: signed Header moved into a wrapper, impostor in its place; only the "
              "signed original (GW0001) may be returned", ["ValidSignature", "WrappingMoved"],
              moved, "#header", "i")

    invalid = []
    def add_invalid(comment, flags, xml, error):
        invalid.append(dict(comment=comment, flags=flags, result="invalid", xml=xml,
                            reference=None, signedC14n=None, error=error))

    add_invalid("signed content modified", ["ModifiedContent"], x2.replace("12345", "12346", 1),
                "DigestMismatch")
    add_invalid("SignatureValue modified", ["ModifiedSignature"], flip_b64(x2, "SignatureValue"),
                "SignatureInvalid")
    add_invalid("DigestValue modified", ["ModifiedSignature"], flip_b64(x2, "DigestValue"),
                "SignatureInvalid")
    add_invalid("element added after signing", ["ModifiedContent"],
                x2.replace("</sgw:DataProfile>", "<sgw:Extra/></sgw:DataProfile>"), "DigestMismatch")
    add_invalid("wrapping: a second element carries the signed Id", ["Wrapping"],
                x3.replace("<sgw:Header ", '<sgw:Body Id="body">evil</sgw:Body><sgw:Header ', 1),
                "Structure")
    add_invalid("wrapping: a second element carries the signed Id as ID", ["Wrapping"],
                x3.replace("<sgw:Header ", '<sgw:Body ID="body">evil</sgw:Body><sgw:Header ', 1),
                "Structure")
    sig = between(x2, "<Signature", "</Signature>")
    add_invalid("two Signature elements", ["MultipleSignatures"],
                x2.replace("</sgw:DataProfile>", sig + "</sgw:DataProfile>"), "Structure")
    custom = lambda *r: tool("sign-xmlsec-custom", a.key_path, a.cert_path, pf, *r)
    add_invalid("rsa-sha1 signature (valid for xmlsec)", ["WeakAlgorithm"],
                custom("rsa-sha1", "sha256", ";enveloped,exc"), "AlgorithmRefused")
    add_invalid("sha1 digest (valid for xmlsec)", ["WeakAlgorithm"],
                custom("rsa-sha256", "sha1", ";enveloped,exc"), "AlgorithmRefused")
    add_invalid("XPath transform (valid for xmlsec)", ["ForbiddenTransform"],
                custom("rsa-sha256", "sha256", ";xpath,exc"), "AlgorithmRefused")
    add_invalid("inclusive c14n transform (valid for xmlsec)", ["ForbiddenTransform"],
                custom("rsa-sha256", "sha256", ";enveloped,incl"), "AlgorithmRefused")
    add_invalid("enveloped transform without exc-c14n (valid for xmlsec)", ["ForbiddenTransform"],
                custom("rsa-sha256", "sha256", ";enveloped"), "AlgorithmRefused")
    add_invalid("two References (valid for xmlsec)", ["MultipleReferences"],
                custom("rsa-sha256", "sha256", ";enveloped,exc", "#header;exc"), "Structure")
    add_invalid("XSLT transform", ["ForbiddenTransform"],
                x2.replace(ENV, "http://www.w3.org/TR/1999/REC-xslt-19991116", 1), "AlgorithmRefused")
    add_invalid("hmac-sha256 SignatureMethod", ["WeakAlgorithm"],
                x2.replace(RSA256, "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256", 1),
                "AlgorithmRefused")
    add_invalid("Reference URI with an XPointer", ["Wrapping"],
                x2.replace('URI=""', 'URI="#xpointer(/)"', 1), "Structure")
    add_invalid("Reference URI to an external resource", ["Wrapping"],
                x2.replace('URI=""', 'URI="http://example.invalid/a.xml"', 1), "Structure")
    add_invalid("ds:Object inside the Signature", ["Wrapping"],
                x2.replace("</Signature>", "<Object>x</Object></Signature>", 1), "Structure")
    add_invalid("DOCTYPE prepended to a valid signed document", ["Dtd"],
                '<!DOCTYPE d [<!ENTITY e "x">]>' + x2, "DtdRefused")
    add_invalid("KeyInfo embeds a certificate other than the expected signer's", ["WrongKey"],
                re.sub(r"<X509Certificate>[^<]+</X509Certificate>",
                       "<X509Certificate>" + "".join(b.cert_pem.splitlines()[1:-1]) + "</X509Certificate>",
                       x2, count=1), "Structure")

    # Group 2: documents validly signed by `other`, checked against `signer`'s certificate.
    by_b = tool("sign-xmlsec", b.key_path, b.cert_path, pf)
    no_ki = re.sub(r"<KeyInfo>.*?</KeyInfo>", "", by_b, flags=re.S)
    wrong = [
        dict(comment="signed by another key, KeyInfo embeds that key's certificate",
             flags=["WrongKey"], result="invalid", xml=by_b, reference=None, signedC14n=None,
             error="Structure"),
        dict(comment="signed by another key, no KeyInfo", flags=["WrongKey"], result="invalid",
             xml=no_ki, reference=None, signedC14n=None, error="SignatureInvalid"),
    ]
    # Group 3: a valid signature by a 1024-bit key.
    by_weak = tool("sign-xmlsec", weak.key_path, weak.cert_path, pf)
    weak_tests = [dict(comment="valid signature by an RSA-1024 key", flags=["WeakKey"],
                       result="invalid", xml=by_weak, reference=None, signedC14n=None,
                       error="KeyRefused")]

    groups = [
        dict(type="XmlDsigVerify", requirements=["SEC-XML-SIG-1", "SEC-XML-SIG-2"],
             signerCertificatePem=a.cert_pem, keySize=2048, tests=valid + invalid),
        dict(type="XmlDsigVerify", requirements=["SEC-XML-SIG-2"],
             signerCertificatePem=a.cert_pem, keySize=2048, tests=wrong),
        dict(type="XmlDsigVerify", requirements=["SEC-XML-SIG-2"],
             signerCertificatePem=weak.cert_pem, keySize=1024, tests=weak_tests),
    ]
    tc = 0
    for g in groups:
        for t in g["tests"]:
            tc += 1
            t["tcId"] = tc
            if t["result"] == "valid":
                t.pop("error", None)  # only invalid tests carry an error (vectors lint)
    doc = {
        "algorithm": "XMLDSIG-ENVELOPED-RSA-SHA256-EXC-C14N",
        "generatorVersion": "gen_xml_dsig.py 1",
        "numberOfTests": tc,
        "header": [
            "Verify xml with signerCertificatePem (the caller-given certificate). valid: the",
            "signature verifies and the signed content (exclusive c14n) equals signedC14n;",
            "invalid: refused, error names the gateway's XmlError variant.",
        ],
        "notes": {
            "ValidSignature": {"bugType": "FUNCTIONALITY", "description": "Produced by an independent signer (xmlsec1, python-xmlsec or signxml) and verified by python-xmlsec."},
            "IdReference": {"bugType": "FUNCTIONALITY", "description": "Reference URI=\"#id\" to the element with that Id."},
            "InclusiveNamespaces": {"bugType": "FUNCTIONALITY", "description": "exc-c14n InclusiveNamespaces PrefixList is honoured."},
            "WrappingMoved": {"bugType": "WRAPPING", "description": "Signed element moved, impostor in its place: only the signed content may be used."},
            "Wrapping": {"bugType": "WRAPPING", "description": "XML signature wrapping (duplicate Ids, XPointer/external URIs, Objects)."},
            "ModifiedContent": {"bugType": "AUTH_BYPASS", "description": "Signed content changed after signing."},
            "ModifiedSignature": {"bugType": "AUTH_BYPASS", "description": "SignatureValue or DigestValue changed."},
            "MultipleSignatures": {"bugType": "WRAPPING", "description": "More than one Signature element."},
            "MultipleReferences": {"bugType": "WRAPPING", "description": "More than one Reference."},
            "WeakAlgorithm": {"bugType": "WEAK_PARAMS", "description": "Algorithm outside 表 4-8 (rsa-sha1, sha1, hmac)."},
            "ForbiddenTransform": {"bugType": "WEAK_PARAMS", "description": "Transform other than enveloped-signature followed by exc-c14n."},
            "Dtd": {"bugType": "MALFORMED_INPUT", "description": "DOCTYPE refused."},
            "WrongKey": {"bugType": "AUTH_BYPASS", "description": "Not signed by the expected signer."},
            "WeakKey": {"bugType": "WEAK_PARAMS", "description": "RSA key shorter than 2048 bits."},
        },
        "testGroups": groups,
    }
    json.dump(doc, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
