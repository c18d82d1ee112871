#!/bin/sh
# virtio-run.sh TEST VMM: inside the kvm-amd harness's L1 machine, boots the Debian kernel
# with virtio-init.sh as its /init and virtio-mmio devices, under axvm (VMM axvm: one
# `axvm run` for all the test's VMs, devices as emu_devices rows) or QEMU (VMM
# qemu-microvm: one `qemu-system-x86_64 -accel kvm -M microvm,acpi=on` per VM, whose ACPI
# tables describe its virtio-mmio devices as axvm's do, LNRO0005 nodes), and judges it:
#   blk        an ext4 image made on the harness's host (mke2fs -d): the guest prints its
#              files and writes its own; afterwards debugfs reads them back, e2fsck -fn
#              must find the file system clean
#   net        two VMs on one L2 switch (axvm: switch:lan; QEMU: -netdev socket,udp=, a
#              point-to-point link of two VMs), 10.0.0.1 and 10.0.0.2, ping each other
#   tap        one VM, 10.0.1.2, on the tap axvmtap0 (busybox tunctl makes it persistent
#              beforehand, and L1 gives it 10.0.1.1): the VM pings L1, and L1 the VM
#   console    the VM's /init writes only to /dev/hvc0 (virtio-console, console=hvc0)
#   bench-blk  vbench on a 128 MiB raw file in L1's tmpfs (made afresh, the same for both)
#   bench-net  vbench TCP throughput between two VMs on one switch, and their ping time
# Prints each VM's console, then "virtio: VMM TEST: passed" or "... FAILED: why" lines;
# exits 0 when it passed. As linux-boot.sh does, it runs the test once more when a VM
# stopped before its /init's end (in this nested machine a kernel now and then hangs early
# in its boot, under QEMU as under axvm), saying "RETRIED".
test=$1
vmm=$2
here=/harness/virtio
out=/tmp/virtio-$vmm-$test
rm -rf "$out"
mkdir -p "$out"
# A booting VM whose console stays silent for boot_silence seconds before its /init has
# hung (how long a boot takes depends on the host's load: two VMs side by side reached /init
# after 25 to 65 s here, printing all along). vm_timeout bounds a whole run; a hung run is
# tried again only when a whole run still fits in the harness's 240 s per step.
boot_silence=40
vm_timeout=120
step_start=$(cut -d. -f1 /proc/uptime)
bench_seconds=3
failures=0
reasons=
fail() {
  reasons="$reasons${reasons:+
}$*"
  failures=$((failures + 1))
}

# --- the test's VMs ---------------------------------------------------------------------

# vm NAME CMDLINE DEVICE...: adds a VM. A DEVICE is "blk|FILE", "net|BACKEND|MAC" (BACKEND
# axvm's: switch:NAME or tap:NAME) or "console".
vms=
vm() {
  name=$1
  vms="$vms $name"
  eval "cmdline_$name=\"console=ttyS0 axvm.name=$name \$2\""
  shift 2
  eval "devices_$name=\"$*\""
}

case $test in
  blk)
    token="written-by-the-$vmm-guest-$(cut -d' ' -f1 /proc/uptime)"
    vm a "axvm.virtio=blk axvm.token=$token axvm.dsdt=1" "blk|$out/disk.img"
    ;;
  net)
    vm a "axvm.virtio=net axvm.ip=10.0.0.1 axvm.peer=10.0.0.2" "net|switch:lan|52:54:00:12:34:01"
    vm b "axvm.virtio=net axvm.ip=10.0.0.2 axvm.peer=10.0.0.1" "net|switch:lan|52:54:00:12:34:02"
    ;;
  tap)
    vm a "axvm.virtio=net axvm.ip=10.0.1.2 axvm.peer=10.0.1.1" "net|tap:axvmtap0|52:54:00:12:34:03"
    ;;
  console)
    vm a "console=hvc0 axvm.virtio=console" "console"
    ;;
  bench-blk)
    vm a "axvm.virtio=bench-blk axvm.seconds=$bench_seconds" "blk|$out/bench.img"
    ;;
  bench-net)
    vm a "axvm.virtio=bench-net axvm.role=recv axvm.ip=10.0.0.1 axvm.peer=10.0.0.2" "net|switch:lan|52:54:00:12:34:01"
    vm b "axvm.virtio=bench-net axvm.role=send axvm.seconds=5 axvm.ip=10.0.0.2 axvm.peer=10.0.0.1" "net|switch:lan|52:54:00:12:34:02"
    ;;
  *)
    echo "virtio-run: unknown test $test"
    exit 2
    ;;
esac
cmdline_of() { eval "echo \"\$cmdline_$1\""; }
devices_of() { eval "echo \"\$devices_$1\""; }

# --- QEMU -------------------------------------------------------------------------------

# qemu_devices NAME: QEMU's options for the VM's devices. QEMU has no switch: the two VMs
# of a switch exchange frames as UDP datagrams on L1's loopback, VM a from port 10501 to
# 10502, VM b the other way round (no start order, unlike a TCP listen/connect pair).
qemu_devices() {
  for device in $(devices_of "$1"); do
    # shellcheck disable=SC2046 # a device's fields are words
    set -- $(echo "$device" | tr '|' ' ')
    case $1 in
      blk) echo "-drive id=vda,file=$2,format=raw,if=none -device virtio-blk-device,drive=vda" ;;
      net)
        case $2 in
          switch:*)
            local_port=10501 peer_port=10502
            [ "$name" = a ] || { local_port=10502 peer_port=10501; }
            echo "-netdev socket,id=n0,udp=127.0.0.1:$peer_port,localaddr=127.0.0.1:$local_port"
            ;;
          tap:*) echo "-netdev tap,id=n0,ifname=${2#tap:},script=no,downscript=no" ;;
        esac
        echo "-device virtio-net-device,netdev=n0,mac=$3"
        ;;
      console)
        echo "-device virtio-serial-device -chardev file,id=hvc,path=$out/$name.hvc.log"
        echo "-device virtconsole,chardev=hvc"
        ;;
    esac
  done
}

start_qemu() {
  pids=
  for name in $vms; do
    # shellcheck disable=SC2046 # the options are words
    timeout $vm_timeout qemu-system-x86_64 -accel kvm -cpu host -M microvm,acpi=on -smp 1 \
      -m 256 -nographic -no-reboot -monitor none -nodefaults -serial stdio \
      -kernel /harness/linux/vmlinuz -initrd "$here/initramfs.cpio.gz" \
      -append "$(cmdline_of "$name") pci=off" $(qemu_devices "$name") \
      >"$out/$name.log" 2>&1 </dev/null &
    pids="${pids:+$pids }$!"
  done
}

# --- axvm -------------------------------------------------------------------------------

# axvm_config ID NAME: the VM's config, from virtio-vm.toml.in.
axvm_config() {
  rows=
  backends=
  irq=5
  gpa=0xd0000000
  for device in $(devices_of "$2"); do
    # shellcheck disable=SC2046 # a device's fields are words
    set -- "$1" "$2" $(echo "$device" | tr '|' ' ')
    case $3 in
      blk) row="vda\", $gpa, 0x1000, $irq, 0xE1" backend="vda = { path = \"$4\" }" ;;
      net) row="net0\", $gpa, 0x1000, $irq, 0xE2" backend="net0 = { net = \"$4\", mac = \"$5\" }" ;;
      console) row="hvc0\", $gpa, 0x1000, $irq, 0xE3" backend= ;;
    esac
    rows="$rows${rows:+\n}    [\"$row, []],"
    [ -z "$backend" ] || backends="$backends${backends:+\n}$backend"
    irq=$((irq + 1))
    gpa=$(printf '0x%x' $((gpa + 0x1000)))
  done
  awk -v id="$1" -v name="$2" -v cmdline="$(cmdline_of "$2")" -v rows="$rows" \
    -v backends="$backends" '{
      gsub("@ID@", id); gsub("@NAME@", name); gsub("@CMDLINE@", cmdline)
      gsub("@EMU_DEVICES@", rows); gsub("@BACKENDS@", backends); print
    }' "$here/vm.toml.in"
}

start_axvm() {
  configs=
  id=0
  for name in $vms; do
    axvm_config $id "$name" >"$out/$name.toml"
    configs="$configs $out/$name.toml"
    id=$((id + 1))
  done
  # shellcheck disable=SC2086 # one argument per config
  timeout $vm_timeout axvm run --watchdog 60 $configs >"$out/axvm.log" 2>&1 </dev/null &
  pids=$!
}

# guest_output NAME: everything the VM printed (under axvm, all VMs share one console).
guest_output() {
  case $vmm in
    axvm) cat "$out/axvm.log" ;;
    *) cat "$out/$1.log" "$out/$1.hvc.log" 2>/dev/null ;;
  esac
}

# own_output NAME: what the VM alone printed: axvm running several VMs starts each line
# with "[NAME] ".
own_output() {
  if [ "$vmm" = axvm ] && [ "$(echo "$vms" | wc -w)" -gt 1 ]; then
    grep -a "^\[$1\] " "$out/axvm.log"
  else
    guest_output "$1"
  fi
}

# --- the run and its checks -------------------------------------------------------------

# tap_up: a fresh persistent tap axvmtap0 with L1's address (one a stopped step left
# behind goes first).
tap_up() {
  grep -q '^tun ' /proc/modules || insmod /harness/modules/tun.ko || return 1
  tunctl -d axvmtap0 >/dev/null 2>&1
  tunctl -t axvmtap0 >/dev/null && ip addr add 10.0.1.1/24 dev axvmtap0 && ip link set axvmtap0 up
}

# L1's side of the tap test: the guest must answer L1's pings while it waits for them.
tap_ping_guest() {
  for _ in $(seq 90); do
    ping -c 1 -W 1 10.0.1.2 >/dev/null 2>&1 && break
    kill -0 "$pids" 2>/dev/null || break
  done
  ping -c 3 10.0.1.2 >"$out/l1-ping.log" 2>&1
  sed 's/^/virtio-run: L1 ping: /' "$out/l1-ping.log"
  grep -q '3 packets received' "$out/l1-ping.log" || fail "L1 did not get 3 replies from 10.0.1.2"
}

check_blk() {
  output=$(guest_output a)
  echo "$output" | grep -q "virtio-guest: a: hello.txt: $(cat $here/hello.txt)" ||
    fail "the guest did not print hello.txt's content, \"$(cat $here/hello.txt)\""
  echo "$output" | grep -q "virtio-guest: a: host.bin md5: $(cat $here/host.bin.md5)" ||
    fail "the guest's md5 of host.bin is not $(cat $here/host.bin.md5)"
  written=$(debugfs -R "cat /guest.txt" "$out/disk.img" 2>/dev/null)
  [ "$written" = "$token" ] || fail "guest.txt in the image holds \"$written\", not \"$token\""
  debugfs -R "dump /guest.bin $out/guest.bin" "$out/disk.img" >/dev/null 2>&1
  md5=
  [ -f "$out/guest.bin" ] && md5=$(md5sum <"$out/guest.bin" | cut -d' ' -f1)
  echo "$output" | grep -q "virtio-guest: a: guest.bin md5: $md5" ||
    fail "guest.bin in the image (md5 ${md5:-missing}) is not what the guest wrote"
  e2fsck -fn "$out/disk.img" >"$out/e2fsck.log" 2>&1 ||
    fail "e2fsck -fn finds the image damaged: $(tail -n 3 "$out/e2fsck.log" | tr '\n' ' ')"
  echo "virtio-run: read back from the image: guest.txt \"$written\", guest.bin md5 ${md5:-missing}"
}

check_console() {
  # The guest writes these lines to /dev/hvc0 only; under QEMU, hvc0 goes to its own file.
  guest_output a | grep -q 'virtio-guest: a: console output through virtio-console' ||
    fail "nothing came through virtio-console"
  if [ "$vmm" != axvm ] && grep -q 'through virtio-console' "$out/a.log"; then
    fail "the hvc0 lines came out of the serial port"
  fi
}

# watch_boots: in the background, stops the VMMs when a VM short of its /init has printed
# nothing for $boot_silence seconds (a boot that hung), leaving its name in $out/stalled.
watch_boots() {
  (
    while sleep 2; do
      booting=0
      for name in $vms; do
        guest_output "$name" | grep -q "virtio-guest: $name: fact uptime_at_init" && continue
        booting=1
        size=$(own_output "$name" | wc -c)
        last=
        since=0
        eval "last=\${size_$name:-}; since=\${since_$name:-0}"
        if [ "$size" != "$last" ]; then
          eval "size_$name=$size; since_$name=$(cut -d. -f1 /proc/uptime)"
        elif [ $(($(cut -d. -f1 /proc/uptime) - since)) -ge "$boot_silence" ]; then
          echo "$name" >"$out/stalled"
          # shellcheck disable=SC2086 # one argument per VMM
          kill $pids 2>/dev/null
          exit 0
        fi
      done
      [ "$booting" = 1 ] || exit 0
    done
  ) &
  watcher=$!
}

# fresh_files: the disk images as the test starts from them.
fresh_files() {
  case $test in
    blk) gunzip -c "$here/disk.img.gz" >"$out/disk.img" ;;
    bench-blk) dd if=/dev/zero of="$out/bench.img" bs=1M count=128 2>/dev/null ;;
  esac
}

# attempt: one run of the test's VMs and its checks, the reasons it failed in $reasons.
# Returns 0 when it passed, 1 when it failed, 2 when a VM hung: it did not reach its /init
# in time, or its VMM's timeout stopped it before its /init's end.
attempt() {
  failures=0
  reasons=
  rm -f "$out/stalled"
  fresh_files
  [ "$test" = tap ] && { tap_up || fail "could not set up the tap axvmtap0 in L1"; }
  start=$(cut -d' ' -f1 /proc/uptime)
  case $vmm in
    axvm) start_axvm ;;
    *) start_qemu ;;
  esac
  watch_boots
  # A line every 20 s while the VMs run (they print to files): the harness takes a silent L1
  # console for a frozen L1, and VMs that hang must not look like one.
  (
    while sleep 20; do echo "virtio-run: the VMs have run for $(awk -v a="$start" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.0f", b - a }') s"; done
  ) &
  heartbeat=$!
  [ "$test" = tap ] && tap_ping_guest
  statuses=
  for pid in $pids; do
    wait "$pid"
    statuses="$statuses $?"
  done
  kill "$heartbeat" "$watcher" 2>/dev/null
  seconds=$(awk -v a="$start" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1f", b - a }')
  [ "$test" = tap ] && tunctl -d axvmtap0 >/dev/null

  for name in $vms; do
    echo "----- VM $name ($(cmdline_of "$name"))"
    guest_output "$name" | tr -d '\r'
    [ "$vmm" = axvm ] && break
  done
  for status in $statuses; do
    [ "$status" = 0 ] || fail "$vmm exited with status $status"
  done
  for name in $vms; do
    guest_output "$name" | grep -q "virtio-guest: $name: all checks passed" ||
      fail "VM $name: $(guest_output "$name" | grep -c "virtio-guest: $name: FAIL") check(s) failed or it did not finish"
  done
  case $test in
    blk) check_blk ;;
    console) check_console ;;
  esac
  if [ -e "$out/stalled" ]; then
    fail "VM $(cat "$out/stalled") printed nothing for $boot_silence s before its /init"
    return 2
  fi
  [ "$failures" = 0 ] && return 0
  # A VMM stopped by its timeout, with a VM short of its end: a hang, maybe the machine's.
  for status in $statuses; do
    case $status in 124 | 143)
      for name in $vms; do
        guest_output "$name" | grep -q "virtio-guest: $name: powering off" || return 2
      done
      ;;
    esac
  done
  return 1
}

attempt
result=$?
if [ "$result" = 2 ] && [ $(($(cut -d. -f1 /proc/uptime) - step_start + vm_timeout)) -le 220 ]; then
  echo "$reasons" | sed "s/^/virtio: $vmm $test: RETRIED: the first run stopped before a VM's end: /"
  attempt
  result=$?
fi
if [ "$result" = 0 ]; then
  echo "virtio: $vmm $test: passed; $seconds s from start to stop"
else
  echo "$reasons" | sed "s/^/virtio: $vmm $test: FAILED: /"
fi
[ "$result" = 0 ]
