#!/usr/bin/env python3
"""Turns one run's figures into the tables of docs/PERFORMANCE.md.

Reads Criterion's results (target/criterion/**/new/{benchmark,estimates}.json), the three
`openssl speed` outputs and the peer outputs saved by scripts/bench.sh in PERF_DIR, and prints
Markdown: per operation and size the median, throughput, the lower bound of the model below
and the ratio median / bound, and the peers with their ratios.

Lower-bound model (seconds; n = input bytes; n1 = 4n/3 = base64 of n):
  Rs = one RSA-2048 private op (sign, OAEP unwrap), Rv = one public op (verify, OAEP wrap),
  from `openssl speed rsa2048`; A(b) = b / AES-128-CBC rate, H(b) = b / SHA-256 rate, from
  `openssl speed -evp` at 16 KiB blocks (HMAC-SHA-256 counted as H); E(b), D(b) = base64url
  encode / decode of b bytes at the rate of the in-run floor/b64url_* benches (openssl speed
  has no base64); Ad(b) = CBC *decryption*, which pipelines and is ~2-3x faster than CBC
  encryption, at the rate of the in-run floor/aes128cbc_dec bench (openssl speed -evp
  measures encryption only). AES-256 = AES-128 time x 14/10 (rounds).
  message, json_profile seal : Rs + Rv + E(n) + H(n1) + A(n1) + H(n1) + E(n1)
  message, json_profile open : Rs + Rv + D(4/3 n1) + H(n1) + Ad(n1) + D(n1) + H(n1)
  xml_profile protect        : Rv + Rs + A(n) + E(n) + H(n1)
  xml_profile open           : Rv + Rs + H(n1) + D(n1) + Ad(n)
  xml_dsig sign / verify     : Rs + H(n) / Rv + H(n)
  file sign / verify         : Rs + H(n) / Rv + H(n)        (DEFLATE/INFLATE not counted)
  file encrypt / decrypt     : Rv + A(n) + H(n) / Rs + Ad(n) + H(n)
  mask_fields / unmask_fields: A(n) + H(n) + E(n) / Ad(n) + H(n) + D(n)  (GCM counted as CBC)
  xml_c14n, mask_field, floor: no bound (peers or floors themselves).

usage: report.py [CRITERION_DIR] [PERF_DIR] [OTHER_RUN_PERF_DIR]
(the optional third argument adds a column with the medians of another run, read from
OTHER_RUN_PERF_DIR/criterion, to show run-to-run spread; ratios then use the faster of the two
medians, the one less disturbed by other processes on a shared machine)
"""
import glob
import json
import os
import re
import sys

CRIT = sys.argv[1] if len(sys.argv) > 1 else "target/criterion"
PERF = sys.argv[2] if len(sys.argv) > 2 else "target/perf"
OTHER = sys.argv[3] if len(sys.argv) > 3 else None


def load_criterion(crit=CRIT):
    out = {}
    for bj in glob.glob(os.path.join(crit, "**", "new", "benchmark.json"), recursive=True):
        b = json.load(open(bj))
        e = json.load(open(os.path.join(os.path.dirname(bj), "estimates.json")))
        key = (b["group_id"], b.get("function_id") or "", b.get("value_str") or "")
        tp = b.get("throughput") or {}
        out[key] = {
            "median": e["median"]["point_estimate"] * 1e-9,
            "lo": e["median"]["confidence_interval"]["lower_bound"] * 1e-9,
            "hi": e["median"]["confidence_interval"]["upper_bound"] * 1e-9,
            "bytes": tp.get("Bytes") or tp.get("BytesDecimal"),
            "elements": tp.get("Elements"),
        }
    return out


def openssl_speed():
    def read(name):
        p = os.path.join(PERF, name)
        return open(p).read() if os.path.exists(p) else ""

    r = {}
    m = re.search(r"^rsa\s+2048 bits\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)", read("openssl_rsa2048.txt"), re.M)
    if m:
        r["rsa_sign"], r["rsa_verify"] = float(m.group(1)), float(m.group(2))
    for fname, label, key in (("openssl_aes128cbc.txt", "AES-128-CBC", "aes"),
                              ("openssl_sha256.txt", "sha256", "sha")):
        for line in read(fname).splitlines():
            if line.lower().startswith(label.lower()):
                vals = re.findall(r"([\d.]+)k", line)
                if vals:
                    r[key] = float(vals[-1]) * 1000  # bytes/s at 16 KiB blocks
    return r


def peers():
    def read(name):
        p = os.path.join(PERF, name)
        return open(p).read() if os.path.exists(p) else ""

    r = {}
    t = read("peer_jwcrypto.txt")
    for op in ("seal", "open"):
        m = re.search(rf"jwcrypto {op}: median ([\d.]+)/s", t)
        if m:
            r[("message", op, "1KiB")] = ("jwcrypto 1.6.1", 1 / float(m.group(1)))
    t = read("peer_lxml.txt")
    m = re.search(r"lxml parse\+exc-c14n: median ([\d.]+) ms", t)
    if m:
        r[("xml_c14n", "parse_exc_c14n", "1MiB")] = ("lxml 6.1.3", float(m.group(1)) / 1e3)
    m = re.search(r"lxml parse: median ([\d.]+) ms", t)
    if m:
        r[("xml_c14n", "parse", "1MiB")] = ("lxml 6.1.3", float(m.group(1)) / 1e3)
    t = read("peer_xmlsec1.txt")
    for op, label in (("protect_aes128", "protect"), ("open_aes128", "open")):
        m = re.search(rf"xmlsec1 {label} \([^)]*\): median ([\d.]+) ms", t)
        if m:
            r[("xml_profile", op, "1MiB")] = ("xmlsec1 1.2.37 (2 processes)", float(m.group(1)) / 1e3)
    return r


def fmt_t(s):
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} µs"


def main():
    c = load_criterion()
    other = load_criterion(os.path.join(OTHER, "criterion")) if OTHER else {}
    sp = openssl_speed()
    pe = peers()
    if not sp:
        sys.exit(f"no openssl speed output in {PERF}")
    Rs, Rv = 1 / sp["rsa_sign"], 1 / sp["rsa_verify"]
    A = lambda b: b / sp["aes"]  # noqa: E731
    H = lambda b: b / sp["sha"]  # noqa: E731
    enc = c.get(("floor", "b64url_enc", "1MiB"))
    dec = c.get(("floor", "b64url_dec", "1MiB"))
    e_rate = enc["bytes"] / enc["median"] if enc else 1.5e9
    d_rate = dec["bytes"] / dec["median"] if dec else 1.0e9
    adec = c.get(("floor", "aes128cbc_dec", "1MiB"))
    ad_rate = adec["bytes"] / adec["median"] if adec else sp["aes"]
    Ad = lambda b: b / ad_rate  # noqa: E731
    E = lambda b: b / e_rate  # noqa: E731
    D = lambda b: b / d_rate  # noqa: E731

    def bound(g, f, n):
        if not n:
            return None
        n1 = n * 4 / 3
        aes, aesd = A, Ad
        if f.endswith("aes256"):
            aes = lambda b: A(b) * 14 / 10  # noqa: E731
            aesd = lambda b: Ad(b) * 14 / 10  # noqa: E731
        table = {
            ("message", "seal"): lambda: Rs + Rv + E(n) + 2 * H(n1) + A(n1) + E(n1),
            ("message", "open"): lambda: Rs + Rv + D(n1 * 4 / 3) + 2 * H(n1) + Ad(n1) + D(n1),
            ("xml_profile", "protect"): lambda: Rv + Rs + aes(n) + E(n) + H(n1),
            ("xml_profile", "open"): lambda: Rv + Rs + H(n1) + D(n1) + aesd(n),
            ("xml_dsig", "sign"): lambda: Rs + H(n),
            ("xml_dsig", "verify"): lambda: Rv + H(n),
            ("file", "sign"): lambda: Rs + H(n),
            ("file", "verify"): lambda: Rv + H(n),
            ("file", "encrypt"): lambda: Rv + A(n) + H(n),
            ("file", "decrypt"): lambda: Rs + Ad(n) + H(n),
            ("mask", "mask"): lambda: A(n) + H(n) + E(n),
            ("mask", "unmask"): lambda: Ad(n) + H(n) + D(n),
        }
        gg = "message" if g == "json_profile" else g
        ff = f.split("_")[0]
        if g == "mask" and not f.endswith("_fields"):
            return None
        fn = table.get((gg, ff))
        return fn() if fn and n else None

    print(f"openssl speed: RSA-2048 {sp['rsa_sign']:.0f} sign/s, {sp['rsa_verify']:.0f} verify/s; "
          f"AES-128-CBC {sp['aes'] / 1e9:.2f} GB/s; SHA-256 {sp['sha'] / 1e9:.2f} GB/s; "
          f"in-run: base64url enc {e_rate / 1e9:.2f} GB/s, dec {d_rate / 1e9:.2f} GB/s, "
          f"AES-128-CBC dec {ad_rate / 1e9:.2f} GB/s\n")
    order = ["message", "json_profile", "xml_profile", "xml_dsig", "xml_c14n", "file", "mask", "floor"]
    size_order = {"1KiB": 0, "64KiB": 1, "1MiB": 2}
    keys = sorted(c, key=lambda k: (order.index(k[0]) if k[0] in order else 99, k[1],
                                    size_order.get(k[2], -1), k[2]))
    oh = " other run |" if other else ""
    print(f"| operation | size | median (95% CI) |{oh} throughput | lower bound | ratio | peer | ratio to peer |")
    print("|---|---|---|" + ("---|" if other else "") + "---|---|---|---|---|")
    for k in keys:
        v = c[k]
        g, f, s = k
        n = v["bytes"]
        tp = f"{n / v['median'] / 1e6:.1f} MB/s" if n else (
            f"{1 / v['median']:.0f} /s")
        b = bound(g, f, n)
        # With another run, ratios use the faster of the two medians: on a shared machine the
        # lower figure is the one less disturbed by other processes.
        best = min(v["median"], other[k]["median"]) if k in other else v["median"]
        btxt, rtxt = (fmt_t(b), f"{best / b:.1f}×") if b else ("—", "—")
        p = pe.get(k)
        ptxt, prat = (f"{p[0]}: {fmt_t(p[1])}", f"{best / p[1]:.2f}×") if p else ("", "")
        size = f"{s} ({n:,} B)" if n and s else (s or "—")
        ot = f" {fmt_t(other[k]['median'])} |" if k in other else (" |" if other else "")
        print(f"| {g}/{f} | {size} | {fmt_t(v['median'])} ({fmt_t(v['lo'])}–{fmt_t(v['hi'])}) |{ot}"
              f" {tp} | {btxt} | {rtxt} | {ptxt} | {prat} |")


if __name__ == "__main__":
    main()
