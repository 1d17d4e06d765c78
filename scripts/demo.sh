#!/usr/bin/env bash
# make demo: a pysstp server and a pysstp client in two network namespaces joined by a veth pair,
# a ping and a 5-second TCP transfer through the tunnel, a summary, and everything torn down again
# (also on Ctrl-C). Needs root; uses only addresses inside the namespaces it creates.
set -euo pipefail

PYSSTP=${PYSSTP:-.venv/bin/pysstp}
PYTHON=${PYTHON:-.venv/bin/python}
TAG=$$
SRV=pysstp-demo-s$TAG
CLI=pysstp-demo-c$TAG
WORK=$(mktemp -d /tmp/pysstp-demo.XXXXXX)
SERVER_PID=
CLIENT_PID=
SINK_PID=

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
  set +e
  say "tearing down"
  for pid in $CLIENT_PID $SINK_PID $SERVER_PID; do
    kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  ip netns del "$CLI" 2>/dev/null
  ip netns del "$SRV" 2>/dev/null
  rm -rf "$WORK"
  echo "namespaces, TUN devices and processes removed"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || { echo "make demo needs root (network namespaces, TUN devices)" >&2; exit 1; }

say "two network namespaces joined by a veth pair"
ip netns add "$SRV"
ip netns add "$CLI"
ip link add "vds$TAG" netns "$SRV" type veth peer name "vdc$TAG" netns "$CLI"
ip -n "$SRV" addr add 10.200.9.1/24 dev "vds$TAG"
ip -n "$CLI" addr add 10.200.9.2/24 dev "vdc$TAG"
for ns in "$SRV" "$CLI"; do ip -n "$ns" link set lo up; done
ip -n "$SRV" link set "vds$TAG" up
ip -n "$CLI" link set "vdc$TAG" up
echo "server 10.200.9.1 <-> client 10.200.9.2"

say "a certificate and a user"
"$PYTHON" - "$WORK" <<'EOF'
import sys
from pathlib import Path
sys.path.insert(0, "tests")
from helpers.loopback import make_certificate
make_certificate(Path(sys.argv[1]))
EOF
printf 'demopass\n' > "$WORK/password"
"$PYSSTP" user add demo --users "$WORK/users.toml" --password-file "$WORK/password"

say "pysstp server (in $SRV)"
ip netns exec "$SRV" "$PYSSTP" server --cert "$WORK/cert.pem" --key "$WORK/key.pem" \
  --users "$WORK/users.toml" --listen 10.200.9.1 --port 443 --pool 10.77.0.0/24 --dns 10.77.0.1 \
  --control-socket "$WORK/control.sock" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do grep -q "listening on" "$WORK/server.log" 2>/dev/null && break; sleep 0.1; done
cat "$WORK/server.log"

say "pysstp connect (in $CLI)"
PYSSTP_PASSWORD=demopass ip netns exec "$CLI" "$PYSSTP" connect 10.200.9.1 --user demo \
  --ca-file "$WORK/cert.pem" --sni sstp.test --ifname sstp0 >"$WORK/client.log" 2>&1 &
CLIENT_PID=$!
for _ in $(seq 200); do grep -q " connected: " "$WORK/client.log" 2>/dev/null && break; sleep 0.1; done
cat "$WORK/client.log"
grep -q " connected: " "$WORK/client.log" || { echo "the client did not come up" >&2; exit 1; }

say "ping through the tunnel"
ip netns exec "$CLI" ping -c 5 -i 0.2 10.77.0.1 | tee "$WORK/ping.log"
RTT=$(sed -n 's/.*= [0-9.]*\/\([0-9.]*\)\/.*/\1/p' "$WORK/ping.log")

say "5-second TCP transfer through the tunnel"
ip netns exec "$SRV" "$PYTHON" -c '
import socket
s = socket.create_server(("10.77.0.1", 5201))
c, _ = s.accept()
while c.recv(1 << 20):
    pass
' &
SINK_PID=$!
sleep 0.5
MBPS=$(ip netns exec "$CLI" "$PYTHON" -c '
import socket, sys, time
c = socket.create_connection(("10.77.0.1", 5201))
chunk, sent, start = b"x" * 65536, 0, time.monotonic()
last = start
while (now := time.monotonic()) - start < 5:
    c.sendall(chunk)
    sent += len(chunk)
    if now - last >= 0.5:
        last = now
        rate = sent * 8 / (now - start) / 1e6
        bar = "#" * int((now - start) * 8)
        print(f"\r  {bar:<40} {rate:7.1f} Mbit/s", end="", file=sys.stderr, flush=True)
c.close()
print(file=sys.stderr)
print(f"{sent * 8 / (time.monotonic() - start) / 1e6:.0f}")
')

say "summary"
grep -o "connected: .*" "$WORK/client.log"
echo "ping RTT (avg): ${RTT:-?} ms"
echo "TCP throughput, client -> server: ${MBPS} Mbit/s"
ip netns exec "$SRV" "$PYSSTP" status --socket "$WORK/control.sock"
