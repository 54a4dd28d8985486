#!/usr/bin/env bash
# The "Scaling out" walkthrough, as the book shows it and examples/tests/fleet.rs runs it (on
# free loopback ports): HAProxy in front of two chat nodes, NATS between them, a chat across
# the two, one node restarted under load, the other stopped and taken out by health checks.
# Needs nats-server, haproxy, wrk, curl and python3-websockets. Exits non-zero at the first
# check that fails; stops everything it started when it ends.
set -euo pipefail
CHAT=${CHAT:-target/release/chat}
FRONT=${FRONT:-8080} NATS=${NATS:-4222} NODE_A=${NODE_A:-8091} NODE_B=${NODE_B:-8092}
WORK=${WORK:-$(mktemp -d)}
trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT
cd "$WORK"
# Runs its arguments until they succeed, for at most 10 s.
eventually() { for _ in $(seq 100); do "$@" && return; sleep 0.1; done; echo "gave up on: $*"; return 1; }

# ANCHOR: nodes
nats-server -a 127.0.0.1 -p "$NATS" > nats.log 2>&1 &

# One chat node: behind the balancer (PROXY protocol), bridged through NATS, and ready to
# hand its socket to a new build started the same way.
node() {
    SMOKE_HTTP="127.0.0.1:$2" SMOKE_PROXY_PROTOCOL=on SMOKE_HANDOFF="$WORK/$1.sock" \
        SMOKE_CLUSTER="nats://127.0.0.1:$NATS" "$CHAT" >> "$1.log" 2>&1 &
    declare -g "pid_$1=$!"
}
node a "$NODE_A"
node b "$NODE_B"
# ANCHOR_END: nodes
eventually grep -q listening a.log
eventually grep -q listening b.log

# ANCHOR: haproxy
cat > haproxy.cfg <<EOF
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h            # WebSockets
    retries 3
    # A kept-alive connection to a draining node may close as a request leaves on it:
    # send that request again, to a node that serves.
    retry-on conn-failure empty-response
    option redispatch

frontend chat
    bind 127.0.0.1:$FRONT
    default_backend nodes

backend nodes
    balance roundrobin
    option httpchk GET /
    server a 127.0.0.1:$NODE_A send-proxy-v2 check check-send-proxy inter 500ms fall 2
    server b 127.0.0.1:$NODE_B send-proxy-v2 check check-send-proxy inter 500ms fall 2
EOF
haproxy -f haproxy.cfg > haproxy.log 2>&1 &
# ANCHOR_END: haproxy
eventually curl -sf -o /dev/null "http://127.0.0.1:$FRONT/"

# ANCHOR: chat
# Two people in one room, through the balancer: round robin puts them on different nodes.
# Bob says hello until Ann hears it (node a subscribes on the broker once Ann joins).
python3 - "$FRONT" <<'EOF'
import sys, time
from websockets.sync.client import connect
url = f"ws://127.0.0.1:{sys.argv[1]}/ws?room=fleet&name="
with connect(url + "ann") as ann, connect(url + "bob") as bob:
    for attempt in range(50):
        bob.send(f"hello {attempt}")
        try:
            while not (line := ann.recv(timeout=0.2)).startswith("bob: hello"):
                pass
            print(f"ann heard {line!r} across the nodes")
            break
        except TimeoutError:
            pass
    else:
        sys.exit("ann never heard bob")
EOF
# ANCHOR_END: chat

# ANCHOR: restart
# A new build of node a takes its socket over while wrk runs through the balancer; the old
# process drains and exits. wrk must see no error and no non-2xx answer.
wrk -t1 -c16 -d6s --latency "http://127.0.0.1:$FRONT/" > wrk.txt &
load=$!
sleep 2
node a "$NODE_A"
wait "$load"
grep -q "a new process serves from" a.log
if grep -Eq "Socket errors|Non-2xx" wrk.txt; then cat wrk.txt; exit 1; fi
grep "requests in" wrk.txt
# ANCHOR_END: restart

# ANCHOR: health
# Node b stops (SIGTERM: it drains); HAProxy's health checks take it out, and every request
# goes to node a.
kill -TERM "$pid_b"
sleep 2
for _ in $(seq 20); do curl -sf -o /dev/null "http://127.0.0.1:$FRONT/"; done
echo "20 requests answered with node b gone"
# ANCHOR_END: health
