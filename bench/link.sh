#!/usr/bin/env bash
# Link throughput: one server-to-server link, 64-byte messages, through the
# runtime's public Send and its ServerMessage hook, beside a raw-TCP baseline
# with the same framing measured in the same run. Prints each run, the median
# messages/s of each, and the ratio runtime/baseline.
#
#   bash bench/link.sh            # COUNT=5 BENCHTIME=2s by default
set -euo pipefail
cd "$(dirname "$0")/.."
count=${COUNT:-5}
benchtime=${BENCHTIME:-2s}
out=$(go test -run '^$' -bench 'BenchmarkLink64' -benchtime "$benchtime" -count "$count" ./cluster/)
echo "$out" | grep -E '^(Benchmark|cpu|goos|goarch)'
echo "$out" | awk '
  /^BenchmarkLink64\/raw-tcp/ { for (i = 1; i <= NF; i++) if ($(i+1) == "msgs/s") raw[++nr] = $i }
  /^BenchmarkLink64\/runtime/ { for (i = 1; i <= NF; i++) if ($(i+1) == "msgs/s") rt[++nt] = $i }
  function median(a, n,   i, j, t) {
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j] < a[j-1]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return (n % 2) ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
  }
  END {
    if (nr == 0 || nt == 0) { print "no results"; exit 1 }
    r = median(raw, nr); t = median(rt, nt)
    printf "median raw-tcp baseline: %.0f msgs/s\nmedian runtime:          %.0f msgs/s\nratio runtime/baseline:  %.3f\n", r, t, t / r
  }'
