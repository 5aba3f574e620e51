#!/usr/bin/env bash
# The project's test command (README): every Rust test of the workspace. The independent
# cross-checks (xmlsec1, Python jwcrypto/cryptography/lxml/xmlsec/signxml/jsonschema, mosquitto,
# curl, headless Chromium) are Rust integration tests that call those programs, and the model
# checks run at their default bounds (SGW_MODEL_BIG=1 for the big ones). Needs the tools that
# .ci/run installs.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets
cargo test --workspace --doc
