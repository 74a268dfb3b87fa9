#!/usr/bin/env bash
# Build the free4allweb lab image: Debian bookworm with systemd as PID 1.
# Pulls nothing: the rootfs comes from debootstrap against the host's Debian mirror.
# The image is tagged with a hash of this recipe and rebuilt only when the recipe changes.
#
# usage: lab/image/build.sh            build if missing, print the image name
#        lab/image/build.sh --name     print the image name only
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$repo/lab/containers.conf}
name=${LAB_IMAGE_NAME:-localhost/free4allweb-lab}
recipe_hash=$(cat "$here/build.sh" "$here/packages.txt" "$here/prefetch.txt" | sha256sum | cut -c1-12)
image="$name:$recipe_hash"

if [ "${1:-}" = "--name" ]; then echo "$image"; exit 0; fi

if podman image exists "$image"; then
  podman tag "$image" "$name:latest"
  echo "$image"
  exit 0
fi

mirror=${LAB_DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
mirror=${mirror:-http://deb.debian.org/debian}
packages=$(grep -v '^#' "$here/packages.txt" | xargs | tr ' ' ',')
prefetch=$(grep -v '^#' "$here/prefetch.txt" | xargs)

work=$(mktemp -d /var/tmp/f4a-rootfs.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
echo "building $image from $mirror (debootstrap, a few minutes)" >&2
debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -30 "$work/debootstrap.log" >&2; exit 1; }

cat >"$rootfs/etc/apt/sources.list" <<SRC
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror%/debian}/debian-security bookworm-security main
SRC
# services never start inside the chroot while building
printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"; chmod +x "$rootfs/usr/sbin/policy-rc.d"
chroot "$rootfs" apt-get -q update >"$work/apt.log" 2>&1
# shellcheck disable=SC2086
chroot "$rootfs" env DEBIAN_FRONTEND=noninteractive apt-get -q -y --download-only install $prefetch >>"$work/apt.log" 2>&1 \
  || { tail -30 "$work/apt.log" >&2; exit 1; }
rm -f "$rootfs/usr/sbin/policy-rc.d"

# A container, not a machine: no getty, no udev triggers, no time sync fighting the host.
chroot "$rootfs" systemctl mask getty@tty1.service console-getty.service systemd-udevd.service \
  systemd-udev-trigger.service systemd-timesyncd.service systemd-resolved.service \
  sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount >/dev/null 2>&1 || true
: >"$rootfs/etc/machine-id"
rm -rf "$rootfs"/var/log/*.log "$rootfs"/tmp/*

tar -C "$rootfs" -c . | podman import \
  --change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL SIGRTMIN+3' \
  --change "LABEL org.free4allweb.recipe=$recipe_hash" - "$image" >/dev/null
podman tag "$image" "$name:latest"
echo "$image"
