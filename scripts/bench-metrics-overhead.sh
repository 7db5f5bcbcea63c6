#!/usr/bin/env bash
# What metric recording costs on the read benchmark (issue #10): YCSB-C against a onebox with
# metrics on (Prometheus recorder, the default, + RocksDB tickers, off by default since #28)
# and off ([metrics] enabled = false, rocksdb_statistics = false), alternating rounds on the
# same data, medians compared.
# Usage: scripts/bench-metrics-overhead.sh [rounds] [seconds] [concurrency]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"; seconds="${2:-15}"; conc="${3:-32}"
bin="${PEGASUS_BIN:-target/debug/pegasus}"
work="$(mktemp -d /tmp/pegasus-metrics-overhead.XXXXXX)"
trap 'kill $(cat "$work/pid" 2>/dev/null) 2>/dev/null || true; sleep 2; rm -rf "$work"' EXIT
printf '[metrics]\nenabled = false\n[pegasus.server]\nrocksdb_statistics = false\n' > "$work/off.toml"
printf '[pegasus.server]\nrocksdb_statistics = true\n' > "$work/on.toml"
target="pegasus://127.0.0.1:26601,127.0.0.1:26602,127.0.0.1:26603/temp"

start() { # $1 = on|off, $2 = extra flags
  "$bin" onebox --dir "$work/onebox" --meta-port 26601 --replica-port 26611 \
    --extra-config "$work/$1.toml" $2 > "$work/onebox.out" 2>/dev/null &
  echo $! > "$work/pid"
  for _ in $(seq 1 180); do grep -q "onebox ready" "$work/onebox.out" && return 0; sleep 1; done
  echo "onebox did not start" >&2; exit 1
}
stop() { kill "$(cat "$work/pid")"; wait "$(cat "$work/pid")" 2>/dev/null || true; }

start on --clean
"$bin" bench run --target "$target" --workload load --records 100000 --concurrency 32 >/dev/null
stop
for r in $(seq 1 "$rounds"); do
  for mode in on off; do
    start "$mode" ""
    # Check the switch took: /metrics answers 200 with metrics on, 503 with them off.
    code=$(python3 -c 'import urllib.request, urllib.error
try: print(urllib.request.urlopen("http://127.0.0.1:26611/metrics").status)
except urllib.error.HTTPError as e: print(e.code)')
    want=200; [ "$mode" = off ] && want=503
    [ "$code" = "$want" ] || { echo "metrics $mode: /metrics answered $code, expected $want" >&2; exit 1; }
    # Warm the block cache and connections, then measure.
    "$bin" bench run --target "$target" --workload c --records 100000 --concurrency "$conc" --duration 5 >/dev/null
    "$bin" bench run --target "$target" --workload c --records 100000 --concurrency "$conc" \
      --duration "$seconds" --json "$work/$mode-$r.json" | head -1
    stop
  done
done
python3 - "$work" "$rounds" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
def runs(mode):
    return [json.load(open(f"{work}/{mode}-{r}.json"))[0] for r in range(1, rounds + 1)]
on, off = runs("on"), runs("off")
tp_on = statistics.median(r["throughput"] for r in on)
tp_off = statistics.median(r["throughput"] for r in off)
p50_on = statistics.median(r["overall"]["p50_us"] for r in on)
p50_off = statistics.median(r["overall"]["p50_us"] for r in off)
print("rounds:", [round(r["throughput"]) for r in on], "(on)", [round(r["throughput"]) for r in off], "(off)")
print(f"YCSB-C median ops/s: metrics on {tp_on:.0f}, off {tp_off:.0f}; cost {100 * (tp_off - tp_on) / tp_off:+.1f} %")
# Rounds run back to back, so each on/off pair shares the machine's drift.
paired = statistics.median(100 * (b["throughput"] - a["throughput"]) / b["throughput"] for a, b in zip(on, off))
print(f"median of per-round paired costs: {paired:+.1f} %")
print(f"YCSB-C median P50: on {p50_on:.0f} us, off {p50_off:.0f} us")
PY
