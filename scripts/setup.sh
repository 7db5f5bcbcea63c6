#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian machine with only Rust on it.
# Safe to run again: each step checks first and installs only what is missing.
set -euo pipefail

need_apt=()
# bindgen (for the RocksDB bindings) needs libclang.
if ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 && ! ls /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1; then
  need_apt+=(libclang-dev)
fi
# The RocksDB C++ build needs a C++ compiler.
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
