#!/usr/bin/env python3
"""Peer for `message/seal` and `message/open` at 1 KiB (docs/PERFORMANCE.md).

jwcrypto: JWS RS256 (typ, kid) nested in JWE RSA-OAEP-256 / A128CBC-HS256 (cty, kid), exactly
the DES-SEAL layout, over the 1 KiB envelope written by `sgw-bench-payloads`. Fresh RSA-2048
keys; keys are imported once (as our DataSecurity holds them). Prints seal/s and open/s,
best-of and median of --repeat runs of --seconds each.

usage: jwcrypto_seal.py ENVELOPE_1KiB.json [--seconds 3] [--repeat 3]
"""
import argparse
import statistics
import time

from jwcrypto import jwe, jwk, jws
from jwcrypto.common import json_encode


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("envelope")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    payload = open(a.envelope, "rb").read()
    sender = jwk.JWK.generate(kty="RSA", size=2048)
    recipient = jwk.JWK.generate(kty="RSA", size=2048)
    sender_pub = jwk.JWK.from_json(sender.export_public())
    recipient_pub = jwk.JWK.from_json(recipient.export_public())
    kid_s, kid_r = sender.thumbprint(), recipient.thumbprint()

    def seal():
        s = jws.JWS(payload)
        s.add_signature(sender, None, json_encode({"alg": "RS256", "typ": "sgw-msg", "kid": kid_s}))
        inner = s.serialize(compact=True)
        e = jwe.JWE(inner.encode(), json_encode(
            {"alg": "RSA-OAEP-256", "enc": "A128CBC-HS256", "cty": "sgw-msg+jws", "kid": kid_r}))
        e.add_recipient(recipient_pub)
        return e.serialize(compact=True)

    token = seal()

    def open_():
        e = jwe.JWE()
        e.deserialize(token, key=recipient)
        s = jws.JWS()
        s.deserialize(e.payload.decode())
        s.verify(sender_pub)
        assert s.payload == payload
        return s.payload

    open_()
    print(f"payload {len(payload)} bytes, token {len(token)} chars")
    for name, fn in (("seal", seal), ("open", open_)):
        rates = []
        for _ in range(a.repeat):
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < a.seconds:
                fn()
                n += 1
            rates.append(n / (time.perf_counter() - t0))
        print(f"jwcrypto {name}: median {statistics.median(rates):.0f}/s "
              f"(runs: {', '.join(f'{r:.0f}' for r in rates)})")


if __name__ == "__main__":
    main()
