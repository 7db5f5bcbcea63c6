#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian machine with only Rust on it.
# Safe to run again: each step checks first and installs only what is missing.
set -euo pipefail

need_apt=()
# bindgen (for the RocksDB bindings) loads libclang itself: libclang.so, libclang.so.N or
# libclang-N.so*. libclang-cpp.so.N (the C++ library, which some images ship alone) is not
# it, so the patterns below must not match it.
have_libclang() {
  local f
  for f in ${LIBCLANG_PATH:+"$LIBCLANG_PATH"/libclang.so* "$LIBCLANG_PATH"/libclang-[0-9]*.so*} \
    /usr/lib/llvm-*/lib/libclang.so* /usr/lib/llvm-*/lib/libclang-[0-9]*.so* \
    /usr/lib/*-linux-gnu/libclang.so* /usr/lib/*-linux-gnu/libclang-[0-9]*.so* \
    /usr/local/lib/libclang.so* /usr/lib/libclang.so*; do
    [ -e "$f" ] && return 0
  done
  return 1
}
have_libclang || need_apt+=(libclang-dev)
# rustc links with `cc`, and build scripts compile C (lz4, RocksDB): rustup brings no C
# compiler. (g++ happens to pull gcc in too; this does not rely on it.)
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)
# The RocksDB C++ build needs a C++ compiler.
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
# `pegasus onebox` and the tests stop processes with the kill program (procps).
[ -x /bin/kill ] || [ -x /usr/bin/kill ] || need_apt+=(procps)
# The Redis-proxy tests drive the proxy with the real redis-cli.
command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
# `pegasus bench` is tested against, and its suite compares with, a real redis-server.
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
# The bench suite's PNG plot needs a TrueType font.
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_apt+=(fonts-dejavu-core)
# `pegasus chaos` cuts links between nodes with nftables and skews clocks with libfaketime.
command -v nft >/dev/null 2>&1 || need_apt+=(nftables)
ls /usr/lib/*/faketime/libfaketimeMT.so.1 >/dev/null 2>&1 || need_apt+=(faketime)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# Python venv with the official Pegasus client for the compatibility test, rebuilt when the
# pinned requirements change.
venv="${PEGASUS_PYVENV:-$HOME/.cache/pegasus-rs/pyvenv}"
req="$(dirname "$0")/../compat/python/requirements.txt"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "setup: installing python3 and python3-venv" >&2
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq python3 python3-venv >/dev/null
  fi
  echo "setup: creating $venv with $(basename "$req")" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
  echo "$want" > "$stamp"
fi
