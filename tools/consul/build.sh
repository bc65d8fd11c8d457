#!/usr/bin/env bash
# Builds the pinned Consul agent into <repo>/.bin/consul (ignored by git) from
# the Go module proxy, for tests and local clusters. Idempotent: does nothing
# when .bin/consul already reports the pinned version.
#
#   bash tools/consul/build.sh          # build if missing or wrong version
#   FORCE=1 bash tools/consul/build.sh  # rebuild
#
# The first build takes about five minutes on two cores. The hashes of every
# module, including the three Consul submodules that the checksum database
# does not serve, are pinned in tools/consul/go.sum, so the build verifies
# against go.sum and needs no GONOSUMDB.
set -euo pipefail

want=v1.22.0
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$root/.bin/consul"

version_of() {
	"$1" version 2>/dev/null | head -n 1 | awk '{print $2}'
}

if [[ -x "$out" && -z "${FORCE:-}" ]]; then
	have="$(version_of "$out" || true)"
	if [[ "$have" == "$want" ]]; then
		echo "consul: $out is $have, nothing to do"
		exit 0
	fi
	echo "consul: $out reports '${have:-no version}', want $want: rebuilding"
fi

command -v go >/dev/null || { echo "consul: go is not on PATH" >&2; exit 1; }

echo "consul: building github.com/hashicorp/consul $want into $out (CGO_ENABLED=0; ~5 min the first time)"
mkdir -p "$root/.bin"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
(
	cd "$here"
	CGO_ENABLED=0 go build -mod=readonly -o "$tmp" github.com/hashicorp/consul
) || { echo "consul: go build failed" >&2; exit 1; }

have="$(version_of "$tmp" || true)"
if [[ "$have" != "$want" ]]; then
	echo "consul: built binary reports '${have:-no version}', want $want" >&2
	exit 1
fi
mv -f "$tmp" "$out"
trap - EXIT
echo "consul: $out is $have"
