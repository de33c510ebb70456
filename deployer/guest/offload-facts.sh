#!/bin/sh
# offload-facts: what this guest sees, printed to the console for `offload deploy` to verify.
# Install it in a production image and run it once at boot, its output on the first serial
# port, e.g. a systemd unit with ExecStart=/usr/local/sbin/offload-facts and
# StandardOutput=file:/dev/ttyS0. Every line starts with "offload-fact: "; the last is
# "offload-ready". POSIX sh and /proc, /sys only, so busybox is enough.
fact() { echo "offload-fact: $1=$2"; }

fact vcpus "$(grep -c '^processor' /proc/cpuinfo)"
fact mem_total_kib "$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
# RAM the firmware handed to the kernel (E820 "System RAM"): configured memory minus the
# legacy holes, before the kernel reserves its own part, so it is what a size asked for.
ram=0
for entry in /sys/firmware/memmap/*; do
  [ -r "$entry/type" ] || continue
  [ "$(cat "$entry/type")" = "System RAM" ] || continue
  ram=$((ram + $(cat "$entry/end") - $(cat "$entry/start") + 1))
done
[ "$ram" -gt 0 ] && fact mem_firmware_kib $((ram / 1024))
for dev in /sys/bus/pci/devices/*; do
  [ "$(cat "$dev/vendor" 2>/dev/null)" = "0x10de" ] || continue
  fact gpu_pci "${dev##*/} $(cat "$dev/vendor"):$(cat "$dev/device") class=$(cat "$dev/class")"
done
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits 2>/dev/null |
    while IFS= read -r line; do fact gpu_nvidia_smi "$line"; done
fi
if [ -x /opt/offload/app/run ]; then
  echo "offload-app-begin"
  (cd /opt/offload/app && ./run) 2>&1
  status=$?
  echo "offload-app-end"
  fact app_exit_status "$status"
fi
echo "offload-ready"
