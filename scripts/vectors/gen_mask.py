#!/usr/bin/env python3
"""Generate vectors/data/masking.json (SEC-MASK-1/2, DES-MASK).

Made with the independent Python implementation scripts/crosscheck/mask.py (written from the
module doc of gateway/src/security/mask.rs, Python `cryptography` only), never with the Rust
code. Masking is deterministic, so `Mask` cases are exact known-answer tests.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "crosscheck"))
from mask import mask, unmask  # noqa: E402

from common import VectorFile, note  # noqa: E402

GEN = "scripts/vectors/gen_mask.py (scripts/crosscheck/mask.py, cryptography)"
NOTES = {
    "KnownAnswer": note("FUNCTIONALITY", "Deterministic masked text computed by the Python implementation."),
    "OldKey": note("FUNCTIONALITY", "Masked under a rotated-out key that is kept for unmasking."),
    "WrongKey": note("MISSING_CHECK", "Same keyId, different key: must not unmask."),
    "WrongColumn": note("MISSING_CHECK", "AAD (column name) differs: must not unmask."),
    "Modified": note("CCA", "Masked text changed."),
    "UnknownKeyId": note("MISSING_CHECK", "keyId not held."),
    "Malformed": note("MALFORMED", "Not of the form m1.<keyId>.<base64url>."),
}

VALUES = [("customerName", "山田太郎"), ("customerName", ""), ("address", "東京都千代田区丸の内１－１－１"),
          ("meterId", "M-000123"), ("phone", "03-1234-5678"), ("note", "comma, \"quote\"\nnewline"),
          ("note", "emoji 🚰"), ("customerName", "ﾔﾏﾀﾞ ﾀﾛｳ"), ("amount", "12345")]


def main():
    k1, k2 = bytes(range(32)), bytes(range(100, 132))
    vf = VectorFile("masking.json", "SGW-MASK-AES256GCM-DETERMINISTIC", GEN,
                    ["Masked field m1.<keyId>.<base64url(nonce||ct||tag)> (DES-MASK).",
                     "Harness: MaskingKeys from `keys` (hex) with `currentKeyId`; Mask: mask(column, value) "
                     "must equal `masked`; Unmask: unmask(column, masked) must equal `value` or fail."], NOTES)
    keys = {"k1": k1.hex(), "k2": k2.hex()}
    g = vf.group("Mask", ["SEC-MASK-1"], keys=keys, currentKeyId="k2")
    for col, v in VALUES:
        vf.case(g, f"mask {col}={v!r}", "valid", ["KnownAnswer"], column=col, value=v, masked=mask("k2", k2, col, v))
    g = vf.group("Unmask", ["SEC-MASK-2"], keys=keys, currentKeyId="k2")
    for col, v in VALUES:
        m = mask("k2", k2, col, v)
        assert unmask(keys, col, m) == v
        vf.case(g, f"unmask {col}", "valid", ["KnownAnswer"], column=col, value=v, masked=m)
    m = mask("k1", k1, "customerName", "佐藤花子")
    vf.case(g, "masked under old key k1", "valid", ["OldKey"], column="customerName", value="佐藤花子", masked=m)
    wrong = mask("k2", bytes(32), "customerName", "佐藤花子")
    vf.case(g, "k2 label but another key", "invalid", ["WrongKey"], column="customerName", value="佐藤花子", masked=wrong)
    m = mask("k2", k2, "customerName", "佐藤花子")
    vf.case(g, "unmasked under another column", "invalid", ["WrongColumn"], column="address", value="佐藤花子", masked=m)
    t = m[:-3] + ("A" if m[-3] != "A" else "B") + m[-2:]
    vf.case(g, "tag modified", "invalid", ["Modified"], column="customerName", value="佐藤花子", masked=t)
    i = len("m1.k2.") + 2
    t = m[:i] + ("A" if m[i] != "A" else "B") + m[i + 1:]
    vf.case(g, "nonce modified", "invalid", ["Modified"], column="customerName", value="佐藤花子", masked=t)
    vf.case(g, "keyId k9 not held", "invalid", ["UnknownKeyId"], column="customerName", value="佐藤花子",
            masked=mask("k9", k2, "customerName", "佐藤花子"))
    vf.case(g, "keyId relabelled k1", "invalid", ["WrongKey"], column="customerName", value="佐藤花子",
            masked=m.replace("m1.k2.", "m1.k1.", 1))
    for bad in ["佐藤花子", "m1.k2.", "m1.k2", "m2." + m[3:], "m1.k-2." + m[6:], "m1.k2.AAAA", "m1.k2.@@@@"]:
        vf.case(g, f"malformed {bad[:12]!r}", "invalid", ["Malformed"], column="customerName", value="佐藤花子", masked=bad)
    vf.write()


if __name__ == "__main__":
    main()
