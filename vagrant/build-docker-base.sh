#!/usr/bin/env bash
# Builds the base image of the Vagrantfile's docker provider, locally and with
# no registry pull: debootstrap a minimal Debian bookworm (systemd as init,
# openssh-server, python3 for Ansible, sudo) from the mirror apt already uses,
# add Vagrant's "vagrant" user with the well-known insecure public key (Vagrant
# swaps in a per-machine key at first boot, as with any box), and `docker
# import` it. The tag is a hash of this script, so a second run finds the image
# and returns at once; a lock makes concurrent callers wait for one build.
#
#   vagrant/build-docker-base.sh            # prints the tag, e.g. pflex-vagrant-base:3f2a...
#   PFLEX_DEBIAN_MIRROR=http://... vagrant/build-docker-base.sh
#
# Needs root (debootstrap), docker, and the Debian archive.
set -euo pipefail

REPO=pflex-vagrant-base
SUITE=bookworm
PACKAGES=systemd,systemd-sysv,dbus,openssh-server,python3,python3-apt,sudo,iproute2,ca-certificates,procps,libstdc++6
here=$(cd "$(dirname "$0")" && pwd)
tag="$REPO:$(sha256sum "$0" | cut -c1-16)"

log() { echo "build-docker-base: $*" >&2; }
have() { docker image inspect "$tag" >/dev/null 2>&1; }

if have; then echo "$tag"; exit 0; fi
[ "$(id -u)" -eq 0 ] || { log "debootstrap needs root"; exit 1; }
for cmd in debootstrap docker tar; do
  PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null || { log "$cmd is missing"; exit 1; }
done

# The mirror apt is configured with (deb822 or one-line format), unless given.
mirror() {
  if [ -n "${PFLEX_DEBIAN_MIRROR:-}" ]; then echo "$PFLEX_DEBIAN_MIRROR"; return; fi
  local m
  m=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -E '/debian/?$' | head -n1 || true)
  [ -n "$m" ] || m=$(grep -hE '^deb\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '{print $2}' | grep -E '/debian/?$' | head -n1 || true)
  echo "${m:-http://deb.debian.org/debian}"
}

exec 9>"/tmp/$REPO.lock"
flock -w 1200 9 || { log "timed out waiting for /tmp/$REPO.lock"; exit 1; }
if have; then echo "$tag"; exit 0; fi

work=$(mktemp -d /tmp/pflex-vagrant-base.XXXXXX)
cleanup() {
  # debootstrap mounts /proc and /sys in the target; never recurse into them.
  grep -o " $work/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
rootfs="$work/rootfs"
t0=$(date +%s)
log "debootstrap $SUITE from $(mirror) into $rootfs"
PATH="$PATH:/usr/sbin:/sbin" debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$(mirror)" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

# Vagrant's conventions for a box: user vagrant, password-less sudo, the
# insecure public key (replaced by a per-machine key at first `vagrant up`).
pub=$(find /usr/share/rubygems-integration /usr/lib/ruby /opt/vagrant -path '*/keys/vagrant.pub' 2>/dev/null | head -n1 || true)
[ -n "$pub" ] || pub="$here/vagrant.pub"
[ -f "$pub" ] || { log "Vagrant's insecure public key (keys/vagrant.pub) not found"; exit 1; }
chroot "$rootfs" useradd -m -s /bin/bash vagrant
install -d -m 0700 -o 1000 -g 1000 "$rootfs/home/vagrant/.ssh"
install -m 0600 -o 1000 -g 1000 "$pub" "$rootfs/home/vagrant/.ssh/authorized_keys"
echo 'vagrant ALL=(ALL) NOPASSWD: ALL' >"$rootfs/etc/sudoers.d/vagrant"
chmod 0440 "$rootfs/etc/sudoers.d/vagrant"
printf 'UseDNS no\n' >"$rootfs/etc/ssh/sshd_config.d/vagrant.conf"

# Every container gets its own host keys and machine id at first boot.
rm -f "$rootfs"/etc/ssh/ssh_host_*
cat >"$rootfs/etc/systemd/system/ssh-hostkeys.service" <<'UNIT'
[Unit]
Description=Generate SSH host keys of this container
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
UNIT
ln -s /etc/systemd/system/ssh-hostkeys.service "$rootfs/etc/systemd/system/multi-user.target.wants/ssh-hostkeys.service"
: >"$rootfs/etc/machine-id"
# What a container has no use for (consoles, udev, time sync against the host's clock).
for u in getty@tty1.service console-getty.service systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
         systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$u"
done
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/*.log

tar -C "$rootfs" --numeric-owner -cf - . | docker import \
  --change 'ENV container=docker' \
  --change 'CMD ["/sbin/init"]' \
  --change 'LABEL pflex.vagrant-base=1' \
  - "$tag" >/dev/null
# Older builds of this image (an earlier version of this script) are dropped.
docker images "$REPO" --format '{{.Repository}}:{{.Tag}}' | grep -vxF "$tag" | xargs -r docker image rm >/dev/null 2>&1 || true
log "built $tag in $(( $(date +%s) - t0 )) s"
echo "$tag"
