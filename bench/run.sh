#!/usr/bin/env bash
# Runs the standard workloads (issues 7, 13 and 18) against a fresh single-node Strand (--fsync=always) on
# loopback, measures this machine's references in the same run (sequential write bandwidth
# with fsync; loopback TCP bandwidth), and prints every Strand figure as a ratio to its
# reference.
#
#   bash bench/run.sh                    # full run, a few minutes
#   BENCH_SCALE=small bash bench/run.sh  # quick run, under a minute
#
# Environment: BENCH_SCALE (small|full), BENCH_SECONDS (per produce workload),
# BENCH_PRODUCERS (producer clients, default 2), BENCH_OUT (a directory that keeps the JSON
# results and the broker log; default: a temporary directory removed at exit),
# BENCH_PROFILE=1 (with BENCH_OUT: a CPU profile of the broker during each workload,
# NAME.cpu.prof, read with `go tool pprof -top bin/strand NAME.cpu.prof`).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

scale=${BENCH_SCALE:-full}
case $scale in
  small) secs=${BENCH_SECONDS:-3}; warm=1; fio_size=256M; iperf_secs=2 ;;
  full) secs=${BENCH_SECONDS:-15}; warm=3; fio_size=2G; iperf_secs=5 ;;
  *) echo "BENCH_SCALE=$scale: want small or full" >&2; exit 2 ;;
esac
producers=${BENCH_PRODUCERS:-2}

work=$(mktemp -d /tmp/strand-bench.XXXXXX)
out=${BENCH_OUT:-$work/results}
mkdir -p "$out"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n== %s\n' "$*" >&2; }

# free_port asks the kernel for a port nobody uses.
free_port() {
  if command -v python3 >/dev/null; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
    return
  fi
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
}

# field FILE KEY prints the first numeric value of "KEY" in a JSON result.
field() { grep -m1 -o "\"$2\": [-0-9.e+]*" "$1" | awk '{print $2}'; }

say "build"
go build -o bin/strand ./cmd/strand

# --- references, measured now, on this machine ---------------------------------------
say "reference: sequential write bandwidth with fsync"
disk_dir=$work/disk
mkdir -p "$disk_dir"
if command -v fio >/dev/null; then
  # 1 MiB writes, each followed by fdatasync: what a group commit of 1 MiB batches costs.
  fio --name=seqwrite-fsync --directory="$disk_dir" --rw=write --bs=1M --size="$fio_size" \
    --ioengine=psync --fdatasync=1 --end_fsync=1 --output-format=json >"$out/fio.json"
  # The write section's bw_bytes (the read section, first in the file, is all zeros).
  disk_bps=$(awk '/"write" *: *\{/ {w = 1} w && /"bw_bytes"/ {gsub(/[^0-9]/, "", $3); print $3; exit}' "$out/fio.json")
  disk_how="fio: 1 MiB sequential writes, fdatasync after each"
else
  echo "fio not installed (apt-get install fio); using dd with oflag=dsync instead" >&2
  count=${fio_size%[MG]}; [[ $fio_size == *G ]] && count=$((count * 1024))
  line=$(dd if=/dev/zero of="$disk_dir/dd" bs=1M count="$count" oflag=dsync 2>&1 | tail -1)
  bytes=$(awk '{print $1}' <<<"$line"); seconds=$(awk -F', ' '{print $(NF-1)}' <<<"$line" | awk '{print $1}')
  disk_bps=$(awk -v b="$bytes" -v s="$seconds" 'BEGIN{printf "%.0f", b/s}')
  disk_how="dd: 1 MiB sequential writes, oflag=dsync (each write synced)"
fi
rm -rf "$disk_dir"
echo "$disk_how: $(awk -v b="$disk_bps" 'BEGIN{printf "%.1f MB/s", b/1e6}')" >&2

say "reference: loopback TCP bandwidth"
if ! command -v iperf3 >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing iperf3" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 >/dev/null 2>&1; } || true
fi
if command -v iperf3 >/dev/null; then
  port=$(free_port)
  iperf3 -s -1 -B 127.0.0.1 -p "$port" >/dev/null 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do iperf3 -c 127.0.0.1 -p "$port" -t "$iperf_secs" -J >"$out/iperf3.json" 2>/dev/null && break; sleep 0.1; done
  loop_bps=$(jq -r '.end.sum_received.bits_per_second' "$out/iperf3.json" 2>/dev/null ||
    grep -A8 '"sum_received"' "$out/iperf3.json" | grep -m1 -o '"bits_per_second":[[:space:]]*[0-9.e+]*' | awk -F: '{print $2}')
  loop_bps=$(awk -v b="$loop_bps" 'BEGIN{printf "%.0f", b/8}')
  loop_how="iperf3: one TCP stream over 127.0.0.1 for ${iperf_secs}s"
else
  echo "iperf3 not installed and cannot be installed here; using Go's loopback benchmark (BenchmarkLoopbackReference)" >&2
  line=$(go test -run '^$' -bench '^BenchmarkLoopbackReference$' -benchtime "${iperf_secs}s" ./internal/broker | grep '^BenchmarkLoopback')
  mbps=$(grep -o '[0-9.]* MB/s' <<<"$line" | awk '{print $1}')
  loop_bps=$(awk -v m="$mbps" 'BEGIN{printf "%.0f", m*1e6}')
  loop_how="go test BenchmarkLoopbackReference: 1 MiB writes over one 127.0.0.1 connection"
fi
echo "$loop_how: $(awk -v b="$loop_bps" 'BEGIN{printf "%.1f MB/s", b/1e6}')" >&2

# --- a fresh single node ---------------------------------------------------------------
say "start strand serve --fsync=always"
kport=$(free_port); hport=$(free_port)
profile=()
if [ -n "${BENCH_PROFILE:-}" ]; then pport=$(free_port); profile=(--pprof-addr "127.0.0.1:$pport"); fi
bin/strand serve --fsync=always --data-dir "$work/data" --kafka-addr "127.0.0.1:$kport" \
  --http-addr "127.0.0.1:$hport" --log-level warn "${profile[@]}" >"$out/strand.log" 2>&1 &
pids+=($!)
for i in $(seq 300); do
  curl -sf "http://127.0.0.1:$hport/readyz" >/dev/null && break
  if ! kill -0 "${pids[-1]}" 2>/dev/null; then cat "$out/strand.log" >&2; echo "strand exited" >&2; exit 1; fi
  [ "$i" = 300 ] && { echo "strand not ready after 30s" >&2; exit 1; }
  sleep 0.1
done
export STRAND_BROKERS=127.0.0.1:$kport

bench() { # bench NAME ARGS...: runs one workload, keeps its JSON in $out/NAME.json
  local name=$1; shift
  say "$name: strand bench $*"
  local prof=""
  if [ -n "${BENCH_PROFILE:-}" ]; then
    curl -sf -o "$out/$name.cpu.prof" "http://127.0.0.1:$pport/debug/pprof/profile?seconds=$((secs > 2 ? secs - 1 : 1))" &
    prof=$!
  fi
  bin/strand bench "$@" --format json >"$out/$name.json"
  if [ -n "$prof" ]; then wait "$prof" || echo "no profile for $name" >&2; fi
}

# warmup TOPIC PARTITIONS SIZE: an unmeasured run first, so that each workload measures the
# steady state: a partition's first append at a leader epoch writes and fsyncs its epoch
# checkpoint, which costs seconds over 1000 new partitions.
warmup() {
  say "warm-up: ${warm}s on $1, not measured"
  bin/strand bench produce --topic "$1" --partitions "$2" --record-size "$3" --acks all \
    --duration "${warm}s" --producers "$producers" --quiet --format json >/dev/null
}

warmup p1k 6 1024
bench produce-1k produce --topic p1k --partitions 6 --record-size 1024 --acks all \
  --duration "${secs}s" --producers "$producers"
warmup p100 6 100
bench produce-100 produce --topic p100 --partitions 6 --record-size 100 --acks all \
  --duration "${secs}s" --producers "$producers"
produced=$(field "$out/produce-1k.json" acked)
bench consume-1k consume --topic p1k --records "$produced" --consumers 1   # from the start: warm-up records too
# e2e only needs its partitions touched once; a full-speed warm-up would leave writeback
# running under the latency measurement.
bin/strand bench produce --topic e2e --partitions 6 --record-size 1024 --records 6000 --quiet --format json >/dev/null
# The disk's own fdatasync latency, measured now on the data dir's filesystem: the reference
# the e2e percentiles are read against (issue 18: p99 <= fdatasync p99 + 3 ms).
# The throughput workloads above leave gigabytes of dirty pages; their writeback would
# compete with the latency runs' fsyncs, so it is finished first.
sync
say "reference: fdatasync after 4 KiB appends, on the data dir's filesystem"
bin/strand bench fsync --dir "$work" --write-size 4096 --duration "${secs}s" --format json >"$out/fsync.json"
for rate in 5000 20000; do
  bench "e2e-$rate" e2e --topic e2e --partitions 6 --record-size 1024 --acks all --rate "$rate" \
    --duration "${secs}s" --producers 1 --consumers 1 --linger 0s --http "127.0.0.1:$hport"
done
# Transactions (issue 13): the same produce as produce-1k, each producer committing a
# transaction every 1000 records; then the data read back at both isolation levels.
warmup ptx 6 1024
bench txn-1k produce --topic ptx --partitions 6 --record-size 1024 --acks all \
  --duration "${secs}s" --producers "$producers" --transaction-records 1000
# Transactions of about 100 ms: 40,000 1 KiB records per producer at this machine's rate.
warmup p1k 6 1024
bench txn-40k produce --topic ptx40 --partitions 6 --record-size 1024 --acks all \
  --duration "${secs}s" --producers "$producers" --transaction-records 40000
txn_records=$(field "$out/txn-1k.json" acked)
bench consume-ptx consume --topic ptx --records "$txn_records" --consumers 1
bench consume-ptx-rc consume --topic ptx --records "$txn_records" --consumers 1 --read-committed
warmup p1k-1000 1000 1024
bench produce-1k-1000p produce --topic p1k-1000 --partitions 1000 --record-size 1024 --acks all \
  --duration "${secs}s" --producers "$producers"

# --- three nodes, replication factor 3 ------------------------------------------------------
# The same e2e workloads on a 3-node cluster (every node on this machine, its own data dir),
# topic replicated 3 ways with min.insync.replicas 2 as Kafka deployments run it. Set
# BENCH_CLUSTER=0 to skip.
if [ "${BENCH_CLUSTER:-1}" != 0 ]; then
  say "stop the single node; start 3 nodes"
  kill "${pids[-1]}" && wait "${pids[-1]}" 2>/dev/null || true
  sync # the 1000-partition run's writeback, as above
  voters=""; declare -a ck ch cc
  for n in 1 2 3; do
    ck[$n]=$(free_port); ch[$n]=$(free_port); cc[$n]=$(free_port)
    voters+="${voters:+,}$n@127.0.0.1:${cc[$n]}"
  done
  for n in 1 2 3; do
    bin/strand serve --node-id "$n" --fsync=always --data-dir "$work/node$n" --kafka-addr "127.0.0.1:${ck[$n]}" \
      --advertised-kafka-addr "127.0.0.1:${ck[$n]}" --http-addr "127.0.0.1:${ch[$n]}" \
      --controller-addr "127.0.0.1:${cc[$n]}" --controller-voters "$voters" --log-level warn >"$out/strand-node$n.log" 2>&1 &
    pids+=($!)
  done
  for n in 1 2 3; do
    for i in $(seq 600); do
      curl -sf "http://127.0.0.1:${ch[$n]}/readyz" >/dev/null && break
      [ "$i" = 600 ] && { cat "$out/strand-node$n.log" >&2; echo "node $n not ready after 60s" >&2; exit 1; }
      sleep 0.1
    done
  done
  export STRAND_BROKERS=127.0.0.1:${ck[1]},127.0.0.1:${ck[2]},127.0.0.1:${ck[3]}
  bin/strand topic create e2e3 --partitions 6 --replication-factor 3 --config min.insync.replicas=2 >/dev/null
  bin/strand bench produce --topic e2e3 --record-size 1024 --records 6000 --quiet --format json >/dev/null
  for rate in 5000 20000; do
    bench "e2e3-$rate" e2e --topic e2e3 --record-size 1024 --acks all --rate "$rate" \
      --duration "${secs}s" --producers 1 --consumers 1 --linger 0s \
      --http "127.0.0.1:${ch[1]},127.0.0.1:${ch[2]},127.0.0.1:${ch[3]}"
  done
fi

# --- the table ---------------------------------------------------------------------------
p1k=$(field "$out/produce-1k.json" bytes_per_sec)
p100=$(field "$out/produce-100.json" records_per_sec)
c1k=$(field "$out/consume-1k.json" bytes_per_sec)
fs99=$(field "$out/fsync.json" p99_ms)
p1000=$(field "$out/produce-1k-1000p.json" bytes_per_sec)

row() { # workload figure reference ratio goal met
  printf '%-44s %-22s %-26s %-8s %-10s %s\n' "$@"
}
mb() { awk -v b="$1" 'BEGIN{printf "%.1f MB/s", b/1e6}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "n/a" }'; }
met() { awk -v v="$1" -v op="$2" -v g="$3" 'BEGIN{ ok = (op == ">=") ? v >= g : v <= g; print ok ? "yes" : "NO" }'; }

echo
echo "Strand bench ($scale scale: ${secs}s per workload after a ${warm}s warm-up, $producers producers; $(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ))"
echo "disk reference:     $disk_how"
echo "loopback reference: $loop_how"
echo
row "workload" "figure" "reference" "ratio" "goal" "met?"
r=$(ratio "$p1k" "$disk_bps")
row "produce 1 KiB, 6 partitions, acks=all" "$(mb "$p1k")" "disk+fsync $(mb "$disk_bps")" "$r" ">= 0.6" "$(met "$r" ">=" 0.6)"
row "produce 100 B, 6 partitions, acks=all" "$(printf '%.0f records/s' "$p100")" "-" "-" ">= 500000" "$(met "$p100" ">=" 500000)"
r=$(ratio "$c1k" "$loop_bps")
row "consume 1 KiB from page cache" "$(mb "$c1k")" "loopback TCP $(mb "$loop_bps")" "$r" ">= 0.4" "$(met "$r" ">=" 0.4)"
for rate in 5000 20000; do
  e99=$(field "$out/e2e-$rate.json" p99_ms); e999=$(field "$out/e2e-$rate.json" p99_9_ms)
  goal=$(awk -v f="$fs99" 'BEGIN{printf "%.2f", f + 3}')
  row "e2e 1 KiB at $rate records/s, p99" "$(printf '%.2f ms' "$e99")" "fdatasync p99 $(printf '%.2f' "$fs99") ms" "-" "<= $goal ms" "$(met "$e99" "<=" "$goal")"
  row "e2e 1 KiB at $rate records/s, p99.9" "$(printf '%.2f ms' "$e999")" "-" "-" "<= 15 ms" "$(met "$e999" "<=" 15)"
  if [ -f "$out/e2e3-$rate.json" ]; then
    c99=$(field "$out/e2e3-$rate.json" p99_ms); r=$(ratio "$c99" "$e99")
    row "e2e at $rate/s, 3 nodes RF 3, p99" "$(printf '%.2f ms' "$c99")" "1 node $(printf '%.2f ms' "$e99")" "$r" "<= 2" "$(met "$r" "<=" 2)"
  fi
done
ptx=$(field "$out/txn-1k.json" bytes_per_sec)
r=$(ratio "$ptx" "$p1k")
row "produce 1 KiB in transactions of 1000" "$(mb "$ptx")" "idempotent $(mb "$p1k")" "$r" ">= 0.9" "$(met "$r" ">=" 0.9)"
ptx40=$(field "$out/txn-40k.json" bytes_per_sec)
r=$(ratio "$ptx40" "$p1k")
row "produce 1 KiB in transactions of 40000" "$(mb "$ptx40")" "idempotent $(mb "$p1k")" "$r" ">= 0.9" "$(met "$r" ">=" 0.9)"
end99=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["end_txn_latency"]["p99_ms"])' "$out/txn-1k.json" 2>/dev/null || echo 999)
goal=$(awk -v f="$fs99" 'BEGIN{printf "%.2f", 2 * f + 2}')
row "EndTxn (commit) p99" "$(printf '%.2f ms' "$end99")" "fdatasync p99 $(printf '%.2f' "$fs99") ms" "-" "<= $goal ms" "$(met "$end99" "<=" "$goal")"
crc=$(field "$out/consume-ptx-rc.json" bytes_per_sec); cru=$(field "$out/consume-ptx.json" bytes_per_sec)
r=$(ratio "$crc" "$cru")
row "consume read_committed (same data)" "$(mb "$crc")" "read_uncommitted $(mb "$cru")" "$r" ">= 0.9" "$(met "$r" ">=" 0.9)"
r=$(ratio "$p1000" "$p1k")
row "produce 1 KiB, 1000 partitions" "$(mb "$p1000")" "6 partitions $(mb "$p1k")" "$r" ">= 0.7" "$(met "$r" ">=" 0.7)"
echo
printf 'fdatasync reference: p50 %s  p99 %s  p99.9 %s  max %s ms\n' "$(field "$out/fsync.json" p50_ms)" "$fs99" \
  "$(field "$out/fsync.json" p99_9_ms)" "$(field "$out/fsync.json" max_ms)"
for f in e2e-5000 e2e-20000 e2e3-5000 e2e3-20000; do
  [ -f "$out/$f.json" ] || continue
  echo
  python3 - "$out/$f.json" <<'PY' 2>/dev/null || cat "$out/e2e-$rate.json"
import json, sys
r = json.load(open(sys.argv[1]))
l, a = r["latency"], r["ack_latency"]
print(f"{sys.argv[1].rsplit('/',1)[-1][:-5]} at {r['offered_rate']:.0f} records/s: e2e p50 {l['p50_ms']:.2f}  p99 {l['p99_ms']:.2f}  p99.9 {l['p99_9_ms']:.2f}  max {l['max_ms']:.2f} ms; ack p99 {a['p99_ms']:.2f} ms")
for s in r.get("breakdown", []):
    print(f"  {s['where']:6} {s['name']:38} p50 {s['p50_ms']:7.3f}  p99 {s['p99_ms']:7.3f}  p99.9 {s['p99_9_ms']:7.3f} ms  ({s['count']})")
PY
done
for f in produce-1k produce-100 produce-1k-1000p; do
  printf '%s: ack latency p50 %s  p99 %s  p99.9 %s ms\n' "$f" "$(field "$out/$f.json" p50_ms)" \
    "$(field "$out/$f.json" p99_ms)" "$(field "$out/$f.json" p99_9_ms)"
done
[ -n "${BENCH_OUT:-}" ] && echo "JSON results and the broker log are in $out"
exit 0
