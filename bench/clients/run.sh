#!/usr/bin/env bash
# Game-client benchmarks, each beside a baseline measured in the same run:
#   1. relay round trip (client → gate → world → client) beside a single-hop
#      echo on the same connection: p50/p99 of each, ratio of the p50s;
#   2. pipelined throughput, 50 clients, 64 B and 1 KB, relay beside echo;
#   3. idle WebSocket clients (20,000) on one external server running in
#      its own process: the server's resident bytes per client.
# Each part is bounded to 2 minutes. Flags go to the command, for example
#   bash bench/clients/run.sh -only relay -samples 50000
#   bash bench/clients/run.sh -only idle -idle-heap-profile /tmp/idle.pb.gz
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/run.sh
bench_run clients 0 "$@"
