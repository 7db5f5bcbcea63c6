#!/usr/bin/env bash
# Runs the whole test suite: every unit, integration and property test of the workspace.
#   scripts/test.sh [ARGS...]          the whole suite; ARGS go to `cargo test`
#   scripts/test.sh --quick [ARGS...]  a quick subset (a few minutes once built): every
#                                      crate's unit tests (`--lib --bins`) and the official
#                                      Python client against a onebox (python_compat); ARGS
#                                      go to both `cargo test` runs
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ "${1:-}" = "--quick" ]; then
  shift
  cargo test --workspace --lib --bins "$@"
  cargo test -p pegasus --test python_compat "$@"
  exit 0
fi
cargo test --workspace --all-targets "$@"
