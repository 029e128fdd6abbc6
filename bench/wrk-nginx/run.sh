#!/usr/bin/env bash
# End to end with outside tools: wrk posts distinct 1.7 KB shipment events over 32
# connections for SECONDS to a fresh `waybill serve` (its own SQLite, synchronous = full),
# which delivers each to nginx; when wrk stops, the script waits until nginx has received
# every acknowledged event. Prints the ingest rate (acknowledged / SECONDS), the end-to-end
# rate (delivered / time from the first request to the last delivery) and the hub's CPU
# per event (/proc/<pid>/stat).
#
#   bench/wrk-nginx/run.sh path/to/waybill [SECONDS] [LABEL]
#
# Needs wrk, nginx, curl and python3 (Debian: apt-get install wrk nginx), ports 8080 and
# 9099 free. nginx is started for the run and stopped after it.
set -euo pipefail
BIN=$1
SECONDS_=${2:-20}
LABEL=${3:-$(basename "$BIN")}
HERE=$(cd "$(dirname "$0")" && pwd)
D=$(mktemp -d)
trap 'kill "${HUB:-}" 2>/dev/null || true; [ -f "$D/nginx.pid" ] && kill "$(cat "$D/nginx.pid")" 2>/dev/null; rm -rf "$D"' EXIT
sed "s#@DIR@#$D#" "$HERE/hub.toml.in" > "$D/hub.toml"
sed "s#@DIR@#$D#" "$HERE/nginx.conf.in" > "$D/nginx.conf"
nginx -c "$D/nginx.conf" 2>/dev/null
received() { curl -s http://127.0.0.1:9099/status | awk '/^ [0-9]/{print $3}'; }
"$BIN" serve --config "$D/hub.toml" > "$D/hub.log" 2>&1 &
HUB=$!
for _ in $(seq 100); do
  curl -s -o /dev/null http://127.0.0.1:8080/ && break
  sleep 0.1
done
sleep 1
BASE=$(received)
CPU0=$(awk '{print $14+$15}' "/proc/$HUB/stat")
T0=$(date +%s.%N)
RUN=$(basename "$D" | tr -dc 'a-zA-Z0-9') wrk -t2 -c32 -d"${SECONDS_}s" -s "$HERE/shipment.lua" \
  http://127.0.0.1:8080 > "$D/wrk.out" 2>&1
T1=$(date +%s.%N)
REQ=$(awk '/^wrk: /{print $2}' "$D/wrk.out")
ERR=$(awk '/^wrk: /{print $4}' "$D/wrk.out")
OK=$((REQ - ERR))
while :; do
  # Each /status request counts itself.
  N=$(($(received) - BASE - 1))
  NOW=$(date +%s.%N)
  if [ "$N" -ge "$OK" ] || python3 -c "import sys; sys.exit(0 if $NOW - $T1 > 300 else 1)"; then
    break
  fi
  sleep 0.05
done
CPU1=$(awk '{print $14+$15}' "/proc/$HUB/stat")
python3 - "$LABEL" "$OK" "$ERR" "$N" "$T0" "$T1" "$NOW" "$CPU0" "$CPU1" "$(getconf CLK_TCK)" "$D/wrk.out" <<'PY'
import sys
label, ok, err, n, t0, t1, t2, c0, c1, tck, out = sys.argv[1:]
ok, err, n = int(ok), int(err), int(n)
t0, t1, t2 = float(t0), float(t1), float(t2)
p99 = next(l for l in open(out) if l.startswith("wrk:")).split("p99 ")[1].strip()
cpu = (int(c1) - int(c0)) / int(tck) * 1e6 / max(ok, 1)
ingest, e2e = ok / (t1 - t0), n / (t2 - t0)
print(f"{label}: ingest {ingest:.0f} events/s ({ok} acknowledged, {err} errors, p99 {p99}); "
      f"end to end {e2e:.0f} events/s ({n} delivered in {t2 - t0:.1f} s, {e2e / ingest:.2f} of ingest); "
      f"hub CPU {cpu:.0f} µs an event")
PY
