#!/usr/bin/env bash
# Counts of the message path that do not depend on the machine's mood (bench/RESULTS.md), from
# galaxies_path_count (two routers, two nodes, one loop, one process): instructions per message
# (valgrind callgrind, the measured phase only), syscalls per request round trip and per
# forwarding step (strace -c), allocations per message and per request (the program's own
# operator new) and the copies per forwarded frame in the masters (the bytes their links copied
# into queues over the bytes they forwarded: 0 when every frame went out from the read buffer,
# cut-through; 1 when every frame was copied). The program prints the last two on each
# plain run below. The third part counts requests 64 in flight (request_64_x64's shape), where the
# masters batch. All of it twice: the nodes' channels on shared-memory rings, as galaxies::run
# gives its workers by default, then on their sockets alone (channel_ring_bytes 0).
# Usage: bench/count_path.sh [BUILD_DIR] [CHANNEL...]   (default build/, rings socket;
# needs valgrind and strace)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
shift $(($# > 0 ? 1 : 0))
channels=("$@")
((${#channels[@]} > 0)) || channels=(rings socket)
path_count="$build/bench/galaxies_path_count"
[[ -x "$path_count" ]] || { echo "count_path.sh: build galaxies_path_count first" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

sends=100000
requests=10000

instructions() {  # total Ir of the measured phase, then the top functions (inclusive)
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/out" "$@" >/dev/null 2>&1
  callgrind_annotate --inclusive=yes "$work/out" 2>/dev/null
}

per() { awk -v total="$1" -v n="$2" 'BEGIN { printf "%.0f", total / n }'; }

syscalls() {  # per request from strace -c's table: the total, per forwarding step, the top $1
  awk -v n="$requests" '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" { all += $4 }
    END { printf "  %-16s %6.2f  (%.2f per forwarding step)\n", "all", all / n, all / n / 6 }' \
    "$work/strace"
  awk -v n="$requests" '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" {
    printf "  %-16s %6.2f\n", $NF, $4 / n }' "$work/strace" | sort -k2 -rn | head -"$1"
}

for channel in "${channels[@]}"; do
  program=("$path_count" --channel "$channel")
  echo "######## channel: $channel"
  echo "== sends: $sends messages of 64 bytes, node a -> master A -> master B -> node b"
  "${program[@]}" --messages "$sends"
  instructions "${program[@]}" --messages "$sends" >"$work/send.txt"
  total=$(awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }' "$work/send.txt")
  echo "instructions per message: $(per "$total" "$sends")"
  echo "per message, by function (inclusive):"
  for f in 'node_core::send(' 'node_core::admit(' 'wire::append_to_batch(' 'router::router::on_frame(' \
    'route_table::find(' 'frame_parser::parse(' 'wire::check_batch(' 'node_core::on_message(' \
    'node_core::on_batch(' 'node_core::consumed('; do
    ir=$(grep -F "$f" "$work/send.txt" | head -1 | awk '{ gsub(",", "", $1); print $1 }')
    [[ -n "$ir" ]] && printf '  %-28s %6s\n' "$f" "$(per "$ir" "$sends")"
  done

  echo
  echo "== requests: $requests round trips of 64 bytes, one in flight"
  "${program[@]}" --messages "$requests" --requests
  instructions "${program[@]}" --messages "$requests" --requests >"$work/request.txt"
  total=$(awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }' "$work/request.txt")
  echo "instructions per request: $(per "$total" "$requests")"
  strace -f -c -o "$work/strace" "${program[@]}" --messages "$requests" --requests >/dev/null
  echo "syscalls per request (6 forwarding steps: 3 out, 3 back; the set-up's few are included):"
  syscalls 6

  echo
  echo "== requests: $requests round trips of 64 bytes, 64 in flight"
  "${program[@]}" --messages "$requests" --requests --in-flight 64
  instructions "${program[@]}" --messages "$requests" --requests --in-flight 64 >"$work/batch.txt"
  total=$(awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }' "$work/batch.txt")
  echo "instructions per request: $(per "$total" "$requests")"
  strace -f -c -o "$work/strace" "${program[@]}" --messages "$requests" --requests --in-flight 64 >/dev/null
  echo "syscalls per request:"
  syscalls 4
  echo
done
