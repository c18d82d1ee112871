#!/bin/sh
# /init of the Debian kernel in the kvm-amd harness's virtio steps (under axvm's virtio-mmio
# devices, and under QEMU -M microvm's for reference). Debian's cloud kernel has virtio,
# virtio_mmio and the virtio drivers as modules: this loads them (/modules/order, in
# dependency order), then does what /proc/cmdline's axvm.virtio= says:
#   blk        mounts /dev/vda (ext4), prints /hello.txt and host.bin's md5, writes
#              /guest.txt (axvm.token=) and /guest.bin, syncs, unmounts
#   net        sets axvm.ip=/24 on the first network interface, pings axvm.peer= until it
#              answers, then `ping -c 3`; stays up until pinged 3 times itself
#   console    prints its checks to /dev/hvc0 only (virtio-console)
#   bench-blk  vbench blk /dev/vda (sequential and random I/O, O_DIRECT)
#   bench-net  axvm.ip= and axvm.peer= as for net; axvm.role=recv|send: vbench recv or send
# and then powers off. Lines start with "virtio-guest: NAME: " (axvm.name=, the VM's name:
# two VMs may share one console), "ok"/"FAIL" per check; last "all checks passed" or
# "N check(s) failed"; vbench's result lines pass through as they are.
# shellcheck disable=SC2016 # check and wait_for take conditions to eval, quoted as such
export PATH=/bin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /mnt /tmp

arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^axvm\.$1=//p"; }
name=$(arg name)
role=$(arg virtio)
say() { echo "virtio-guest: ${name:-vm}: $*"; }
failed=0
check() { # check NAME CONDITION DETAIL
  if eval "$2"; then say "ok   $1: $3"; else say "FAIL $1: $3"; failed=$((failed + 1)); fi
}
uptime_s() { cut -d' ' -f1 /proc/uptime; }

# wait_for SECONDS CONDITION: polls CONDITION every 0.2 s; false when it did not hold
# within SECONDS.
wait_for() {
  deadline=$(($(cut -d. -f1 /proc/uptime) + $1))
  while ! eval "$2"; do
    [ "$(cut -d. -f1 /proc/uptime)" -lt "$deadline" ] || return 1
    usleep 200000
  done
}

load_modules() {
  while read -r module; do
    insmod "/modules/$module.ko" 2>&1 | sed "s/^/virtio-guest: ${name:-vm}: insmod $module: /"
  done </modules/order
}

# What the kernel made of the machine's virtio devices: each device's virtio ID and where
# it hangs (under QEMU microvm and axvm, an ACPI LNRO0005 platform device), its interrupt
# as /proc/interrupts shows it, and (axvm.dsdt=1) the DSDT itself, base64, for iasl -d.
virtio_facts() {
  for device in /sys/bus/virtio/devices/*; do
    [ -e "$device" ] || continue
    say "fact virtio_device $(basename "$device") id=$(cat "$device/device") at $(readlink -f "$device" | sed 's#^/sys/devices/##')"
  done
  grep -iE 'virtio|LNRO' /proc/interrupts | tr -s ' ' | sed "s/^/virtio-guest: ${name:-vm}: fact interrupt /"
  [ "$(arg dsdt)" = 1 ] && say "fact dsdt_base64=$(base64 -w 0 /sys/firmware/acpi/tables/DSDT)"
}

# The kernel's virtio lines, to see what a failing VM's devices did.
virtio_dmesg() {
  dmesg | grep -iE 'virtio|LNRO|vd[a-z]|hvc|eth[0-9]' | sed "s/^/virtio-guest: ${name:-vm}: dmesg: /"
}

# vda: waits for /dev/vda; false when it did not come.
vda() {
  wait_for 10 '[ -b /dev/vda ]'
  check vda '[ -b /dev/vda ]' "/dev/vda, $(cat /sys/block/vda/size 2>/dev/null) sectors"
  [ -b /dev/vda ]
}

blk() {
  vda || return
  check mount 'mount -t ext4 /dev/vda /mnt' "mount -t ext4 /dev/vda /mnt"
  grep -q ' /mnt ' /proc/mounts || return
  say "hello.txt: $(cat /mnt/hello.txt)"
  say "host.bin md5: $(md5sum </mnt/host.bin | cut -d' ' -f1)"
  arg token >/mnt/guest.txt
  # 2 MiB in 64 KiB writes: requests of many segments, and an extent the host must find.
  dd if=/dev/urandom of=/mnt/guest.bin bs=64k count=32 2>/dev/null
  say "guest.bin md5: $(md5sum </mnt/guest.bin | cut -d' ' -f1)"
  sync
  check umount 'umount /mnt' "umount /mnt after sync"
}

# icmp_in_echos: echo requests this kernel answered (the 'InEchos' column of Icmp:).
icmp_in_echos() {
  awk '/^Icmp:/ { if (!n) { for (i = 1; i <= NF; i++) col[$i] = i; n = 1 } else print $col["InEchos"] }' /proc/net/snmp
}

# ethernet: the first Ethernet interface's name (virtio_net's ethN), if there is one.
ethernet() {
  for path in /sys/class/net/eth* /sys/class/net/en*; do
    [ -e "$path" ] && echo "${path##*/}" && return
  done
}

net_up() {
  ip link set lo up
  wait_for 10 '[ -n "$(ethernet)" ]'
  iface=$(ethernet)
  check interface '[ -n "$iface" ]' "network interface ${iface:-none} ($(cat "/sys/class/net/$iface/address" 2>/dev/null))"
  [ -n "$iface" ] || return 1
  ip addr add "$(arg ip)/24" dev "$iface" && ip link set "$iface" up
  say "$iface is $(arg ip)/24; peer $(arg peer)"
}

net() {
  net_up || return
  peer=$(arg peer)
  check peer-answers 'wait_for 90 "ping -c 1 -W 1 $peer >/dev/null 2>&1"' "$peer answers a ping"
  ping -c 3 "$peer" >/tmp/ping 2>&1
  sed "s/^/virtio-guest: $name: ping: /" /tmp/ping
  check ping 'grep -q "3 packets received" /tmp/ping' "ping -c 3 $peer: 3 replies"
  # The peer pings us too: stay until it has (or a minute has passed).
  wait_for 60 '[ "$(icmp_in_echos)" -ge 3 ]'
  check pinged '[ "$(icmp_in_echos)" -ge 3 ]' "answered $(icmp_in_echos) echo request(s), at least 3"
  sleep 1
}

console() {
  wait_for 10 '[ -c /dev/hvc0 ]'
  if [ ! -c /dev/hvc0 ]; then
    check hvc0 false "/dev/hvc0 after loading virtio_console"
    return
  fi
  # From here on, only through virtio-console: the harness finds these lines only if it
  # carried them.
  exec >/dev/hvc0 2>&1
  say "writing through hvc0"
  check hvc0 true "/dev/hvc0 is $(cat /sys/class/tty/hvc0/dev)"
  check consoles 'grep -q "^hvc0" /proc/consoles' "hvc0 in /proc/consoles: $(grep -o '^hvc0 *[A-Z-]*' /proc/consoles)"
  say "console output through virtio-console"
}

bench_blk() {
  vda || return
  check vbench-blk '/bin/vbench blk /dev/vda "$(arg seconds)"' "vbench blk /dev/vda"
}

bench_net() {
  net_up || return
  peer=$(arg peer)
  check peer-answers 'wait_for 90 "ping -c 1 -W 1 $peer >/dev/null 2>&1"' "$peer answers a ping"
  case $(arg role) in
    recv) check vbench-recv '/bin/vbench recv 5001' "vbench recv 5001" ;;
    *)
      ping -c 5 "$peer" | sed -n 's/^round-trip \(.*\)$/vbench: net-ping-rtt \1/p'
      check vbench-send '/bin/vbench send "$peer" 5001 "$(arg seconds)"' "vbench send $peer 5001"
      ;;
  esac
}

say "fact uptime_at_init=$(uptime_s)"
load_modules
virtio_facts
case $role in
  blk) blk ;;
  net) net ;;
  console) console ;;
  bench-blk) bench_blk ;;
  bench-net) bench_net ;;
  *) check role false "axvm.virtio=$role is none of blk, net, console, bench-blk, bench-net" ;;
esac
[ "$failed" = 0 ] || virtio_dmesg
if [ "$failed" = 0 ]; then say "all checks passed"; else say "$failed check(s) failed"; fi
say "powering off at $(uptime_s) s"
poweroff -f
