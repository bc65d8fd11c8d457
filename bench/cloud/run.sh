#!/usr/bin/env bash
# Cloud memory beside what a studio builds without it: its own game
# servers in front of Redis, on loopback, at the same concurrency and in
# the same run (see main.go). Server side: a world server's plugin, 50
# goroutines, CloudMemory Post/Get vs SET/GET through go-redis. Client
# side: 50 SDK clients through a client server, Post/Get vs the server's
# plugin doing SET/GET. Fan-out: one Post to 1,000 clients over two client
# servers vs PUBLISH forwarded by the client servers. Each as a ratio with
# its target, for 1 and 3 cloud replicas, with the CPU time per operation
# and, as references, a single-hop echo and clients talking to Redis
# straight. About 6 minutes. It needs redis-server (apt-get install
# redis-server); it starts and stops its own, on a free loopback port,
# without persistence. Flags go to the command, for example
#   bash bench/cloud/run.sh -replicas 3 -rounds 5
#   bash bench/cloud/run.sh -only fanout -fan-rounds 100
#   bash bench/cloud/run.sh -in-process -cpuprofile /tmp/cloud.pb.gz
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v redis-server >/dev/null; then
	echo "redis-server not found: install it (apt-get install redis-server)" >&2
	exit 1
fi
source bench/run.sh
bench_run cloud 900 "$@"
