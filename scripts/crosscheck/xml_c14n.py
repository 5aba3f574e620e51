#!/usr/bin/env python3
"""Independent exclusive c14n (lxml / libxml2) for the gateway's cross-check tests.

stdin: JSON list of {"xml": str, "prefixes": [str] | null}
stdout: JSON list (one per input) of lists of base64 strings: the exclusive c14n 1.0
without comments of every element of the document, in document order, as produced by
`etree.tostring(el, method="c14n", exclusive=True, with_comments=False)`.
An input lxml refuses gives null.
"""
import base64
import json
import sys

from lxml import etree


def main() -> None:
    items = json.load(sys.stdin)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=False)
    out = []
    for item in items:
        try:
            root = etree.fromstring(item["xml"].encode("utf-8"), parser)
        except etree.XMLSyntaxError:
            out.append(None)
            continue
        prefixes = item.get("prefixes")
        res = []
        for el in root.iter(etree.Element):
            kw = {}
            if prefixes:
                kw["inclusive_ns_prefixes"] = prefixes
            c = etree.tostring(el, method="c14n", exclusive=True, with_comments=False, **kw)
            res.append(base64.b64encode(c).decode("ascii"))
        out.append(res)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
