#!/bin/sh
# Builds the meshnode image from a binary built on this machine, with no registry and no base
# image: rootfs.sh assembles the root filesystem and `docker import` turns it into an image
# with the same user, working directory, ports and entry point as the Dockerfile's final
# stage. For machines that cannot pull the Dockerfile's `rust` build image (air-gapped hosts)
# and the CI test (tests/docker_swarm.rs).
#
#   sh deploy/docker/build-offline.sh [BINARY [TAG]]    (default: target/release/meshnode meshnode:local)
set -eu
bin=${1:-target/release/meshnode}
tag=${2:-meshnode:local}
here=$(dirname "$0")
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
sh "$here/rootfs.sh" "$bin" "$root"
tar -C "$root" --numeric-owner -cf - . | docker import \
  --change 'USER 10001:10001' \
  --change 'WORKDIR /data' \
  --change 'EXPOSE 9000 8545' \
  --change 'ENTRYPOINT ["/usr/local/bin/meshnode"]' \
  --change 'CMD ["--help"]' \
  - "$tag"
