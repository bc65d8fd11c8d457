#!/usr/bin/env bash
# Builds the container images of a cloudrift deployment with nothing but a
# Docker engine (no registry, no buildx): the image of a cloudrift binary,
# and the image of a Consul agent. Both are FROM scratch around static
# binaries built on this host.
#
#   deploy/build.sh                      # cloudrift:dev from ./cmd/cloudrift,
#                                        # and cloudrift-consul:dev
#   deploy/build.sh -p ./examples/openworld/cmd/openworld -t openworld:dev
#                                        # a studio's binary
#   deploy/build.sh -n                   # the cloudrift image only
#
# Flags:
#   -p PACKAGE   the Go main package to build (default ./cmd/cloudrift)
#   -t IMAGE     the binary's image (default cloudrift:dev)
#   -f FILE      the system file baked in (default deploy/cluster.yaml)
#   -c IMAGE     the Consul image (default cloudrift-consul:dev)
#   -n           do not build the Consul image
#
# The Consul binary is $CONSUL_BIN, else <repo>/.bin/consul, which
# tools/consul/build.sh builds when it is missing (minutes, the first time).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"

pkg=./cmd/cloudrift
image=cloudrift:dev
system="$here/cluster.yaml"
consul_image=cloudrift-consul:dev
with_consul=1
while getopts "p:t:f:c:nh" opt; do
	case "$opt" in
	p) pkg="$OPTARG" ;;
	t) image="$OPTARG" ;;
	f) system="$(cd "$(dirname "$OPTARG")" && pwd)/$(basename "$OPTARG")" ;;
	c) consul_image="$OPTARG" ;;
	n) with_consul= ;;
	h) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[[ $# -eq 0 ]] || { echo "build.sh: unexpected argument $1 (see -h)" >&2; exit 2; }
[[ -f "$system" ]] || { echo "build.sh: no system file $system" >&2; exit 1; }

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
mkdir -m 1777 "$ctx/tmp"

echo "build.sh: go build $pkg (static)"
(cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$ctx/cloudrift" "$pkg")
cp "$system" "$ctx/cluster.yaml"
cp "$here/Dockerfile" "$ctx/Dockerfile"
echo "build.sh: docker build $image"
docker build -q -t "$image" "$ctx" >/dev/null

[[ -n "$with_consul" ]] || exit 0
bin="${CONSUL_BIN:-$root/.bin/consul}"
if [[ ! -x "$bin" ]]; then
	[[ -z "${CONSUL_BIN:-}" ]] || { echo "build.sh: CONSUL_BIN=$bin is not an executable" >&2; exit 1; }
	bash "$root/tools/consul/build.sh"
fi
rm -f "$ctx/cloudrift" "$ctx/cluster.yaml" "$ctx/Dockerfile"
mkdir "$ctx/data"
cp "$bin" "$ctx/consul"
cp "$here/consul.Dockerfile" "$ctx/Dockerfile"
echo "build.sh: docker build $consul_image"
docker build -q -t "$consul_image" "$ctx" >/dev/null
