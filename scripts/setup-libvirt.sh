#!/usr/bin/env bash
# Provides what the deployment tests need, and only what is missing (fast when all is there):
#   1. Debian packages: libvirtd with the QEMU driver, qemu-system-x86, virsh, libvirt-dev,
#      pkg-config (to build libvirt-python) and libxml2-utils (virt-xml-validate's xmllint);
#   2. the `libvirt-qemu` user and the directories a hand-started libvirtd expects;
#   3. virtlogd and libvirtd running in the background (CI has no systemd), socket ready;
#   4. libvirt-python built into the project's venv;
#   5. the tiny test guest's parts, from Debian packages: the cloud kernel and a static busybox,
#      unpacked into .cache/guest/ (the initramfs itself is made at test time); into
#      /var/cache/offload/guest/ instead when QEMU's user could not reach .cache/ (a checkout
#      under a private home directory).
# Writes .cache/libvirt-setup.env saying what it provided; tests that need a component it
# could not provide (not root, no apt) skip with the reason recorded there. As root (CI),
# any failure is an error: the script exits non-zero and `make test` stops.
# Usage: bash scripts/setup-libvirt.sh        (VENV=path overrides .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
CACHE=.cache
GUEST=$CACHE/guest
STATUS=$CACHE/libvirt-setup.env
PACKAGES=(libvirt-daemon libvirt-daemon-driver-qemu qemu-system-x86 libvirt-clients libvirt-dev
          pkg-config libxml2-utils)
SOCKET=/run/libvirt/libvirt-sock
LOGD_SOCKET=/run/libvirt/virtlogd-sock

listening() {
  python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])' "$1" 2>/dev/null
}

mkdir -p "$CACHE"
[ -f "$CACHE/.gitignore" ] || echo '*' > "$CACHE/.gitignore"

unavailable() {   # nothing can be provided here: record why, let the tests skip
  printf 'OFFLOAD_LIBVIRT_UNAVAILABLE=%q\n' "$1" > "$STATUS"
  echo "setup-libvirt: $1 (libvirt tests will skip)" >&2
  exit 0
}
no_libvirtd=""

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    unavailable "missing Debian packages ${missing[*]}; run this script as root on Debian 12"
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt_install() { apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
  apt_install || { apt-get update -qq && apt_install; }
fi

if [ "$(id -u)" -ne 0 ]; then
  # Unprivileged: use a system libvirtd if one runs and lets this user in; start nothing.
  if ! listening "$SOCKET"; then
    no_libvirtd="no libvirtd answers on $SOCKET, and only root may start one"
  elif ! refusal=$(virsh -q -c qemu:///system uri 2>&1 >/dev/null); then
    no_libvirtd="qemu:///system refuses $(id -un): $(echo "$refusal" | head -1)"
  fi
else
  getent group kvm >/dev/null || groupadd --system kvm
  getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
  id libvirt-qemu >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /var/lib/libvirt \
    --shell /usr/sbin/nologin --gid libvirt-qemu --groups kvm libvirt-qemu
  mkdir -p /var/log/libvirt/qemu /var/lib/libvirt/qemu /var/cache/libvirt/qemu /run/libvirt
  # A daemon is up when its socket accepts a connection (a socket file alone may be stale).
  if ! listening "$LOGD_SOCKET"; then
    rm -f "$LOGD_SOCKET"
    virtlogd --daemon
  fi
  if ! listening "$SOCKET"; then
    rm -f "$SOCKET"
    libvirtd --daemon
  fi
  for _ in $(seq 1 300); do listening "$SOCKET" && break; sleep 0.1; done
  listening "$SOCKET" || { echo "setup-libvirt: libvirtd does not answer on $SOCKET" >&2; exit 1; }
  runuser -u libvirt-qemu -- test -x "$PWD/$CACHE" || GUEST=/var/cache/offload/guest
fi
mkdir -p "$GUEST"

if ! "$VENV/bin/python" -c 'import libvirt' 2>/dev/null; then
  "$VENV/bin/python" -m pip install -q 'libvirt-python>=9.0'
fi

# The tiny guest: Debian's cloud kernel (the versioned package the metapackage depends on)
# and busybox-static, downloaded as .deb files and unpacked without installing them.
fetch() {   # fetch PACKAGE FILE-IN-PACKAGE DEST
  local work
  [ -s "$3" ] && return 0
  work=$(mktemp -d "$GUEST/fetch.XXXXXX")
  (cd "$work" && apt-get download -qq "$1" >/dev/null 2>&1) ||
    (apt-get update -qq && cd "$work" && apt-get download -qq "$1" >/dev/null)
  dpkg-deb -x "$work"/*.deb "$work/root"
  # shellcheck disable=SC2086  # the pattern must expand
  cp $work/root/$2 "$3.tmp" && mv "$3.tmp" "$3"
  rm -rf "$work"
}
cloud_kernel() { apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}'; }
kernel_pkg=$(cloud_kernel)
[ -n "$kernel_pkg" ] || { apt-get update -qq && kernel_pkg=$(cloud_kernel); }
[ -n "$kernel_pkg" ] || { echo "setup-libvirt: apt does not know linux-image-cloud-amd64" >&2; exit 1; }
fetch "$kernel_pkg" 'boot/vmlinuz-*' "$GUEST/vmlinuz"
fetch busybox-static 'bin/busybox' "$GUEST/busybox"
chmod 0755 "$GUEST/busybox"
chmod 0644 "$GUEST/vmlinuz"

{
  echo "OFFLOAD_LIBVIRT_URI=qemu:///system"
  printf 'OFFLOAD_GUEST_KERNEL=%q\n' "$(realpath "$GUEST/vmlinuz")"
  printf 'OFFLOAD_GUEST_BUSYBOX=%q\n' "$(realpath "$GUEST/busybox")"
  [ -z "$no_libvirtd" ] || printf 'OFFLOAD_LIBVIRT_UNAVAILABLE=%q\n' "$no_libvirtd"
} > "$STATUS"
echo "setup-libvirt: ${no_libvirtd:-libvirtd ready at qemu:///system}; guest kernel $kernel_pkg" >&2
