#!/usr/bin/env bash
# Cloud memory beside Redis on loopback, at the same concurrency and in the
# same run (see main.go): Post vs SET throughput (50 clients), Get vs GET
# throughput and latency (p50/p99), and one Post fanned out to 1,000
# subscribers vs PUBLISH to 1,000 subscribers; each as a ratio, for 1 and 3
# cloud replicas; with the CPU time per Post and per SET, and a single-hop
# echo over the same stack as a reference. About 100 seconds. It needs redis-server
# (apt-get install redis-server); it starts and stops its own, on a free
# loopback port, without persistence. Flags go to the command, for example
#   bash bench/cloud/run.sh -replicas 3 -rounds 5
#   bash bench/cloud/run.sh -cpuprofile /tmp/cloud.pb.gz
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v redis-server >/dev/null; then
	echo "redis-server not found: install it (apt-get install redis-server)" >&2
	exit 1
fi
source bench/run.sh
bench_run cloud 900 "$@"
