# Sourced by scripts/run.sh and scripts/test.sh: makes sure what the build
# needs is on this machine, installing Debian packages when it can.
#
# RocksDB is compiled from source by the rocksdb crate: it needs a C++
# compiler and libclang (for its bindings). The test suite also needs
# Python's venv module for the real-client tests, and Chromium, Node.js and
# npm for the browser tests.

phosphor_need_debs() {
  local missing=()
  command -v c++ >/dev/null 2>&1 || missing+=(g++)
  local f libclang=""
  for f in /usr/lib/llvm-*/lib/libclang*.so* /usr/lib/*-linux-gnu/libclang*.so*; do
    [ -e "$f" ] && libclang=yes
  done
  [ -n "$libclang" ] || [ -n "${LIBCLANG_PATH:-}" ] || missing+=(libclang-dev)
  if [ "${1:-}" = test ]; then
    command -v python3 >/dev/null 2>&1 || missing+=(python3)
    python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
    # Browser tests: Debian's Chromium, driven by playwright-core from npm.
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
  fi
  [ ${#missing[@]} -eq 0 ] && return 0

  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo="sudo"
    else
      echo "phosphor needs these Debian packages: ${missing[*]}" >&2
      echo "install them with:  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
      exit 1
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "phosphor needs: ${missing[*]} (a C++ compiler, libclang, python3 with venv); install them with your package manager" >&2
    exit 1
  fi
  echo "installing Debian packages: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
}

command -v cargo >/dev/null 2>&1 || {
  echo "phosphor needs a Rust toolchain (cargo): see https://rustup.rs" >&2
  exit 1
}
