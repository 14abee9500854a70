#!/usr/bin/env bash
# Runs the `scale` bench (benches/scale.rs) under a Lunatic node and samples the node's resident
# memory, memory maps, threads and open files from /proc after every batch of agents.
#
#   node/measure.sh [options] [N [BATCH]]
#     --node stock|tuned|PATH  stock = `lunatic run` (default), tuned = node/target/release/swarm-node,
#                              PATH = any binary taking `run FILE.wasm ARGS` like `lunatic run`
#     --timeout SECS           hard limit for the whole run (default 300)
#     --max-rss-gib G          kill the node when its RSS passes G GiB (default 16; RSS counts every
#                              agent's copy-on-write data image in full, so it overstates memory use)
#     --min-available-gib G    kill the node when the machine's MemAvailable drops below G GiB
#                              (default 3): the limit that keeps the host up, whatever RSS says
#     --wasm FILE              the scale bench (default target/wasm32-wasip1/release/scale.wasm)
#     --node-arg ARG           extra argument for the node before the .wasm (repeatable), e.g. --no-cwd
#     --label TEXT             tag printed on the summary line
#
# Build the bench first: cargo build --release -p swarm-benches --bin scale --target wasm32-wasip1
# Output: the bench's lines, each SCALE line followed by a `SAMPLE` line
# (agents, rss_kib, vm_gib, maps, threads, fds, pte_kib = page tables), `POINT` lines at
# 1K/10K/50K/100K/150K/200K/300K agents, and a final `RESULT` line with per-agent numbers (RSS, PSS from
# smaps_rollup at the top, page tables, maps) computed against the sample taken before the first
# agent (main process only). `SCALE tick` lines (every 100 agents) are not echoed.
# Reading /proc/<pid>/maps takes the node's mmap lock: past ~100K agents the sampling itself slows
# spawning (use the bench alone, SCALE_PAUSE_MS=0, for spawn rates at that size).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
node=stock
timeout_s=300
max_rss_gib=16
min_available_gib=3
wasm="$root/target/wasm32-wasip1/release/scale.wasm"
label=""
node_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --node) node="$2"; shift 2 ;;
    --timeout) timeout_s="$2"; shift 2 ;;
    --max-rss-gib) max_rss_gib="$2"; shift 2 ;;
    --min-available-gib) min_available_gib="$2"; shift 2 ;;
    --wasm) wasm="$2"; shift 2 ;;
    --label) label="$2"; shift 2 ;;
    --node-arg) node_args+=("$2"); shift 2 ;;
    -h|--help) sed -n 2,24p "$0"; exit 0 ;;
    *) break ;;
  esac
done
n="${1:-10000}"
batch="${2:-1000}"

case "$node" in
  stock) bin="$(command -v lunatic)" ;;
  tuned) bin="$root/node/target/release/swarm-node" ;;
  *) bin="$node" ;;
esac
[ -x "$bin" ] || { echo "measure: no node binary at $bin" >&2; exit 2; }
[ -f "$wasm" ] || { echo "measure: no bench at $wasm (build it first)" >&2; exit 2; }

# RUST_BACKTRACE=1 alone makes Lunatic ~20x slower; benchmarks run without the capture.
export RUST_LIB_BACKTRACE="${RUST_LIB_BACKTRACE:-0}"
max_rss_kib=$((max_rss_gib * 1024 * 1024))
min_available_kib=$((min_available_gib * 1024 * 1024))
log="$(mktemp /tmp/scale.XXXXXX.log)"

echo "MEASURE node=$bin ${node_args[*]-} wasm=$wasm n=$n batch=$batch timeout=${timeout_s}s max_rss=${max_rss_gib}GiB" \
     "vm.max_map_count=$(sysctl -n vm.max_map_count) ulimit_n=$(ulimit -n) label=$label date=$(date -u +%FT%TZ)"

timeout --signal=KILL "$timeout_s" "$bin" run ${node_args[@]+"${node_args[@]}"} "$wasm" "$n" "$batch" >"$log" 2>&1 &
tpid=$!
pid=""
for _ in $(seq 100); do
  pid="$(pgrep -P "$tpid" || true)"
  [ -n "$pid" ] && break
  sleep 0.05
done
[ -n "$pid" ] || { echo "measure: node did not start"; cat "$log"; exit 1; }

base_rss=""; base_maps=""; base_pte=0; last_pte=0; pss=""
last_agents=0; last_rss=0; last_maps=0; last_tick=0
peak_rss=0
killed=""

sample() { # prints: rss_kib vm_kib maps threads fds pte_kib
  local st rss vm thr maps fds pte
  st="$(cat /proc/"$pid"/status 2>/dev/null)" || return 1
  rss="$(awk '/^VmRSS:/{print $2}' <<<"$st")"
  vm="$(awk '/^VmSize:/{print $2}' <<<"$st")"
  thr="$(awk '/^Threads:/{print $2}' <<<"$st")"
  pte="$(awk '/^VmPTE:/{print $2}' <<<"$st")"
  maps="$(wc -l </proc/"$pid"/maps 2>/dev/null)" || return 1
  fds="$(ls /proc/"$pid"/fd 2>/dev/null | wc -l)"
  echo "$rss $vm $maps $thr $fds $pte"
}

seen=0
while :; do
  alive=1
  kill -0 "$pid" 2>/dev/null || alive=0
  # Watchdog: never let the node pass the RSS limit.
  if [ $alive = 1 ]; then
    rss_now="$(awk '/^VmRSS:/{print $2}' /proc/"$pid"/status 2>/dev/null || echo 0)"
    [ "${rss_now:-0}" -gt "$peak_rss" ] && peak_rss="$rss_now"
    if [ "${rss_now:-0}" -gt "$max_rss_kib" ]; then
      echo "MEASURE killing the node: RSS ${rss_now} KiB > ${max_rss_gib} GiB"
      kill -KILL "$pid" 2>/dev/null || true
      killed="rss"
    fi
    available="$(awk '/^MemAvailable:/{print $2}' /proc/meminfo)"
    if [ "$killed" = "" ] && [ "${available:-0}" -lt "$min_available_kib" ]; then
      echo "MEASURE killing the node: MemAvailable ${available} KiB < ${min_available_gib} GiB"
      kill -KILL "$pid" 2>/dev/null || true
      killed="memavailable"
    fi
  fi
  total=$(wc -l <"$log")
  if [ "$total" -gt "$seen" ]; then
    while IFS= read -r line; do
      case "$line" in
        "SCALE tick"*) [[ "$line" =~ agents=([0-9]+) ]] && last_tick="${BASH_REMATCH[1]}"; continue ;;
      esac
      echo "$line"
      case "$line" in
        "SCALE start"*|"SCALE batch"*|"SCALE top"*)
          if s="$(sample)"; then
            read -r rss vm maps thr fds pte <<<"$s"
            agents=0
            [[ "$line" =~ agents=([0-9]+) ]] && agents="${BASH_REMATCH[1]}"
            [ "$rss" -gt "$peak_rss" ] && peak_rss="$rss"
            if [ -z "$base_rss" ]; then base_rss=$rss; base_maps=$maps; base_pte=$pte; fi
            last_pte=$pte
            if [[ "$line" == "SCALE top"* ]]; then
              # Proportional set size: counts the copy-on-write image pages the processes share
              # once, where RSS counts them once per mapping. Page tables are not in either.
              pss="$(awk '/^Pss:/{print $2}' /proc/"$pid"/smaps_rollup 2>/dev/null || echo 0)"
              echo "SAMPLE top pss_kib=$pss"
            fi
            last_agents=$agents; last_rss=$rss; last_maps=$maps
            echo "SAMPLE agents=$agents rss_kib=$rss vm_gib=$((vm / 1024 / 1024)) maps=$maps threads=$thr fds=$fds pte_kib=$pte"
            rate=""; [[ "$line" =~ rate=([0-9]+) ]] && rate="${BASH_REMATCH[1]}"
            case "$line" in "SCALE batch"*)
              case "$agents" in 1000|10000|50000|100000|150000|200000|300000)
                awk -v a="$rss" -v b="$base_rss" -v m="$maps" -v bm="$base_maps" -v n="$agents" -v r="$rate" \
                  'BEGIN{printf "POINT agents=%d kib_per_agent=%.1f maps_per_agent=%.2f batch_rate=%s/s\n", n, (a-b)/n, (m-bm)/n, r}' ;;
              esac ;;
            esac
          fi
          ;;
      esac
    done < <(sed -n "$((seen + 1)),${total}p" "$log")
    seen=$total
  fi
  [ $alive = 1 ] || break
  sleep 0.05
done

wait "$tpid" && rc=0 || rc=$?
[ $rc = 137 ] && [ -z "$killed" ] && killed="timeout(${timeout_s}s) or SIGKILL"
tail -n +$((seen + 1)) "$log" | grep -v '^SCALE tick' || true
reached="$(grep -o 'SCALE spawned agents=[0-9]*' "$log" | grep -o '[0-9]*$' || echo "~$last_tick(died)")"
reason="$(grep -m1 -o 'os error.*\|Result::unwrap.*' "$log" || grep -m1 -o 'panicked.*' "$log" || true)"
rate="$(grep -o 'mean_rate=[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
check="$(grep -o 'SCALE check.*' "$log" || echo 'no check')"
per_rss="?"; per_maps="?"; per_pte="?"; per_pss="?"
if [ "${last_agents:-0}" -gt 0 ] && [ -n "$base_rss" ]; then
  per_rss="$(awk -v a="$last_rss" -v b="$base_rss" -v n="$last_agents" 'BEGIN{printf "%.1f", (a-b)/n}')"
  per_maps="$(awk -v a="$last_maps" -v b="$base_maps" -v n="$last_agents" 'BEGIN{printf "%.2f", (a-b)/n}')"
  per_pte="$(awk -v a="$last_pte" -v b="$base_pte" -v n="$last_agents" 'BEGIN{printf "%.1f", (a-b)/n}')"
  per_pss="?"; [ -n "$pss" ] && per_pss="$(awk -v a="$pss" -v b="$base_rss" -v n="$last_agents" 'BEGIN{printf "%.1f", (a-b)/n}')"
fi
echo "RESULT label=$label exit=$rc killed=${killed:-no} reached=$reached last_sampled_agents=$last_agents" \
     "mean_spawn_rate=$rate/s rss_at_last=${last_rss}KiB peak_rss=${peak_rss}KiB kib_per_agent=$per_rss pss_kib_per_agent=$per_pss pagetable_kib_per_agent=$per_pte" \
     "maps_at_last=$last_maps maps_per_agent=$per_maps | $check${reason:+ | error: $reason}"
rm -f "$log"
