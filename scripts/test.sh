#!/usr/bin/env bash
# The project's test command (README): every Rust test of the workspace, then the
# independent cross-checks (Python jwcrypto/cryptography/lxml/xmlsec/signxml, xmlsec1) and the
# slower suites. Needs the tools that .ci/run installs.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets
cargo test --workspace --doc
if [ -d scripts/crosscheck.d ]; then
  for s in scripts/crosscheck.d/*.sh; do
    [ -e "$s" ] || continue
    echo "== cross-check: $s"
    bash "$s"
  done
fi
