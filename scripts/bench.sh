#!/usr/bin/env bash
# Regenerates the figures of docs/PERFORMANCE.md in one session: machine facts, the physical
# limits (`openssl speed`), the Criterion benches (release), the peers (jwcrypto, lxml,
# xmlsec1) and the Markdown tables (scripts/perf/report.py). The load average is logged
# before and after every step (target/perf/load.txt): the machine may be shared.
#
# usage: [PERF=dir] scripts/bench.sh [criterion filter, e.g. 'message|floor']   (~10-15 min)
# Needs: openssl, xmlsec1, /usr/bin/time, python3 with scripts/requirements.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
PERF=${PERF:-target/perf}   # one directory per run, e.g. PERF=target/perf/run2
mkdir -p "$PERF"
load() { echo "$(date -u +%H:%M:%S) $1: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$PERF/load.txt"; }
: > "$PERF/load.txt"

{
  date -u
  lscpu | grep -E 'Model name|^CPU\(s\)|Thread\(s\) per core|Core\(s\) per|MHz|Flags' | sed 's/\(Flags:\).*/\1 (aes: '"$(grep -c -w aes /proc/cpuinfo)"' cpus, sha_ni: '"$(grep -c -w sha_ni /proc/cpuinfo)"' cpus)/'
  free -h | head -2
  uname -srm
  rustc --version
  openssl version
} > "$PERF/machine.txt"
cat "$PERF/machine.txt"

load "payloads"
cargo run -q -p benches --bin sgw-bench-payloads -- "$PERF"

load "openssl speed"
openssl speed -seconds 2 rsa2048 > "$PERF/openssl_rsa2048.txt" 2>/dev/null
openssl speed -seconds 2 -evp aes-128-cbc > "$PERF/openssl_aes128cbc.txt" 2>/dev/null
openssl speed -seconds 2 -evp sha256 > "$PERF/openssl_sha256.txt" 2>/dev/null
tail -n 2 "$PERF"/openssl_*.txt

load "cargo bench"
cargo bench -p benches --bench security -- ${1:+"$1"} 2>&1 | tee "$PERF/criterion.txt"
rm -rf "$PERF/criterion" && cp -r target/criterion "$PERF/criterion"

load "peers"
python3 scripts/perf/jwcrypto_seal.py "$PERF/envelope_1KiB.json" | tee "$PERF/peer_jwcrypto.txt"
python3 scripts/perf/lxml_c14n.py "$PERF/xml_profile_1MiB.xml" | tee "$PERF/peer_lxml.txt"
python3 scripts/perf/xmlsec1_protect.py "$PERF/xml_profile_1MiB.xml" | tee "$PERF/peer_xmlsec1.txt"

load "openssl speed rsa2048 again"
openssl speed -seconds 2 rsa2048 > "$PERF/openssl_rsa2048_after.txt" 2>/dev/null
tail -n 1 "$PERF/openssl_rsa2048_after.txt"
load "done"

python3 scripts/perf/report.py "$PERF/criterion" "$PERF" | tee "$PERF/report.md"
