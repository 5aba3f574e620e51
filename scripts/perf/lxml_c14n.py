#!/usr/bin/env python3
"""Peer for `xml_c14n/parse_exc_c14n` at 1 MiB (docs/PERFORMANCE.md).

lxml (libxml2): parse + exclusive XML c14n 1.0 without comments of the 1 MiB data profile
written by `sgw-bench-payloads`. Prints MB/s (10^6 bytes of input per second) and ms per
document, median of --repeat runs of --seconds each; also parse alone.

usage: lxml_c14n.py XML_PROFILE_1MiB.xml [--seconds 3] [--repeat 3]
"""
import argparse
import statistics
import time

from lxml import etree


def rate(fn, seconds):
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return (time.perf_counter() - t0) / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("xml")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    data = open(a.xml, "rb").read()
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)

    def parse():
        return etree.fromstring(data, parser)

    def parse_c14n():
        return etree.tostring(parse(), method="c14n", exclusive=True, with_comments=False)

    print(f"input {len(data)} bytes, c14n output {len(parse_c14n())} bytes")
    for name, fn in (("parse", parse), ("parse+exc-c14n", parse_c14n)):
        ts = [rate(fn, a.seconds) for _ in range(a.repeat)]
        t = statistics.median(ts)
        print(f"lxml {name}: median {t * 1e3:.2f} ms, {len(data) / t / 1e6:.1f} MB/s "
              f"(runs ms: {', '.join(f'{x * 1e3:.2f}' for x in ts)})")


if __name__ == "__main__":
    main()
