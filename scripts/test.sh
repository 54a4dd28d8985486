#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this): formatting, lints, then
# every crate's unit, integration and doc tests. Installs what the tests need when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }

# The examples' tests stop servers with kill(1); python3 is for later client tests.
if ! need kill; then
    apt-get update -qq && apt-get install -y -qq procps
fi

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace
