#!/usr/bin/env python3
"""Independent XML Signature / XML Encryption operations (python-xmlsec, signxml, lxml) for
the gateway's cross-check tests (SEC-XML-SIG-1/2, SEC-XML-ENC-1/2).

Subcommands (documents are read from a file, results written to stdout; exit status 0 means
success, 1 means the operation failed, e.g. an invalid signature):
  verify-signxml CERT FILE              signxml verifies the single signature (prints signed XML)
  verify-xmlsec CERT FILE [ID]          python-xmlsec verifies (ID: register Id attributes)
  decrypt-xmlsec KEY FILE               python-xmlsec decrypts the first EncryptedData
  sign-signxml KEY CERT FILE            signxml enveloped, rsa-sha256, sha256, exc-c14n
  sign-xmlsec KEY CERT FILE [ID]        python-xmlsec enveloped (URI="" or "#ID")
  verify-xmlsec-many CERT FILE...       python-xmlsec verifies each URI="" signature; prints
                                        the files that fail, one per line (exit 0 regardless)
  sign-xmlsec-many KEY CERT FILE...     python-xmlsec signs each file (URI="") in place
  encrypt-xmlsec CERT FILE ID AES OAEP  python-xmlsec encrypts the element with Id=ID;
                                        AES in aes128|aes192|aes256 (also des3,
                                        aes128gcm for negative vectors),
                                        OAEP in mgf1p|oaep11-sha1|oaep11-sha256|rsa15
  unwrap-key KEY FILE OUT               `cryptography` unwraps the first EncryptedKey (OAEP
                                        parameters as the document states) into OUT (binary)
                                        and prints the document with that EncryptedKey replaced
                                        by <ds:KeyName>session</ds:KeyName> (for the xmlsec1
                                        CLI, which lacks xmlenc11 rsa-oaep)
  sign-xmlsec-custom KEY CERT FILE SIGALG DIGALG REF...
                                        python-xmlsec signs with SIGALG in rsa-sha256|rsa-sha1,
                                        DIGALG in sha256|sha1, one Reference per REF
                                        "URI;T1,T2" (T in enveloped|exc|incl|xpath;
                                        "exc=p1+p2" adds an InclusiveNamespaces
                                        PrefixList, "#default" allowed);
                                        the Signature is appended to the root
"""
import sys

import xmlsec
from lxml import etree

DS = "http://www.w3.org/2000/09/xmldsig#"
XENC = "http://www.w3.org/2001/04/xmlenc#"
XENC11 = "http://www.w3.org/2009/xmlenc11#"
PARSER = etree.XMLParser(resolve_entities=False, no_network=True)


def load(path):
    with open(path, "rb") as f:
        return etree.fromstring(f.read(), PARSER)


def out(el):
    sys.stdout.buffer.write(etree.tostring(el, encoding="utf-8", xml_declaration=False))


def register_ids(root):
    for el in root.iter(etree.Element):
        if el.get("Id") is not None:
            xmlsec.tree.add_ids(root, ["Id"])
            break


def verify_signxml(cert, path):
    from signxml import XMLVerifier

    with open(cert) as f:
        pem = f.read()
    with open(path, "rb") as f:
        data = f.read()
    res = XMLVerifier().verify(data, x509_cert=pem, expect_references=1)
    out(res.signed_xml)


def verify_xmlsec(cert, path, ident=None):
    root = load(path)
    if ident:
        xmlsec.tree.add_ids(root, ["Id"])
    sigs = root.findall(".//{%s}Signature" % DS)
    if len(sigs) != 1:
        raise ValueError("expected exactly one Signature")
    node = sigs[0]
    ctx = xmlsec.SignatureContext()
    ctx.key = xmlsec.Key.from_file(cert, xmlsec.constants.KeyDataFormatCertPem)
    ctx.verify(node)


def decrypt_xmlsec(key, path):
    root = load(path)
    register_ids(root)
    manager = xmlsec.KeysManager()
    manager.add_key(xmlsec.Key.from_file(key, xmlsec.constants.KeyDataFormatPem))
    ctx = xmlsec.EncryptionContext(manager)
    node = root.find(".//{%s}EncryptedData" % XENC)
    res = ctx.decrypt(node)
    out(res.getroottree().getroot() if res.getparent() is not None else res)


def sign_signxml(key, cert, path):
    from signxml import XMLSigner, methods

    with open(key, "rb") as f:
        k = f.read()
    with open(cert) as f:
        c = f.read()
    signer = XMLSigner(
        method=methods.enveloped,
        signature_algorithm="rsa-sha256",
        digest_algorithm="sha256",
        c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#",
    )
    signed = signer.sign(load(path), key=k, cert=c)
    out(signed)


def sign_xmlsec(key, cert, path, ident=None):
    root = load(path)
    sig = xmlsec.template.create(
        root, xmlsec.constants.TransformExclC14N, xmlsec.constants.TransformRsaSha256
    )
    root.append(sig)
    ref = xmlsec.template.add_reference(
        sig, xmlsec.constants.TransformSha256, uri=("#" + ident) if ident else ""
    )
    xmlsec.template.add_transform(ref, xmlsec.constants.TransformEnveloped)
    xmlsec.template.add_transform(ref, xmlsec.constants.TransformExclC14N)
    ki = xmlsec.template.ensure_key_info(sig)
    xmlsec.template.add_x509_data(ki)
    if ident:
        xmlsec.tree.add_ids(root, ["Id"])
    ctx = xmlsec.SignatureContext()
    k = xmlsec.Key.from_file(key, xmlsec.constants.KeyDataFormatPem)
    k.load_cert_from_file(cert, xmlsec.constants.KeyDataFormatPem)
    ctx.key = k
    ctx.sign(sig)
    out(root)


AES = {
    "des3": (xmlsec.constants.TransformDes3Cbc, xmlsec.constants.KeyDataDes, 192),
    "aes128gcm": (xmlsec.constants.TransformAes128Gcm, xmlsec.constants.KeyDataAes, 128),
    "aes128": (xmlsec.constants.TransformAes128Cbc, xmlsec.constants.KeyDataAes, 128),
    "aes192": (xmlsec.constants.TransformAes192Cbc, xmlsec.constants.KeyDataAes, 192),
    "aes256": (xmlsec.constants.TransformAes256Cbc, xmlsec.constants.KeyDataAes, 256),
}


def encrypt_xmlsec(cert, path, ident, aes, oaep):
    root = load(path)
    target = root.xpath("//*[@Id=$i]", i=ident)[0]
    transform, kd, bits = AES[aes]
    enc = xmlsec.template.encrypted_data_create(
        root, transform, type=xmlsec.constants.TypeEncElement, ns="xenc"
    )
    xmlsec.template.encrypted_data_ensure_cipher_value(enc)
    ki = xmlsec.template.encrypted_data_ensure_key_info(enc, ns="dsig")
    if oaep == "rsa15":
        ek = xmlsec.template.add_encrypted_key(ki, xmlsec.constants.TransformRsaPkcs1)
    elif oaep == "mgf1p":
        ek = xmlsec.template.add_encrypted_key(ki, xmlsec.constants.TransformRsaOaep)
    else:
        ek = xmlsec.template.add_encrypted_key(ki, xmlsec.constants.TransformRsaOaep)
        em = ek.find("{%s}EncryptionMethod" % XENC)
        em.set("Algorithm", XENC11 + "rsa-oaep")
        dm = etree.SubElement(em, "{%s}DigestMethod" % DS)
        if oaep == "oaep11-sha256":
            dm.set("Algorithm", "http://www.w3.org/2001/04/xmlenc#sha256")
            mgf = etree.SubElement(em, "{%s}MGF" % XENC11)
            mgf.set("Algorithm", XENC11 + "mgf1sha256")
        else:
            dm.set("Algorithm", DS + "sha1")
    xmlsec.template.encrypted_data_ensure_cipher_value(ek)
    manager = xmlsec.KeysManager()
    manager.add_key(xmlsec.Key.from_file(cert, xmlsec.constants.KeyDataFormatCertPem))
    ctx = xmlsec.EncryptionContext(manager)
    ctx.key = xmlsec.Key.generate(kd, bits, xmlsec.constants.KeyDataTypeSession)
    res = ctx.encrypt_xml(enc, target)
    res.set("Id", ident)
    out(root)


def unwrap_key(key, path, out_path):
    import base64

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    root = load(path)
    ek = root.find(".//{%s}EncryptedKey" % XENC)
    em = ek.find("{%s}EncryptionMethod" % XENC)
    digests = {"http://www.w3.org/2000/09/xmldsig#sha1": hashes.SHA1(),
               "http://www.w3.org/2001/04/xmlenc#sha256": hashes.SHA256()}
    mgfs = {XENC11 + "mgf1sha1": hashes.SHA1(), XENC11 + "mgf1sha256": hashes.SHA256()}
    dm = em.find("{%s}DigestMethod" % DS)
    mgf = em.find("{%s}MGF" % XENC11)
    md = digests[dm.get("Algorithm")] if dm is not None else hashes.SHA1()
    mg = mgfs[mgf.get("Algorithm")] if mgf is not None else hashes.SHA1()
    with open(key, "rb") as f:
        k = serialization.load_pem_private_key(f.read(), None)
    cv = ek.find("{%s}CipherData/{%s}CipherValue" % (XENC, XENC)).text
    session = k.decrypt(base64.b64decode("".join(cv.split())),
                        padding.OAEP(mgf=padding.MGF1(mg), algorithm=md, label=None))
    with open(out_path, "wb") as f:
        f.write(session)
    ki = ek.getparent()
    ki.remove(ek)
    etree.SubElement(ki, "{%s}KeyName" % DS).text = "session"
    out(root)


TRANSFORMS = {
    "enveloped": xmlsec.constants.TransformEnveloped,
    "exc": xmlsec.constants.TransformExclC14N,
    "incl": xmlsec.constants.TransformInclC14N,
    "xpath": xmlsec.constants.TransformXPath,
}


def sign_xmlsec_custom(key, cert, path, sigalg, digalg, *refs):
    root = load(path)
    sig = xmlsec.template.create(
        root,
        xmlsec.constants.TransformExclC14N,
        {"rsa-sha256": xmlsec.constants.TransformRsaSha256,
         "rsa-sha1": xmlsec.constants.TransformRsaSha1}[sigalg],
    )
    root.append(sig)
    for spec in refs:
        uri, _, ts = spec.partition(";")
        ref = xmlsec.template.add_reference(
            sig,
            {"sha256": xmlsec.constants.TransformSha256,
             "sha1": xmlsec.constants.TransformSha1}[digalg],
            uri=uri,
        )
        for t in filter(None, ts.split(",")):
            t, _, plist = t.partition("=")
            node = xmlsec.template.add_transform(ref, TRANSFORMS[t])
            if plist:
                xmlsec.template.transform_add_c14n_inclusive_namespaces(node, plist.split("+"))
            if t == "xpath":
                xp = etree.SubElement(node, "{%s}XPath" % DS, nsmap={"dsig": DS})
                xp.text = "not(ancestor-or-self::dsig:Signature)"
    ki = xmlsec.template.ensure_key_info(sig)
    xmlsec.template.add_x509_data(ki)
    xmlsec.tree.add_ids(root, ["Id"])
    ctx = xmlsec.SignatureContext()
    k = xmlsec.Key.from_file(key, xmlsec.constants.KeyDataFormatPem)
    k.load_cert_from_file(cert, xmlsec.constants.KeyDataFormatPem)
    ctx.key = k
    ctx.sign(sig)
    out(root)


def verify_xmlsec_many(cert, *paths):
    key = xmlsec.Key.from_file(cert, xmlsec.constants.KeyDataFormatCertPem)
    for path in paths:
        try:
            root = load(path)
            ctx = xmlsec.SignatureContext()
            ctx.key = key
            ctx.verify(root.find(".//{%s}Signature" % DS))
        except Exception as e:  # report and go on
            print(f"{path}\t{type(e).__name__}: {e}")


def sign_xmlsec_many(key, cert, *paths):
    k = xmlsec.Key.from_file(key, xmlsec.constants.KeyDataFormatPem)
    k.load_cert_from_file(cert, xmlsec.constants.KeyDataFormatPem)
    for path in paths:
        root = load(path)
        sig = xmlsec.template.create(
            root, xmlsec.constants.TransformExclC14N, xmlsec.constants.TransformRsaSha256
        )
        root.append(sig)
        ref = xmlsec.template.add_reference(sig, xmlsec.constants.TransformSha256, uri="")
        xmlsec.template.add_transform(ref, xmlsec.constants.TransformEnveloped)
        xmlsec.template.add_transform(ref, xmlsec.constants.TransformExclC14N)
        xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(sig))
        ctx = xmlsec.SignatureContext()
        ctx.key = k
        ctx.sign(sig)
        with open(path, "wb") as f:
            f.write(etree.tostring(root, encoding="utf-8", xml_declaration=False))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    fn = {
        "verify-signxml": verify_signxml,
        "verify-xmlsec": verify_xmlsec,
        "decrypt-xmlsec": decrypt_xmlsec,
        "sign-signxml": sign_signxml,
        "sign-xmlsec": sign_xmlsec,
        "encrypt-xmlsec": encrypt_xmlsec,
        "sign-xmlsec-custom": sign_xmlsec_custom,
        "unwrap-key": unwrap_key,
        "verify-xmlsec-many": verify_xmlsec_many,
        "sign-xmlsec-many": sign_xmlsec_many,
    }[cmd]
    try:
        fn(*args)
    except Exception as e:  # any failure of the independent implementation
        print(f"{cmd} failed: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
