#!/usr/bin/env python3
"""Generates vectors/data/xml-c14n.json: Exclusive XML Canonicalization 1.0 without comments
(SEC-XML-SIG-1, 表 4-8). Expected outputs come from lxml (libxml2):
etree.tostring(el, method="c14n", exclusive=True, with_comments=False[, inclusive_ns_prefixes]).
Policy vectors (result "invalid") are inputs the gateway's parser must refuse (DTD, entities,
processing instructions, non-UTF-8), whatever lxml would do with them.

Usage: python3 scripts/vectors/gen_xml_c14n.py > vectors/data/xml-c14n.json
"""
import json
import sys

from lxml import etree

W3C = [
    ("exc-c14n §2.2 first example, apex n1:elem2: n3 is not visibly utilized on elem2",
     '<n0:local xmlns:n0="foo:bar" xmlns:n3="ftp://example.org">\n  <n1:elem2 xmlns:n1="http://example.net" xml:lang="en">\n    <n3:stuff xmlns:n3="ftp://example.org"/>\n  </n1:elem2>\n</n0:local>', 1, None),
    ("exc-c14n §2.2 second example, apex n1:elem2: xml:* attributes are not inherited",
     '<n2:pdu xmlns:n1="http://example.com" xmlns:n2="http://foo.example" xml:lang="fr" xml:space="retain">\n  <n1:elem2 xmlns:n1="http://example.net" xml:lang="en">\n    <n3:stuff xmlns:n3="ftp://example.org"/>\n  </n1:elem2>\n</n2:pdu>', 1, None),
    ("exc-c14n §2.2 second example, whole document",
     '<n2:pdu xmlns:n1="http://example.com" xmlns:n2="http://foo.example" xml:lang="fr" xml:space="retain">\n  <n1:elem2 xmlns:n1="http://example.net" xml:lang="en">\n    <n3:stuff xmlns:n3="ftp://example.org"/>\n  </n1:elem2>\n</n2:pdu>', 0, None),
    ("C14N 3.2 whitespace in document content is preserved",
     '<doc>\n   <clean>   </clean>\n   <dirty>   A   B   </dirty>\n   <mixed>\n      A\n      <clean>   </clean>\n      B\n      <dirty>   A   B   </dirty>\n      C\n   </mixed>\n</doc>', 0, None),
    ("C14N 3.3 start and end tags: empty elements expanded, attributes and namespaces sorted",
     '<doc>\n   <e1   />\n   <e2   ></e2>\n   <e3   name = "elem3"   id="elem3"   />\n   <e4   name="elem4"   id="elem4"   ></e4>\n   <e5 a:attr="out" b:attr="sorted" attr2="all" attr="I\'m"\n      xmlns:b="http://www.ietf.org"\n      xmlns:a="http://www.w3.org"\n      xmlns="http://example.org"/>\n   <e6 xmlns="" xmlns:a="http://www.w3.org">\n      <e7 xmlns="http://www.ietf.org">\n         <e8 xmlns="" xmlns:a="http://www.w3.org">\n            <e9 xmlns="" xmlns:a="http://www.ietf.org"/>\n         </e8>\n      </e7>\n   </e6>\n</doc>', 0, None),
    ("C14N 3.3, apex e7: default namespace rendered at the apex",
     '<doc>\n   <e6 xmlns="" xmlns:a="http://www.w3.org">\n      <e7 xmlns="http://www.ietf.org">\n         <e8 xmlns="" xmlns:a="http://www.w3.org">\n            <e9 xmlns="" xmlns:a="http://www.ietf.org"/>\n         </e8>\n      </e7>\n   </e6>\n</doc>', 2, None),
    ("C14N 3.4 character modifications and character references (without the DTD part)",
     '<doc>\n   <text>First line&#x0d;&#10;Second line</text>\n   <value>&#x32;</value>\n   <compute><![CDATA[value>"0" && value<"10" ?"valid":"error"]]></compute>\n   <compute expr=\'value>"0" &amp;&amp; value&lt;"10" ?"valid":"error"\'>valid</compute>\n   <norm attr=\' &apos;   &#x20;&#13;&#xa;&#9;   &apos; \'/>\n   <normNames attr=\'   A   &#x20;&#13;&#xa;&#9;   B   \'/>\n</doc>', 0, None),
    ("C14N 3.7 UTF-8 output of a character reference", '<doc>&#169;</doc>', 0, None),
]

EDGE = [
    ("default namespace set, undeclared with xmlns=\"\" and set again",
     '<r xmlns="urn:a"><s xmlns=""><t xmlns="urn:a"><u/></t></s><v xmlns="urn:b"/></r>', 0, None),
    ("apex inside an undeclared default namespace: no xmlns=\"\" at the apex",
     '<r xmlns="urn:d"><s xmlns=""><t/></s></r>', 1, None),
    ("same prefix redeclared with the same and with a different URI",
     '<p:r xmlns:p="urn:1"><p:s xmlns:p="urn:1"><p:t xmlns:p="urn:2"><p:u xmlns:p="urn:1"/></p:t></p:s></p:r>', 0, None),
    ("prefix visibly utilized only by an attribute; unused declarations dropped",
     '<r xmlns:a="urn:a" xmlns:b="urn:b" xmlns:c="urn:c"><s a:x="1"><t b:y="2" a:z="3"/></s></r>', 0, None),
    ("attributes sorted by namespace URI then local name, unqualified first",
     '<r xmlns:z="urn:a" xmlns:a="urn:z" a:b="1" z:c="2" d="3" c="4" z:a="5"/>', 0, None),
    ("attribute and text escaping: &amp; &lt; &quot; TAB LF CR in attributes, &amp; &lt; &gt; CR in text",
     '<r a="&lt;&gt;&amp;&quot;&apos;&#9;&#10;&#13;" b=\'"\'>&lt;&gt;&amp;&quot;&apos;&#9;&#10;&#13;]]&gt;</r>', 0, None),
    ("Japanese element names, attribute values and CDATA are output as UTF-8 unchanged",
     '<料金 xmlns="urn:suido" 種別="上水道"><氏名>山田 太郎</氏名><住所><![CDATA[東京都<港区>&芝]]></住所></料金>', 0, None),
    ("billing record subtree inherits the profile namespace from its ancestor",
     '<sgw:DataProfile xmlns:sgw="urn:sgw:profile:v1" xmlns:x="urn:unused"><sgw:Body Id="body"><sgw:Record seq="1" note="漏水調査済 &lt;要確認&gt; &amp; &quot;再検針&quot;"><sgw:F n="customerName">佐藤 花子</sgw:F><sgw:F n="address">福岡県福岡市博多区博多駅前3-25-21 ＡＢＣビル5F</sgw:F><sgw:F n="amount" unit="JPY">12345</sgw:F></sgw:Record></sgw:Body></sgw:DataProfile>', 1, None),
    ("xml:lang and xml:space are rendered as ordinary attributes, never declared",
     '<r xmlns="urn:d" xmlns:x="urn:x" xml:lang="ja"><x:s xml:space="preserve"> a </x:s><t x:q="1"/></r>', 0, None),
    ("prefix rebound to another URI below an element using it",
     '<a:r xmlns:a="urn:a"><b xmlns:a="urn:other" a:k="v"><a:c/></b></a:r>', 0, None),
    ("line endings CRLF and CR normalized to LF, in attributes to spaces",
     '<r a="x\r\ny">a\r\nb\rc</r>', 0, None),
    ("comments and whitespace outside the root are dropped (without comments)",
     '<!-- before -->\n<r><!-- inside --><s>1</s></r>\n<!-- after -->\n', 0, None),
    ("astral-plane character (𠮷) and half-width katakana",
     '<r a="𠮷野家">ｶﾀｶﾅ 𠮷</r>', 0, None),
    ("InclusiveNamespaces PrefixList renders an in-scope but unused prefix",
     '<r xmlns:p="urn:p" xmlns:q="urn:q"><s/></r>', 1, ["p"]),
    ("InclusiveNamespaces PrefixList entry not in scope is ignored",
     '<r xmlns:p="urn:p"><s/></r>', 1, ["p", "zz"]),
    ("InclusiveNamespaces prefix already rendered by an output ancestor is not repeated",
     '<r xmlns:p="urn:p"><s><t/></s></r>', 0, ["p"]),
]

# The gateway's XmlError variant each kind of policy refusal must give (security/xml/tree.rs).
ERROR_OF_FLAG = {
    "Dtd": "DtdRefused",
    "Entity": "EntityRefused",
    "ProcessingInstruction": "ProcessingInstructionRefused",
    "Encoding": "Malformed",
    "Malformed": "Malformed",
}

INVALID = [
    ("DTD with an internal entity (billion laughs seed) is refused", ["Dtd"],
     '<!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><r>&b;</r>'),
    ("DTD with an external entity (XXE) is refused", ["Dtd", "ExternalEntity"],
     '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'),
    ("a DOCTYPE without internal subset is refused", ["Dtd"],
     '<!DOCTYPE r SYSTEM "http://example.invalid/r.dtd"><r/>'),
    ("an undefined entity reference is refused", ["Entity"], '<r>&nbsp;</r>'),
    ("a processing instruction is refused", ["ProcessingInstruction"],
     '<?xml-stylesheet href="x.xsl"?><r/>'),
    ("a processing instruction inside the root is refused", ["ProcessingInstruction"],
     '<r><?php echo 1; ?></r>'),
    ("a non-UTF-8 encoding declaration is refused", ["Encoding"],
     '<?xml version="1.0" encoding="Shift_JIS"?><r/>'),
    ("an unbound prefix is refused", ["Malformed"], '<p:r/>'),
]


def main():
    tests = []
    tc = 0
    for comment, xml, idx, prefixes in W3C + EDGE:
        tc += 1
        root = etree.fromstring(xml.encode("utf-8"))
        el = list(root.iter(etree.Element))[idx]
        kw = {"inclusive_ns_prefixes": prefixes} if prefixes else {}
        out = etree.tostring(el, method="c14n", exclusive=True, with_comments=False, **kw)
        t = {
            "tcId": tc,
            "comment": comment,
            "flags": ["W3cExample"] if (comment, xml, idx, prefixes) in W3C else ["EdgeCase"],
            "result": "valid",
            "xml": xml,
            "elementIndex": idx,
            "inclusivePrefixes": prefixes or [],
            "expected": out.decode("utf-8"),
        }
        tests.append(t)
    invalid = []
    for comment, flags, xml in INVALID:
        tc += 1
        invalid.append({
            "tcId": tc, "comment": comment, "flags": flags, "result": "invalid",
            "xml": xml, "elementIndex": 0, "inclusivePrefixes": [], "expected": None,
            "error": ERROR_OF_FLAG[flags[0]],
        })
    doc = {
        "algorithm": "XML-EXC-C14N",
        "generatorVersion": "gen_xml_c14n.py 1 (lxml %s, libxml2 %s)" % (
            etree.__version__, ".".join(map(str, etree.LIBXML_VERSION))),
        "numberOfTests": tc,
        "header": [
            "Exclusive XML Canonicalization 1.0 without comments of the element at elementIndex",
            "(document order, 0 = root) with the InclusiveNamespaces PrefixList inclusivePrefixes.",
            "Expected outputs produced by lxml/libxml2, not by the gateway.",
        ],
        "notes": {
            "W3cExample": {"bugType": "FUNCTIONALITY",
                           "description": "Example from the W3C C14N 1.0 / exc-c14n recommendations (DTD parts removed)."},
            "EdgeCase": {"bugType": "EDGE_CASE",
                         "description": "Namespace rendering, attribute ordering, escaping or Japanese text corner case."},
            "Dtd": {"bugType": "MALFORMED_INPUT",
                    "description": "Documents with a DOCTYPE are refused (no entity expansion, no XXE)."},
            "ExternalEntity": {"bugType": "MALFORMED_INPUT",
                               "description": "External entities must never be resolved."},
            "Entity": {"bugType": "MALFORMED_INPUT",
                       "description": "Only the five predefined entities and character references are accepted."},
            "ProcessingInstruction": {"bugType": "MALFORMED_INPUT",
                                      "description": "Processing instructions other than the XML declaration are refused."},
            "Encoding": {"bugType": "MALFORMED_INPUT", "description": "Only UTF-8 documents are accepted."},
            "Malformed": {"bugType": "MALFORMED_INPUT", "description": "Not namespace-well-formed."},
        },
        "testGroups": [
            {"type": "XmlC14nTest", "requirements": ["SEC-XML-SIG-1"],
             "source": "lxml exclusive c14n", "tests": tests},
            {"type": "XmlParserPolicyTest", "requirements": ["SEC-XML-SIG-2", "SEC-XML-ENC-2"],
             "source": "gateway parser policy (DESIGN.md, security/xml/tree.rs)", "tests": invalid},
        ],
    }
    json.dump(doc, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
