#!/usr/bin/env bash
# Runs the whole test suite: every unit, integration and property test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --workspace --all-targets "$@"
