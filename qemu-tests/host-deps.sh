#!/usr/bin/env bash
# Installs the Debian packages the test suite needs on the host, idempotently, saying
# what it does: full-system QEMU for the four architectures (from bookworm-backports,
# because the machine's qemu-utils already comes from there and bookworm's
# qemu-system 7.2 conflicts with it), the tools the lab uses to unpack Debian
# packages, busybox-static (the root filesystem of the privileged host tests), and
# crun and runc (peers the conformance scenario and the benchmarks run beside husk),
# umoci and skopeo (they make the real OCI and docker images the image tests import),
# the shellcheck tool (the init scripts of board-configs/ are checked with it), and
# nginx-light (the reference server of update repositories: delta-updater/tests/nginx.rs),
# e2fsprogs (mkfs.ext4 makes the powercut scenario's disks), qemu-user-static and
# openssl (cross/tls-check runs each target's husk-tls against an HTTPS server
# with a test certificate).
set -euo pipefail

need=()
for bin in qemu-system-aarch64 qemu-system-arm qemu-system-riscv64 qemu-system-x86_64; do
    command -v "$bin" >/dev/null 2>&1 || need+=("$bin")
done
for bin in dpkg-deb python3 xz zstd mkfs.ext4 openssl qemu-aarch64-static qemu-arm-static qemu-riscv64-static; do
    command -v "$bin" >/dev/null 2>&1 || need+=("$bin")
done
[ -x /bin/busybox ] || need+=(busybox)
[ -x /usr/sbin/nginx ] || need+=(nginx)
# The conformance scenario checks itself against crun and runc in the guest of
# the host's architecture.
for bin in crun runc umoci skopeo shellcheck; do
    command -v "$bin" >/dev/null 2>&1 || need+=("$bin")
done
if [ ${#need[@]} -eq 0 ]; then
    echo "deps: qemu-system (arm, aarch64, riscv64, x86_64), qemu-user-static, unpack tools, busybox-static, crun, runc, umoci, skopeo, shellcheck, nginx, mkfs.ext4, openssl present"
    exit 0
fi
echo "deps: missing ${need[*]}; installing from Debian"

if [ "$(id -u)" -ne 0 ]; then
    echo "deps: must run as root to install packages (apt-get)" >&2
    exit 1
fi

. /etc/os-release
codename=${VERSION_CODENAME:-bookworm}
list=/etc/apt/sources.list.d/husk-backports.sources
if [ "$codename" = bookworm ] && ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    # Reuse the machine's own mirror, never a hard-coded host.
    uri=$(grep -hm1 '^URIs:' /etc/apt/sources.list.d/debian.sources 2>/dev/null | awk '{print $2}' || true)
    if [ -z "$uri" ]; then
        uri=$(grep -hm1 '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' || true)
    fi
    [ -n "$uri" ] || { echo "deps: cannot find the machine's Debian mirror" >&2; exit 1; }
    echo "deps: adding bookworm-backports from $uri"
    cat >"$list" <<SRC
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
echo "deps: apt-get update"
apt-get update -qq >/dev/null
pkgs=(qemu-system-arm qemu-system-riscv qemu-system-x86 dpkg xz-utils zstd python3 python3-venv
      ca-certificates busybox-static crun runc umoci skopeo shellcheck nginx-light e2fsprogs
      qemu-user-static openssl)
if [ "$codename" = bookworm ]; then
    echo "deps: apt-get install -t bookworm-backports ${pkgs[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -t bookworm-backports "${pkgs[@]}" >/dev/null
else
    echo "deps: apt-get install ${pkgs[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi
