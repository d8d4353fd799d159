#!/usr/bin/env bash
# Reruns the load-tool figures of BENCHMARKS.md: a release build, then for
# each measurement a fresh phosphor on a fresh data directory, driven by
# `phosphor bench` over loopback. Reports (JSON) go to the directory given
# as the first argument (default: $CARGO_TARGET_DIR/bench-results or
# target/bench-results); a summary table is printed at the end.
#
#   scripts/bench.sh [OUT_DIR]
#
# Environment: RUNS (runs per ingest measurement, default 3), SECONDS_EACH
# (default 15), FILL (spans in the store for the query measurements,
# default 10000000), SKIP_QUERY=1 to skip the fill and query runs.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
phosphor_need_debs

target="${CARGO_TARGET_DIR:-target}"
out="${1:-$target/bench-results}"
runs="${RUNS:-3}"
secs="${SECONDS_EACH:-15}"
fill="${FILL:-10000000}"
mkdir -p "$out"

cargo build --release --workspace --bins --examples
bin="$target/release/phosphor"

addrs=(--http-addr 127.0.0.1:7850 --otlp-grpc-addr 127.0.0.1:4417
  --otlp-http-addr 127.0.0.1:4418 --zipkin-addr 127.0.0.1:9511
  --udp-addr 127.0.0.1:7860)
data=""
pid=""

start_server() {
  data="$(mktemp -d)"
  "$bin" serve --data-dir "$data" "${addrs[@]}" >"$out/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    if curl -fsS http://127.0.0.1:7850/readyz >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "phosphor did not become ready; see $out/server.log" >&2
  exit 1
}

stop_server() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$data"
}
trap stop_server EXIT

ingest() { # name, then bench ingest arguments
  local name="$1"
  shift
  start_server
  echo "== $name" >&2
  "$bin" bench ingest "${addrs[@]}" --quiet --json "$@" >"$out/$name.json"
  stop_server
}

for protocol in otlp-grpc otlp-http otlp-json zipkin-json udp udp-batch; do
  for i in $(seq "$runs"); do
    ingest "ingest-$protocol-max-$i" --protocol "$protocol" --duration "${secs}s"
  done
done
ingest "ingest-otlp-grpc-100k" --protocol otlp-grpc --rate 100k --duration "${secs}s"
ingest "ingest-udp-batch-100k" --protocol udp-batch --rate 100k --duration "${secs}s"
# Over UDP `max` floods the socket far beyond what any server reads; fixed
# rates show where phosphor stops keeping up.
for r in 200k 300k; do
  ingest "ingest-udp-batch-$r" --protocol udp-batch --rate "$r" --duration "${secs}s"
done

# The UDP reference: the same batched datagrams, read by a plain recv loop.
for i in $(seq "$runs"); do
  echo "== udp reference $i" >&2
  "$bin" bench sink --udp-addr 127.0.0.1:7861 --json >"$out/sink-$i.json" &
  sink=$!
  sleep 0.5
  "$bin" bench ingest --protocol udp-batch --udp-addr 127.0.0.1:7861 \
    --http-addr 127.0.0.1:9 --duration "${secs}s" --quiet --json >"$out/sink-sent-$i.json"
  wait "$sink"
done

if [ -z "${SKIP_QUERY:-}" ]; then
  start_server
  echo "== query over $fill spans" >&2
  "$bin" bench query "${addrs[@]}" --fill "$fill" --quiet --json >"$out/query.json"
  echo "== size" >&2
  "$bin" bench size "${addrs[@]}" --json >"$out/size.json"
  stop_server
fi

echo "== store reference (plain RocksDB loop, same bytes)" >&2
"$target/release/examples/reference" 1000000 | tee "$out/reference.txt"

python3 scripts/bench_summary.py "$out"
