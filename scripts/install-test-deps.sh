#!/usr/bin/env bash
# Installs the Debian packages the test suite drives (real NBD clients, QEMU, fio,
# docker; vagrant, ansible and debootstrap for test/deploy). As root it uses
# apt; otherwise it only says what is missing.
set -euo pipefail

# command -> package that provides it
declare -A NEEDS=(
  [nbdkit]=nbdkit
  [nbdinfo]=libnbd-bin
  [nbdsh]=libnbd-bin
  [nbdcopy]=libnbd-bin
  [nbdfuse]=libnbd-bin
  [fusermount3]=fuse3
  [qemu-io]=qemu-utils
  [qemu-img]=qemu-utils
  [fio]=fio
  [mkfs.ext4]=e2fsprogs
  [e2fsck]=e2fsprogs
  [losetup]=mount
  [nbd-client]=nbd-client
  [qemu-system-x86_64]=qemu-system-x86
  [cpio]=cpio
  [gzip]=gzip
  [ldd]=libc-bin
  [apt-get]=apt
  [mount]=mount
  [dpkg-deb]=dpkg
  [iptables]=iptables
  [nsenter]=util-linux
  [dockerd]=docker.io
  [openssl]=openssl
  [vagrant]=vagrant
  [ansible-playbook]=ansible
  [debootstrap]=debootstrap
  [chromium]=chromium
)
# packages without a command to probe for
EXTRA_PKGS=(python3-libnbd busybox-static vagrant-libvirt)

missing=()
for cmd in "${!NEEDS[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEEDS[$cmd]}")
done
[ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || missing+=(busybox-static)
/usr/bin/python3 -c 'import nbd' >/dev/null 2>&1 || missing+=(python3-libnbd)
# `vagrant validate` of the libvirt provider's settings needs the plugin.
dpkg -s vagrant-libvirt >/dev/null 2>&1 || missing+=(vagrant-libvirt)
: "${EXTRA_PKGS[@]}"

# Whichever way this script ends, the container tests want a docker engine.
trap 'bash "$(dirname "$0")/ensure-dockerd.sh"' EXIT

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-test-deps: all system packages present"
  exit 0
fi
mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-deps: missing Debian packages: ${pkgs[*]}" >&2
  echo "install-test-deps: run as root: apt-get install -y ${pkgs[*]}" >&2
  echo "install-test-deps: tests that need them will skip with a message" >&2
  exit 0
fi
echo "install-test-deps: installing ${pkgs[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -q
apt-get -o DPkg::Lock::Timeout=600 install -y -q "${pkgs[@]}"
