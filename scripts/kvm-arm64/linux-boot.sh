#!/bin/sh
# linux-boot.sh CPUS [VMM]: inside the kvm-arm64 harness's L1 machine, boots the Debian arm64
# kernel with linux-init.sh as its /init under axvm (VMM axvm, the default) or QEMU with KVM
# (VMM qemu-virt: -M virt -cpu host, the reference), with CPUS vCPUs and 512 MiB, and checks
# that the guest's checks passed and that its poweroff (PSCI SYSTEM_OFF) stopped the VM with
# status 0. Prints the guest's console, then one "linux-boot:" verdict line with the times.
cpus=$1
vmm=${2:-axvm}
mem_mib=512
cd /harness/linux || exit 1
cmdline="console=ttyAMA0 axvm.cpus=$cpus axvm.mem_mib=$mem_mib"

# boot ATTEMPT: one boot, its console in $log; prints the console and a verdict line.
# Returns 0 when it passed, 1 when the guest ran to its end but a check failed, and 2 when
# the VM stopped before the guest's end (a hang, a crash).
boot() {
  log=/tmp/linux-$vmm-$cpus.$1.log
  start=$(cut -d' ' -f1 /proc/uptime)
  case $vmm in
    axvm)
      if ! command -v axvm >/dev/null; then
        echo "linux-boot: $vmm $cpus vCPU(s): FAILED: L1 has no axvm (it did not build for aarch64)"
        return 1
      fi
      sed -e "s/@CPUS@/$cpus/" -e "s/@CMDLINE@/$cmdline/" vm.toml.in >"/tmp/linux-$cpus.toml"
      cp Image initramfs.cpio.gz /tmp/
      # The watchdog turns a hang into a report of every vCPU's state (a boot prints all
      # along); the timeout ends what the watchdog cannot, in time to print the log.
      timeout 280 axvm run --watchdog 60 "/tmp/linux-$cpus.toml" >"$log" 2>&1
      status=$?
      ;;
    qemu-virt)
      # -no-reboot turns a reboot into a QEMU exit; poweroff ends QEMU with status 0.
      timeout 280 qemu-system-aarch64 -accel kvm -cpu host -M virt,gic-version=host -smp "$cpus" \
        -m "$mem_mib" -nographic -no-reboot -monitor none -nodefaults -serial stdio \
        -kernel Image -initrd initramfs.cpio.gz -append "$cmdline" >"$log" 2>&1
      status=$?
      ;;
    *)
      echo "linux-boot: unknown VMM $vmm (axvm or qemu-virt)"
      return 1
      ;;
  esac
  seconds=$(awk -v a="$start" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1f", b - a }')
  cat "$log"
  at_init=$(sed -n 's/^linux-guest: fact uptime_at_init=//p' "$log" | tr -d '\r')
  times="/init at ${at_init:-?} s of guest uptime, $seconds s from start to stop"
  if [ "$status" = 0 ] && grep -q '^linux-guest: all checks passed' "$log"; then
    echo "linux-boot: $vmm $cpus vCPU(s) poweroff: passed; $times"
    return 0
  fi
  echo "linux-boot: $vmm $cpus vCPU(s) poweroff: FAILED (status $status); $times"
  grep -q "^linux-guest: ending with poweroff" "$log" && return 1
  return 2
}

# A boot that stops before the guest's end is tried once more, saying so: the emulated
# machine under L1 is not above losing an interrupt. A check that fails, or a second stop,
# fails the step; the first stop stays in the log.
boot 1
result=$?
if [ "$result" = 2 ]; then
  echo "linux-boot: $vmm $cpus vCPU(s): RETRIED: the first boot stopped before the guest's end"
  boot 2
  result=$?
fi
[ "$result" = 0 ]
