#!/usr/bin/env bash
# Starts a whole local cluster (3 metas, 3 replica servers) in the foreground.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build -p pegasus
exec target/debug/pegasus onebox "$@"
