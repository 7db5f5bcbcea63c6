#!/usr/bin/env bash
# Fresh-machine check: runs the README's two commands (`scripts/onebox.sh`, `scripts/test.sh`)
# as a newcomer would, on a clean Debian root built from Debian's packages with only a Rust
# toolchain in it. It exists to catch what scripts/setup.sh forgets to install (a past defect:
# setup.sh took libclang-cpp.so.14 for libclang and the RocksDB build died).
#
#   scripts/fresh-machine-check.sh [--quick | --full] [--worktree | --with PATH...]
#                                  [--suite SUITE] [--mirror URL] [--logs DIR] [--work-dir DIR]
#                                  [--refresh-root] [--keep-root]
#                                  [--build-timeout MIN] [--test-timeout MIN]
#
#   --quick          (default) `scripts/test.sh --quick`: every crate's unit tests and the
#                    official Python client against a onebox
#   --full           `scripts/test.sh`: the whole suite (the chaos tests then add nftables
#                    rules and tmpfs mounts: the root shares the host's network namespace)
#   --worktree       copy the working tree (tracked and untracked, not ignored, so without
#                    target/ and onebox/) instead of the committed tree (`git archive HEAD`)
#   --with PATH      the committed tree, but PATH (a file or directory, repeatable) as it is in
#                    the working tree: e.g. `--with scripts` tries an uncommitted setup.sh fix
#   --suite SUITE    Debian suite of the root (default: this host's, from /etc/os-release)
#   --mirror URL     Debian mirror (default: the one this host's apt sources use)
#   --logs DIR       step logs and summary.txt (default: ./fresh-check/, emptied first)
#   --work-dir DIR   where the root is unpacked (default: /var/tmp); removed afterwards
#   --refresh-root   rebuild the cached bare root (~/.cache/pegasus-rs/fresh-root-SUITE.tar)
#   --keep-root      keep the unpacked root (unmounted) for inspection
#   --build-timeout  minutes to wait for `onebox ready:` (default 180: the cold build at
#                    nice 19 on a busy machine; 25 minutes measured here on 2 cores)
#   --test-timeout   minutes for scripts/test.sh (default 120 quick, 300 full)
#
# Needs root (debootstrap, chroot, mounts) and network access. Every build runs under
# `nice -n 19 ionice -c3`. Exits non-zero unless every step passed.
#
# What the root gets, and why:
# - `debootstrap --variant=minbase SUITE` (essential and required packages only: no sudo,
#   ca-certificates, procps, python3, gcc, g++ or libclang), cached as a tarball; every run
#   unpacks an untouched copy.
# - The Rust toolchain only: the host's rustup home and ~/.cargo/bin, bind-mounted
#   read-only at /root/.rustup and /root/.cargo/bin, with an empty CARGO_HOME registry, so
#   crates are downloaded as on a new machine. No host /usr, no target directory.
# - Decision on the C linker: rustup installs no C compiler, yet rustc links with `cc` and
#   build scripts compile C. A machine with "only Rust" therefore has no `cc` either, and the
#   root gets none: scripts/setup.sh must install it (it does, with gcc, when `cc` is missing).
# - What makes package clients trust and reach what this host trusts and reaches, never with
#   verification turned off: the host's CA certificates (/etc/ssl/certs dereferenced,
#   /usr/local/share/ca-certificates, /etc/ca-certificates.conf), apt sources, keyrings,
#   apt.conf.d and preferences.d (not auth.conf.d: credentials stay on the host), pip
#   configuration (/etc/pip.conf, ~/.config/pip, ~/.pip, PIP_*), cargo configuration
#   (~/.cargo/config.toml), the CARGO_* / RUSTUP_* / SSL_* / *_proxy environment, and
#   /etc/resolv.conf and /etc/hosts.
# - /usr/sbin/policy-rc.d refusing service starts: there is no init system in a chroot, and a
#   package's daemon (redis-server) would otherwise start in the host's network namespace.
# - /proc, /sys (read-only), /dev, a new /dev/pts, tmpfs /dev/shm and /tmp. The script runs
#   in a private mount namespace and unmounts everything on exit, failure or Ctrl-C.
#
# Steps: host-tools (debootstrap), root, prepare, onebox (`scripts/onebox.sh` in the
# background until it prints `onebox ready:`), shell (a write and a read through
# `target/debug/pegasus shell`), onebox-stop (SIGINT to its process group, as Ctrl-C; no
# process may be left), test (`scripts/test.sh [--quick]`).
set -euo pipefail

ORIG_ARGS=("$@")
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die() { echo "fresh-machine-check: $*" >&2; exit 2; }

WITH=() MODE=quick WORKTREE=0 SUITE="" MIRROR="" LOGDIR="" WORK_PARENT=/var/tmp
REFRESH=0 KEEP=0 BUILD_TIMEOUT=180 TEST_TIMEOUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) MODE=quick ;;
    --full) MODE=full ;;
    --worktree) WORKTREE=1 ;;
    --with) WITH+=("${2:?--with needs a path}"); shift ;;
    --suite) SUITE="${2:?--suite needs a value}"; shift ;;
    --mirror) MIRROR="${2:?--mirror needs a value}"; shift ;;
    --logs) LOGDIR="${2:?--logs needs a value}"; shift ;;
    --work-dir) WORK_PARENT="${2:?--work-dir needs a value}"; shift ;;
    --refresh-root) REFRESH=1 ;;
    --keep-root) KEEP=1 ;;
    --build-timeout) BUILD_TIMEOUT="${2:?--build-timeout needs minutes}"; shift ;;
    --test-timeout) TEST_TIMEOUT="${2:?--test-timeout needs minutes}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
  shift
done
[ -n "$TEST_TIMEOUT" ] || { [ "$MODE" = quick ] && TEST_TIMEOUT=120 || TEST_TIMEOUT=300; }
case "$BUILD_TIMEOUT$TEST_TIMEOUT" in *[!0-9]*) die "timeouts are whole minutes" ;; esac

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot and mounts)"

# Everything mounted below stays in a private mount namespace: nothing propagates to the
# host, and the kernel drops the mounts if this script is killed outright.
if [ -z "${PEGASUS_FRESH_NS:-}" ] && unshare --mount --propagation private true 2>/dev/null; then
  export PEGASUS_FRESH_NS=1
  exec unshare --mount --propagation private -- bash "$0" "${ORIG_ARGS[@]}"
fi

REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"
LOGDIR="${LOGDIR:-$REPO/fresh-check}"
mkdir -p "$LOGDIR"
LOGDIR="$(cd "$LOGDIR" && pwd)"
rm -f "$LOGDIR"/*.log "$LOGDIR"/summary.txt
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/pegasus-rs"
exec 3>&1 # the console; step output goes to the step's log

# --- host facts --------------------------------------------------------------------------

HOST_SUITE="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
SUITE="${SUITE:-$HOST_SUITE}"
[ -n "$SUITE" ] || die "cannot tell this host's Debian suite from /etc/os-release: pass --suite"
case "$SUITE" in *[!a-z0-9-]*) die "bad suite: $SUITE" ;; esac

# Active apt source files, in apt's order.
apt_source_files() {
  [ -f /etc/apt/sources.list ] && echo /etc/apt/sources.list
  local f
  for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && echo "$f"
  done | sort
}

# The first `deb` URI of the host's sources that serves suite $1.
mirror_for_suite() {
  local f
  while read -r f; do
    case "$f" in
      *.sources)
        awk -v suite="$1" '
          function flush(   n, s, i, u) {
            if (!found && types ~ /(^| )deb( |$)/ && enabled != "no") {
              n = split(suites, s, " ")
              for (i = 1; i <= n; i++) if (s[i] == suite) { split(uris, u, " "); print u[1]; found = 1 }
            }
            types = uris = suites = enabled = ""
          }
          /^[ \t]*#/ { next }
          /^[ \t]*$/ { flush(); next }
          /^Types:/ { sub(/^Types:[ \t]*/, ""); types = $0; next }
          /^URIs:/ { sub(/^URIs:[ \t]*/, ""); uris = $0; next }
          /^Suites:/ { sub(/^Suites:[ \t]*/, ""); suites = $0; next }
          /^Enabled:/ { sub(/^Enabled:[ \t]*/, ""); enabled = tolower($0); next }
          END { flush() }' "$f" ;;
      *)
        awk -v suite="$1" '
          $1 == "deb" {
            i = 2
            if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
            if ($(i + 1) == suite) print $i
          }' "$f" ;;
    esac
  done < <(apt_source_files) | grep -m 1 -E '^(https?|file):/' || true
}

if [ -z "$MIRROR" ]; then
  MIRROR="$(mirror_for_suite "$SUITE")"
  [ -n "$MIRROR" ] || MIRROR="$(mirror_for_suite "$HOST_SUITE")"
  [ -n "$MIRROR" ] || die "no Debian mirror for $SUITE in this host's apt sources: pass --mirror"
fi
SAME_SUITE=0
[ "$SUITE" = "$HOST_SUITE" ] && SAME_SUITE=1

HOST_CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
[ -x "$HOST_CARGO_BIN/rustup" ] || HOST_CARGO_BIN="$(dirname "$(command -v rustup 2>/dev/null || echo /nonexistent/rustup)")"
HOST_RUSTUP="${RUSTUP_HOME:-$HOME/.rustup}"
[ -x "$HOST_CARGO_BIN/rustup" ] && [ -x "$HOST_CARGO_BIN/cargo" ] && [ -d "$HOST_RUSTUP/toolchains" ] ||
  die "needs a rustup toolchain on the host (rustup and cargo in ~/.cargo/bin, ~/.rustup)"

if [ "$WORKTREE" -eq 1 ]; then
  SOURCE="working tree at $(git rev-parse --short HEAD) ($(git status --porcelain --untracked-files=normal | wc -l) changed paths)"
else
  SOURCE="committed tree $(git rev-parse --short HEAD)"
  [ ${#WITH[@]} -eq 0 ] || SOURCE="$SOURCE with ${WITH[*]} from the working tree"
fi
for p in "${WITH[@]}"; do
  case "/$p/" in */../* | //*) die "--with $p: give a path inside the repository, relative to its root" ;; esac
  [ -e "$p" ] || die "--with $p: no such path"
done

mkdir -p "$WORK_PARENT"
W="$(mktemp -d "$(cd "$WORK_PARENT" && pwd -P)/pegasus-fresh.XXXXXX")"
case "$W" in *[!A-Za-z0-9/._-]*) rmdir "$W"; die "work directory path must be plain: $W" ;; esac
R="$W/root"
mkdir -p "$W/notes"

# Inside the root: a newcomer's environment plus the host's package-client settings.
CENV=(HOME=/root USER=root LOGNAME=root SHELL=/bin/bash TERM=dumb LANG=C.UTF-8
  PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  RUSTUP_HOME=/root/.rustup CARGO_HOME=/root/.cargo)
while IFS='=' read -r name _; do
  case "$name" in
    CARGO_HOME | RUSTUP_HOME | CARGO_TARGET_DIR | CARGO_BUILD_TARGET_DIR) ;;
    # Set by cargo for what it runs, not configuration.
    CARGO_PKG_* | CARGO_MANIFEST_* | CARGO_BIN_* | CARGO_CRATE_* | CARGO_PRIMARY_PACKAGE) ;;
    CARGO_* | RUSTUP_* | PIP_* | SSL_CERT_FILE | SSL_CERT_DIR | REQUESTS_CA_BUNDLE | \
      CURL_CA_BUNDLE | GIT_SSL_CAINFO | http_proxy | https_proxy | ftp_proxy | all_proxy | \
      no_proxy | HTTP_PROXY | HTTPS_PROXY | FTP_PROXY | ALL_PROXY | NO_PROXY)
      CENV+=("$name=${!name}") ;;
  esac
done < <(env -0 | tr '\0' '\n' | grep -E '^[A-Za-z_][A-Za-z0-9_]*=')

# in_root [timeout-seconds] SCRIPT: runs bash -c SCRIPT as root in the root, niced.
in_root() {
  local t=()
  [ $# -eq 2 ] && { t=(timeout -k 60 "$1"); shift; }
  "${t[@]}" nice -n 19 ionice -c3 chroot "$R" /usr/bin/env -i "${CENV[@]}" /bin/bash -c "$1"
}

# Processes whose root directory is inside the work directory.
procs_in_root() {
  local p r
  for p in /proc/[0-9]*; do
    r="$(readlink "$p/root" 2>/dev/null)" || continue
    case "$r" in "$W" | "$W"/*) echo "${p#/proc/}" ;; esac
  done
}
describe_procs() {
  local p
  for p in "$@"; do
    echo "  pid $p: $(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | cut -c1-200)"
  done
}
kill_root_procs() {
  local pids i
  pids="$(procs_in_root)"
  [ -n "$pids" ] || return 0
  # shellcheck disable=SC2086
  kill -TERM $pids 2>/dev/null || true
  for i in $(seq 1 20); do
    pids="$(procs_in_root)"
    [ -n "$pids" ] || return 0
    sleep 0.5
  done
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
  sleep 1
}
mounts_under() { awk -v w="$W" '$5 == w || index($5, w "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r; }
umount_all() {
  local m i
  for i in 1 2 3 4 5; do
    [ -n "$(mounts_under)" ] || return 0
    for m in $(mounts_under); do umount "$m" 2>/dev/null || true; done
  done
  for m in $(mounts_under); do umount -l "$m" 2>/dev/null || true; done
}

# --- steps ---------------------------------------------------------------------------------

STEPS=() RESULTS=() TIMES=() NOTES=()
FAILED=0 CURRENT="" CURRENT_T0=0 SUMMARY_DONE=0 T0=$SECONDS

fmt_time() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }
note() { echo "$*" >> "$W/notes/$CURRENT"; }
say() { echo "   $*" >&3; }

step() { # step NAME FUNCTION
  local name=$1 fn=$2 rc log notes
  log="$LOGDIR/$(printf %02d $((${#STEPS[@]} + 1)))-$name.log"
  if [ "$FAILED" -ne 0 ]; then
    STEPS+=("$name") RESULTS+=(SKIP) TIMES+=(0) NOTES+=("")
    return 0
  fi
  CURRENT=$name CURRENT_T0=$SECONDS
  echo "== $name (log: ${log#"$REPO"/})"
  set +e
  (set -e; "$fn") > "$log" 2>&1
  rc=$?
  set -e
  notes="$(cat "$W/notes/$name" 2>/dev/null || true)"
  STEPS+=("$name") TIMES+=($((SECONDS - CURRENT_T0))) NOTES+=("${notes//$'\n'/; }")
  CURRENT=""
  if [ "$rc" -eq 0 ]; then
    RESULTS+=(PASS)
    echo "   PASS in $(fmt_time "${TIMES[-1]}")"
  else
    RESULTS+=(FAIL)
    FAILED=1
    echo "   FAIL (exit $rc) in $(fmt_time "${TIMES[-1]}"); end of ${log#"$REPO"/}:"
    tail -n 30 "$log" | sed 's/^/   | /'
  fi
}

summary() {
  local i verdict=PASS
  [ "$FAILED" -eq 0 ] || verdict=FAIL
  if [ -n "$CURRENT" ]; then # interrupted in the middle of a step
    STEPS+=("$CURRENT") RESULTS+=(INTERRUPTED) TIMES+=($((SECONDS - CURRENT_T0))) NOTES+=("")
    verdict=FAIL CURRENT=""
  fi
  {
    echo
    echo "fresh-machine check: $verdict"
    echo "  mode $MODE; Debian $SUITE from $MIRROR; $SOURCE"
    for i in "${!STEPS[@]}"; do
      printf '  %-12s %-11s %8s  %s\n' "${STEPS[$i]}" "${RESULTS[$i]:-?}" \
        "$(fmt_time "${TIMES[$i]:-0}")" "${NOTES[$i]:-}"
    done
    echo "  total $(fmt_time $((SECONDS - T0))); logs in $LOGDIR"
  } | tee "$LOGDIR/summary.txt" >&3
  SUMMARY_DONE=1
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  [ "$SUMMARY_DONE" -eq 1 ] || { FAILED=1; summary; [ "$rc" -ne 0 ] || rc=1; }
  kill_root_procs
  umount_all
  if [ -n "$(mounts_under)" ]; then
    echo "fresh-machine-check: still mounted, not removing $W:" >&3
    mounts_under >&3
  elif [ "$KEEP" -eq 1 ]; then
    echo "root kept (unmounted) in $R" >&3
  else
    rm -rf --one-file-system "$W"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "fresh-machine-check: interrupted" >&3; exit 130' INT TERM

# 1. debootstrap on the host.
step_host_tools() {
  local t
  if ! command -v debootstrap > /dev/null; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap
    note "installed debootstrap"
  fi
  for t in debootstrap chroot git tar timeout ionice unshare awk; do
    command -v "$t" || { echo "missing on the host: $t"; return 1; }
  done
}

# 2. An untouched copy of the bare root (built once, then cached).
step_root() {
  local tarball="$CACHE_DIR/fresh-root-$SUITE.tar" b="$W/bootstrap" t0=$SECONDS
  if [ "$REFRESH" -eq 1 ] || [ ! -s "$tarball" ] || [ "$(cat "$tarball.mirror" 2>/dev/null)" != "$MIRROR" ]; then
    mkdir -p "$CACHE_DIR" "$b"
    debootstrap --variant=minbase "$SUITE" "$b" "$MIRROR"
    # Machine-specific files come from the host at every run instead.
    rm -f "$b/etc/resolv.conf" "$b/etc/hostname"
    tar --numeric-owner --xattrs -C "$b" -cpf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    echo "$MIRROR" > "$tarball.mirror"
    rm -rf --one-file-system "$b"
    note "debootstrap --variant=minbase $SUITE in $((SECONDS - t0))s, cached in $tarball"
  else
    note "cached $tarball"
  fi
  mkdir "$R"
  tar --numeric-owner --xattrs -C "$R" -xpf "$tarball"
  [ -x "$R/bin/bash" ] && [ -x "$R/usr/bin/apt-get" ]
}

copy_if_present() { # copy_if_present SRC DST-DIR (keeps the name)
  [ -e "$1" ] || return 0
  mkdir -p "$2"
  cp -a "$1" "$2/"
  echo "copied $1"
}

# 3. Host trust and package-client settings, the toolchain, the source tree, mounts.
step_prepare() {
  local f k
  # CA certificates (dereferenced: the symlinks point into packages the root lacks).
  if [ -d /etc/ssl/certs ]; then
    mkdir -p "$R/etc/ssl/certs"
    cp -rL /etc/ssl/certs/. "$R/etc/ssl/certs/" || echo "warning: some of /etc/ssl/certs could not be copied"
    echo "copied /etc/ssl/certs"
  fi
  copy_if_present /usr/local/share/ca-certificates "$R/usr/local/share"
  copy_if_present /etc/ca-certificates.conf "$R/etc"

  # apt: sources (for the host's own suite), keyrings, configuration. Not auth.conf.d.
  if [ "$SAME_SUITE" -eq 1 ]; then
    rm -f "$R/etc/apt/sources.list"
    mkdir -p "$R/etc/apt/sources.list.d"
    for f in $(apt_source_files); do
      cp -a "$f" "$R$f"
      echo "copied $f"
    done
    for k in $(apt_source_files | xargs -r grep -hoiE '(signed-by[:=][ \t]*)[^] \t]+' | sed -E 's/^[^:=]*[:=][ \t]*//'); do
      if [ "${k#/}" != "$k" ] && [ ! -e "$R$k" ] && [ -e "$k" ]; then
        mkdir -p "$(dirname "$R$k")"
        cp -a "$k" "$R$k"
        echo "copied keyring $k"
      fi
    done
  fi
  copy_if_present /etc/apt/trusted.gpg "$R/etc/apt"
  for d in trusted.gpg.d keyrings apt.conf.d preferences.d; do
    [ -d "/etc/apt/$d" ] || continue
    mkdir -p "$R/etc/apt/$d"
    cp -a "/etc/apt/$d/." "$R/etc/apt/$d/"
    echo "copied /etc/apt/$d"
  done

  # pip and cargo configuration.
  copy_if_present /etc/pip.conf "$R/etc"
  copy_if_present "$HOME/.config/pip" "$R/root/.config"
  copy_if_present "$HOME/.pip" "$R/root"
  copy_if_present "${CARGO_HOME:-$HOME/.cargo}/config.toml" "$R/root/.cargo"
  copy_if_present "${CARGO_HOME:-$HOME/.cargo}/config" "$R/root/.cargo"

  # Name resolution, and no service starts without an init system.
  rm -f "$R/etc/resolv.conf" "$R/etc/hosts"
  cat /etc/resolv.conf > "$R/etc/resolv.conf"
  cat /etc/hosts > "$R/etc/hosts"
  printf '#!/bin/sh\n# fresh-machine-check: no init system in this chroot\nexit 101\n' > "$R/usr/sbin/policy-rc.d"
  chmod 755 "$R/usr/sbin/policy-rc.d"

  # The source tree.
  mkdir -p "$R/src"
  if [ "$WORKTREE" -eq 1 ]; then
    git ls-files -z --cached --others --exclude-standard |
      while IFS= read -r -d '' f; do
        case "$f" in target/* | onebox/*) continue ;; esac
        if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
      done | tar --null -T - -cf - | tar -C "$R/src" -xf -
  else
    git archive --format=tar HEAD | tar -C "$R/src" -xf -
    for f in "${WITH[@]}"; do
      f="${f%/}"
      rm -rf "${R:?}/src/$f"
      mkdir -p "$(dirname "$R/src/$f")"
      cp -a "$f" "$R/src/$f"
      echo "took $f from the working tree"
    done
  fi
  note "$(find "$R/src" -type f | wc -l) files in /src"

  # Mounts.
  mount -t proc proc "$R/proc"
  mount -t sysfs -o ro sysfs "$R/sys"
  mount --bind /dev "$R/dev"
  mount --make-private "$R/dev"
  mkdir -p "$R/dev/pts" "$R/dev/shm"
  mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$R/dev/pts"
  mount -t tmpfs -o mode=1777,nosuid,nodev shm "$R/dev/shm"
  mount -t tmpfs -o mode=1777,nosuid,nodev tmp "$R/tmp"
  mkdir -p "$R/root/.rustup" "$R/root/.cargo/bin"
  mount --bind "$HOST_RUSTUP" "$R/root/.rustup"
  mount -o remount,bind,ro "$R/root/.rustup"
  mount --bind "$HOST_CARGO_BIN" "$R/root/.cargo/bin"
  mount -o remount,bind,ro "$R/root/.cargo/bin"
  grep -F " $W/" /proc/self/mountinfo

  # The toolchain works (no compiling yet); what the root lacks is for setup.sh to install.
  in_root 300 'cargo --version && rustc --version && rustup show active-toolchain'
  note "$(in_root 60 'rustc --version')"
  in_root 60 'for t in cc gcc g++ python3 sudo kill curl; do printf "%-8s %s\n" "$t" "$(type -P $t || echo missing)"; done'
}

# TCP ports something on this host listens on.
listening_ports() {
  local f addr st
  for f in /proc/net/tcp /proc/net/tcp6; do
    [ -r "$f" ] || continue
    while read -r _ addr _ st _; do
      if [ "$st" = 0A ]; then echo $((16#${addr##*:})); fi
    done < <(tail -n +2 "$f")
  done
}

# 4. README command 1: scripts/onebox.sh in the background until it is ready.
ONEBOX_LOG="$LOGDIR/onebox-output.log"
step_onebox() {
  local pid deadline ports p next_report
  # The root shares the host's network: the README's fixed ports must be free.
  ports="$(listening_ports)"
  for p in 34601 34602 34603 34801 34802 34803; do
    if grep -qx "$p" <<< "$ports"; then echo "port $p is already in use on this host"; return 1; fi
  done
  # With job control on, the background job gets its own process group (its pid) and keeps
  # SIGINT's default disposition, as in a terminal (a plain `&` would ignore SIGINT).
  set -m
  nice -n 19 ionice -c3 chroot "$R" /usr/bin/env -i "${CENV[@]}" /bin/bash -c \
    'cd /src && exec scripts/onebox.sh' > "$ONEBOX_LOG" 2>&1 < /dev/null &
  pid=$!
  set +m
  echo "$pid" > "$W/onebox.pid"
  say "scripts/onebox.sh started (pid $pid, output: ${ONEBOX_LOG#"$REPO"/}); waiting up to ${BUILD_TIMEOUT}m"
  deadline=$((SECONDS + BUILD_TIMEOUT * 60))
  next_report=$((SECONDS + 300))
  while ! grep -q '^onebox ready:' "$ONEBOX_LOG"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "scripts/onebox.sh exited before printing 'onebox ready:'"
      tail -n 60 "$ONEBOX_LOG"
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "no 'onebox ready:' within ${BUILD_TIMEOUT} minutes"
      tail -n 60 "$ONEBOX_LOG"
      return 1
    fi
    if [ "$SECONDS" -ge "$next_report" ]; then
      say "still waiting ($(fmt_time $((SECONDS - CURRENT_T0)))): $(grep -v '^\s*$' "$ONEBOX_LOG" | tail -n 1 | cut -c1-100)"
      next_report=$((SECONDS + 300))
    fi
    sleep 5
  done
  grep '^onebox ready:' "$ONEBOX_LOG" | head -n 1
  note "$(grep '^onebox ready:' "$ONEBOX_LOG" | head -n 1 | cut -c1-60)..."
  cat "$ONEBOX_LOG"
}

# 5. A write and a read through the README's shell command.
step_shell() {
  local out
  out="$(in_root 120 'cd /src && target/debug/pegasus shell -e "use temp" -e "set fresh_hk fresh_sk fresh-value" -e "get fresh_hk fresh_sk"')"
  echo "$out"
  # The shell prints values quoted and escaped.
  grep -qxE '"?fresh-value"?' <<< "$out" || { echo "the value written was not read back"; return 1; }
  note "set + get through pegasus shell"
}

# 6. Ctrl-C on the onebox: every process it started must be gone.
step_onebox_stop() {
  local pid left i
  pid="$(cat "$W/onebox.pid")"
  kill -INT -- "-$pid"
  for i in $(seq 1 120); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "pegasus onebox did not exit within 60 s of SIGINT"
    kill -KILL -- "-$pid" 2>/dev/null || true
    return 1
  fi
  for i in $(seq 1 30); do
    left="$(procs_in_root)"
    [ -n "$left" ] || break
    sleep 0.5
  done
  tail -n 20 "$ONEBOX_LOG"
  if [ -n "$left" ]; then
    echo "processes left in the root 15 s after the onebox exited:"
    # shellcheck disable=SC2086
    describe_procs $left
    return 1
  fi
  note "SIGINT stopped everything"
}

# 7. README command 2.
step_test() {
  local args="" left
  [ "$MODE" = quick ] && args=" --quick"
  say "scripts/test.sh$args (up to ${TEST_TIMEOUT}m; output: ${LOGDIR#"$REPO"/}/$(printf %02d $((${#STEPS[@]} + 1)))-test.log)"
  in_root $((TEST_TIMEOUT * 60)) "cd /src && exec scripts/test.sh$args"
  note "$(grep -h '^test result:' "$LOGDIR"/*-test.log | awk '{ p += $4; f += $6; i += $8 } END { printf "%d passed, %d failed, %d ignored", p, f, i }')"
  sleep 2
  left="$(procs_in_root)"
  if [ -n "$left" ]; then
    echo "processes left in the root after scripts/test.sh:"
    # shellcheck disable=SC2086
    describe_procs $left
    return 1
  fi
}

echo "fresh-machine check ($MODE): Debian $SUITE from $MIRROR; $SOURCE; work dir $W"
step host-tools step_host_tools
step root step_root
step prepare step_prepare
step onebox step_onebox
step shell step_shell
step onebox-stop step_onebox_stop
step test step_test
summary
[ "$FAILED" -eq 0 ]
