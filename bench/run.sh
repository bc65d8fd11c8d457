# Sourced by each bench's run.sh, from the repository's root, after
# `set -euo pipefail`.
#
# bench_run PACKAGE LIMIT [ARGS...] builds the bench module's ./PACKAGE,
# prints the toolchain, the machine and its load average (figures are only
# comparable on a quiet machine: the load shows how quiet), runs the
# command with ARGS, ended after LIMIT (as timeout(1) reads it; 0: never),
# and prints the load average again.
bench_run() {
	local pkg=$1 limit=$2
	shift 2
	bench_dir=$(mktemp -d)
	trap 'rm -rf "$bench_dir"' EXIT
	go -C bench build -o "$bench_dir/bench" "./$pkg"
	echo "$(go version), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo
	timeout "$limit" "$bench_dir/bench" "$@"
	echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
}
