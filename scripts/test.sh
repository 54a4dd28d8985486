#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this): formatting, lints, then
# every crate's unit, integration and doc tests, then each fuzz target for a bounded time.
# Installs what the tests need when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }

# Real clients the tests talk to: kill(1) stops example servers, curl and python3's
# http.client speak HTTP, wrk loads it, chromium loads the chat example's page.
missing=()
need kill || missing+=(procps)
need curl || missing+=(curl)
need wrk || missing+=(wrk)
need python3 || missing+=(python3)
need chromium || missing+=(chromium)
# ip(8) builds the network namespaces of the packet-ring test; setpriv drops CAP_NET_RAW.
need ip || missing+=(iproute2)
need setpriv || missing+=(util-linux)
# nft(8) drops a tenth of the game test's packets between its namespaces.
need nft || missing+=(nftables)
# HAProxy stands in front of the PROXY protocol test's server and the Scaling out walkthrough's
# nodes, as a load balancer would.
need haproxy || missing+=(haproxy)
# nats-server carries topics between the cluster tests' nodes.
need nats-server || missing+=(nats-server)
# Prometheus scrapes the metrics test's server; promtool checks its exposition.
need promtool || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# Python's `websockets` (its asyncio client, version 13 and later) for the chat example's test.
if ! python3 -c 'import websockets.asyncio.client' 2>/dev/null; then
    echo "== installing python websockets"
    python3 -m pip install -q 'websockets>=13'
fi

# The Autobahn TestSuite (WebSocket conformance) runs on the Python 2.7 the machine image ships
# through pyenv; its packages go under target/, installed once.
pyenv_root="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"
SMOKE_AUTOBAHN_PYTHON="${SMOKE_AUTOBAHN_PYTHON:-$(ls "$pyenv_root"/versions/2.7*/bin/python2.7 2>/dev/null | tail -1)}"
SMOKE_AUTOBAHN_DIR="${SMOKE_AUTOBAHN_DIR:-$PWD/target/autobahn}"
if [ -z "$SMOKE_AUTOBAHN_PYTHON" ]; then
    echo "no Python 2.7 under $pyenv_root/versions: the Autobahn TestSuite needs it" >&2
    exit 1
fi
if [ ! -d "$SMOKE_AUTOBAHN_DIR/autobahntestsuite" ]; then
    echo "== installing the Autobahn TestSuite into $SMOKE_AUTOBAHN_DIR"
    "$SMOKE_AUTOBAHN_PYTHON" -m pip install -q --disable-pip-version-check --target "$SMOKE_AUTOBAHN_DIR" autobahntestsuite
fi
export SMOKE_AUTOBAHN_PYTHON SMOKE_AUTOBAHN_DIR

# mdBook builds the guide in the book test.
if ! need mdbook; then
    echo "== installing mdbook"
    cargo install --locked mdbook
fi

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p smoke --features fuzzing -- -D warnings
# A build without TLS stays possible (`default-features = false`).
cargo clippy -p smoke --no-default-features -- -D warnings
echo "== cargo test"
cargo test --workspace
# Every fuzz target, bounded (scripts/fuzz.sh SECONDS runs them longer): the nightly toolchain
# the machine image ships, cargo-fuzz installed on first use.
echo "== fuzzing, ${SMOKE_FUZZ_SECONDS:-20} s per target"
bash scripts/fuzz.sh "${SMOKE_FUZZ_SECONDS:-20}"
