#!/bin/sh
# Assembles the smallest root filesystem meshnode runs in: the binary, the shared libraries
# it links (as ldd lists them, dynamic loader included), and an unprivileged user
# `meshnode` (uid/gid 10001) whose home /data is the data dir. No shell, no package manager.
#
#   sh deploy/docker/rootfs.sh BINARY DIR
#
# The Dockerfile's build stage runs it; so does build-offline.sh, which imports DIR as an
# image on machines that cannot pull a base image.
set -eu
if [ $# -ne 2 ]; then
  echo "usage: $0 BINARY DIR" >&2
  exit 2
fi
bin=$1
root=$2
mkdir -p "$root/usr/local/bin" "$root/etc/meshnode" "$root/data" "$root/tmp"
cp "$bin" "$root/usr/local/bin/meshnode"
# Every absolute path in ldd's output is a library (or the loader) the binary needs.
ldd "$bin" | tr ' \t' '\n\n' | grep '^/' | sort -u | while read -r lib; do
  cp -L --parents "$lib" "$root"
done
printf 'root:x:0:0:root:/root:/sbin/nologin\nmeshnode:x:10001:10001:meshnode:/data:/sbin/nologin\n' \
  > "$root/etc/passwd"
printf 'root:x:0:\nmeshnode:x:10001:\n' > "$root/etc/group"
chown 10001:10001 "$root/data"
chmod 0755 "$root/data"
chmod 1777 "$root/tmp"
