#!/usr/bin/env bash
# Runs rows of the reliability matrix (RELIABILITY.md) with `pegasus chaos`, each for
# DURATION seconds (default 600), PARALLEL at a time (default 1; 2 shares the two cores
# between two runs, which RELIABILITY.md then says), ports from BASE_PORT (27601). Results: OUT/<row>/report.md and
# report.jsonl, OUT/<row>.log, and one summary line per row in OUT/summary.txt.
#
#   scripts/chaos-matrix.sh                 # every row this build can run
#   scripts/chaos-matrix.sh 7 8 9           # some rows
#   DURATION=120 PARALLEL=2 scripts/chaos-matrix.sh
#   EXTRA_ARGS=--node-log scripts/chaos-matrix.sh 4 13 14 15 16   # the node log (#18)
#
# Row 5 (power loss) is a simulator row: `pegasus sim --power-loss --seeds 1..15001`.
#
# Needs root for nftables (partitions) and mount (the disk-full tmpfs); setup.sh installs
# nftables and libfaketime.
set -uo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
DURATION="${DURATION:-600}"
PARALLEL="${PARALLEL:-1}"
OUT="${OUT:-$here/target/chaos-matrix}"
# Slot i of a run uses ports from BASE_PORT + 1000 * i (two matrices at once need two bases).
BASE_PORT="${BASE_PORT:-27601}"
# Added to every row's arguments (e.g. --node-log).
EXTRA_ARGS="${EXTRA_ARGS:-}"
target="${CARGO_TARGET_DIR:-$here/target}"

# row -> "seed|arguments"
declare -A ROWS=(
  [0]="40|--nemesis none"
  [1]="41|--nemesis kill"
  [2]="42|--nemesis kill-primary"
  [3]="43|--nemesis kill-meta"
  [4]="44|--nemesis kill-all"
  [6]="46|--nemesis pause-primary"
  [7]="47|--nemesis partition-primary-meta"
  [8]="48|--nemesis partition-secondary"
  [9]="49|--nemesis partition-metas"
  [10]="50|--nemesis net-drop,net-delay,net-flap"
  [12]="52|--nemesis pause-primary,partition-primary-meta,isolate-node --skew replica1=+0_x0.8 --skew meta1=+1d"
  [13]="53|--nemesis disk-full"
  [14]="54|--nemesis fail-point"
  [15]="55|--nemesis torn-tail"
  [16]="56|--nemesis corrupt-log"
  [17]="57|--nemesis conn-flood"
)

rows=("$@")
if [ ${#rows[@]} -eq 0 ]; then
  mapfile -t rows < <(printf '%s\n' "${!ROWS[@]}" | sort -n)
fi

(cd "$here" && cargo build -q -p pegasus) || exit 1
mkdir -p "$OUT"
# A private copy: rebuilding while the matrix runs must not swap the binary under it.
exe="$OUT/pegasus"
cp "$target/debug/pegasus" "$exe"

run_row() {
  local row="$1" slot="$2"
  local spec="${ROWS[$row]:-}"
  if [ -z "$spec" ]; then
    echo "row $row: not runnable by this build" | tee -a "$OUT/summary.txt"
    return
  fi
  local seed="${spec%%|*}" args="${spec#*|}"
  local port=$((BASE_PORT + 1000 * slot))
  # FAKETIME values contain a space; the table writes it as '_'.
  local -a argv=()
  for a in $args $EXTRA_ARGS; do argv+=("${a//_/ }"); done
  echo "row $row: pegasus chaos ${argv[*]} --duration $DURATION --seed $seed" >&2
  "$exe" chaos "${argv[@]}" --duration "$DURATION" --seed "$seed" \
    --base-port "$port" --dir "$OUT/row$row" >"$OUT/row$row.log" 2>&1
  local rc=$?
  echo "row $row (seed $seed, exit $rc): $(tail -n 1 "$OUT/row$row.log")" | tee -a "$OUT/summary.txt"
}

i=0
for row in "${rows[@]}"; do
  run_row "$row" $((i % PARALLEL)) &
  i=$((i + 1))
  if [ $((i % PARALLEL)) -eq 0 ]; then wait; fi
done
wait
