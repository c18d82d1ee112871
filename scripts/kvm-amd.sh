#!/usr/bin/env bash
# kvm-amd.sh: runs axvm on a real hardware-style KVM, kvm_amd, on any x86_64 Linux machine.
#
# QEMU's TCG emulates AMD SVM with nested paging, and Debian's cloud kernel with kvm-amd.ko
# loaded runs on it: that is the "L1" machine this script builds and boots, and whose
# /dev/kvm runs axvm's VMs ("L2") the way a VT-x/AMD-V host does.
#
# Usage: scripts/kvm-amd.sh [--no-build] [--keep-going] [STEP...]
#
#   suite     the KVM integration tests of axvm-kvm and axvm-cli (cargo test --no-run
#             executables), with AXVM_REQUIRE_KVM=1; KVM_AMD_SUITE=gdb,stops runs only
#             the test targets named (comma-separated, e.g. gdb,stops,lib)
#   linux     the Debian kernel as an axvm guest with 1, 2 and 4 vCPUs ending in poweroff,
#             and with 2 vCPUs ending in reboot; its /init (scripts/kvm-amd/linux-init.sh)
#             checks CPUs, memory, clocksource, /proc/cpuinfo and reports kernel errors.
#             First the same kernel under QEMU -accel kvm -M pc in L1, the reference: the
#             kernel must report the same machine under both, and print no error under
#             axvm that it does not print under QEMU (scripts/lib/l1-report.py)
#   bench     the exit benchmark (cargo bench -p axvm-kvm --bench exits) in L1, and the
#             Debian kernel's boot under axvm, QEMU -M pc and QEMU -M microvm with 1 and
#             2 vCPUs, one after the other, and once under axvm --stats (docs/PERFORMANCE.md)
#   virtio    the Debian kernel with virtio-mmio devices (scripts/kvm-amd/virtio-run.sh),
#             each test first under QEMU -accel kvm -M microvm,acpi=on in L1 (the
#             reference), then under axvm: blk (an ext4 image made here with mke2fs -d:
#             the guest reads it and writes files that debugfs reads back), net (two VMs on
#             one L2 switch ping each other), tap (a VM and L1 ping each other over a tap),
#             console (the guest's /init prints through virtio-console, console=hvc0)
#   virtio-bench  inside the guest, virtio-blk sequential 4 KiB and 1 MiB write and read
#             throughput and 4 KiB random-read IOPS (O_DIRECT, on a raw file in L1's
#             tmpfs), and TCP throughput and ping time between two VMs; under QEMU microvm
#             and axvm, one after the other, in KVM_AMD_BENCH_ROUNDS rounds (default 2)
#   mine      your own kernel on hardware-style KVM: the directory KVM_AMD_MINE names (a
#             config, its images, a run.sh) is copied into L1, where `sh run.sh` runs in
#             it with the release axvm as `axvm` on PATH (and QEMU as qemu-system-x86_64);
#             its status is the step's. Nothing of it is kept in git: try a kernel you built
#   (default: suite linux)
#
#   --no-build    use the binaries already built
#
# Needs nothing but apt and cargo: as root it installs qemu-system-x86, busybox-static,
# cpio and acpica-tools when missing, and for the virtio steps e2fsprogs and gcc (the
# guest's benchmark, scripts/kvm-amd/vbench.c, is built with cc -static). Builds under target/kvm-amd/ (CARGO_TARGET_DIR): the
# Debian packages (cached), the L1 initramfs, and logs/: console.log (everything L1
# printed) and one file per step. Prints a line per step as it ends; on failure, the failed
# steps' logs. Exits 0 when every step passed, 1 when one failed, 2 when it could not run.
#
# Environment: QEMU (default qemu-system-x86_64), KVM_AMD_TIMEOUT (seconds for each L1
# boot, default 1800), KVM_AMD_CPU (QEMU's -cpu for L1, default EPYC), KVM_AMD_SMP (L1's
# CPUs, default 4), KVM_AMD_ACCEL (default tcg), KVM_AMD_BENCH_ROUNDS (virtio-bench's rounds,
# default 2), KVM_AMD_SUITE (the suite's test targets, comma-separated; default all),
# KVM_AMD_MINE (the directory the `mine` step runs).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
here=$root/scripts/kvm-amd
target_dir=${CARGO_TARGET_DIR:-$root/target}
work=$target_dir/kvm-amd
qemu=${QEMU:-qemu-system-x86_64}
run_timeout=${KVM_AMD_TIMEOUT:-1800}
silence_limit=120
l1_cpu=${KVM_AMD_CPU:-EPYC}
# A TCG thread per L1 CPU (QEMU's default). One thread for both is no steadier and makes an
# SMP guest's cross-CPU waits last a time slice each: Linux then takes minutes to boot.
l1_accel=${KVM_AMD_ACCEL:-tcg}
# Four L1 CPUs on the host's two: the 4-vCPU Linux guest then has an L1 CPU per vCPU
# thread. With two, L1 switching vCPU threads under the emulated SVM now and then corrupts
# its own kernel stacks ("corrupted stack end detected inside scheduler").
l1_cpus=${KVM_AMD_SMP:-4}
bench_rounds=${KVM_AMD_BENCH_ROUNDS:-2}
# The suite's test targets to run, e.g. "gdb,stops" (empty: all), to iterate on a few.
suite_only=${KVM_AMD_SUITE:-}
# The `mine` step's directory.
mine=${KVM_AMD_MINE:-}

script=kvm-amd
# shellcheck source=scripts/lib/common.sh
. "$root/scripts/lib/common.sh"

build=1
steps=()
for arg in "$@"; do
  case $arg in
    --no-build) build=0 ;;
    suite | linux | bench | virtio | virtio-bench | mine) steps+=("$arg") ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "kvm-amd: unknown argument $arg (see --help)" >&2
      exit 2
      ;;
  esac
done
[ ${#steps[@]} -gt 0 ] || steps=(suite linux)
wants() { [[ " ${steps[*]} " == *" $1 "* ]]; }


# --- tools and packages -------------------------------------------------------------------

install_tools() {
  local need=()
  command -v "$qemu" >/dev/null || need+=(qemu-system-x86)
  [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || need+=(busybox-static)
  command -v cpio >/dev/null || need+=(cpio)
  command -v strip >/dev/null || need+=(binutils)
  command -v iasl >/dev/null || need+=(acpica-tools)
  if wants virtio || wants virtio-bench; then
    PATH=$PATH:/usr/sbin:/sbin command -v debugfs >/dev/null || need+=(e2fsprogs)
    [ -e /usr/lib/x86_64-linux-gnu/libc.a ] && command -v cc >/dev/null || need+=(gcc libc6-dev)
  fi
  [ ${#need[@]} -eq 0 ] && return
  [ "$(id -u)" = 0 ] || die "needs ${need[*]} (apt-get install ${need[*]}, as root)"
  say "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
}

# The newest Debian cloud kernel package (linux-image-cloud-amd64 depends on it), fetched
# once into $work/debs and unpacked into $work/kernel.
fetch_kernel() {
  local package
  package=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n 1)
  if [ -z "$package" ]; then
    apt-get update -qq
    package=$(apt-cache depends linux-image-cloud-amd64 |
      sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n 1)
  fi
  [ -n "$package" ] || die "apt knows no linux-image-cloud-amd64"
  if [ "$(cat "$work/kernel/package" 2>/dev/null)" != "$package" ]; then
    say "fetching $package"
    rm -rf "$work/debs" "$work/kernel"
    mkdir -p "$work/debs" "$work/kernel"
    (cd "$work/debs" && apt-get download -q "$package" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
    dpkg-deb -x "$work"/debs/*.deb "$work/kernel"
    echo "$package" >"$work/kernel/package"
  fi
  kernel=$(ls "$work"/kernel/boot/vmlinuz-*)
  modules=$(ls -d "$work"/kernel/lib/modules/*)
}

# Debian's gdb-minimal (gdb without Python: the full gdb needs Python's library at start),
# fetched once into $work/gdb: the suite's GDB-stub tests drive it in L1, where hardware
# KVM's debug exits and data watchpoints are what they check beyond kvm_pvm.
fetch_gdb() {
  [ -x "$work/gdb/usr/bin/gdb" ] && return
  say "fetching gdb-minimal"
  rm -rf "$work/gdb" "$work/gdb-deb"
  mkdir -p "$work/gdb-deb"
  (cd "$work/gdb-deb" && apt-get download -q gdb-minimal 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
  ls "$work"/gdb-deb/gdb-minimal_*.deb >/dev/null 2>&1 || die "apt could not download gdb-minimal"
  dpkg-deb -x "$work"/gdb-deb/gdb-minimal_*.deb "$work/gdb"
}

# --- builds ---------------------------------------------------------------------------

# Test executables of the packages whose tests need /dev/kvm, one "package target path"
# line each.
test_executables() {
  cargo test --manifest-path "$root/Cargo.toml" -p axvm-kvm -p axvm-cli --no-run \
    --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message.get("executable") \
            and message["profile"]["test"]:
        package = message["package_id"].split("#")[0].rstrip("/").split("/")[-1]
        print(package, message["target"]["name"], message["executable"])
'
}

build_workspace() {
  say "building axvm (release)$(wants suite && echo " and the KVM test executables")"
  cargo build --manifest-path "$root/Cargo.toml" --release -p axvm-cli
  if wants suite; then
    cargo test --manifest-path "$root/Cargo.toml" -p axvm-kvm -p axvm-cli --no-run
  fi
  if wants bench; then
    cargo bench --manifest-path "$root/Cargo.toml" -p axvm-kvm --bench exits --no-run
  fi
}

# --- the L1 initramfs -------------------------------------------------------------------

# copy_elf SRC DEST: copies an executable without its debug info (test executables are
# mostly DWARF), keeping its libraries' list for copy_libraries.
copy_elf() {
  mkdir -p "$(dirname "$stage$2")"
  strip --strip-debug -o "$stage$2" "$1"
  echo "$1" >>"$work/elves"
}

# Every shared library the copied executables need, at the path the loader looks for.
copy_libraries() {
  local lib
  sort -u "$work/elves" | while read -r elf; do ldd "$elf" 2>/dev/null || true; done |
    grep -oE '(/[^ ]+\.so[^ ]*)' | sort -u | while read -r lib; do
    mkdir -p "$stage$(dirname "$lib")"
    cp -L "$lib" "$stage$lib"
  done
}

# The Debian kernel's own initramfs for the L2 guest: busybox and linux-init.sh.
make_linux_initramfs() {
  local dir=$work/linux-initramfs
  rm -rf "$dir"
  mkdir -p "$dir"/{bin,proc,sys,dev,tmp}
  cp /bin/busybox "$dir/bin/busybox"
  ln -s busybox "$dir/bin/sh"
  cp "$here/linux-init.sh" "$dir/init"
  cp "$root/scripts/lib/linux-guest.sh" "$dir/linux-guest.sh"
  chmod +x "$dir/init"
  (cd "$dir" && find . | cpio -o -H newc --quiet | gzip -9) >"$stage/harness/linux/initramfs.cpio.gz"
}

make_l1() {
  stage=$work/l1
  rm -rf "$stage" "$work/elves"
  mkdir -p "$stage"/{bin,proc,sys,dev,tmp,root,harness/modules,harness/linux}
  : >"$work/elves"
  cp /bin/busybox "$stage/bin/busybox"
  ln -s busybox "$stage/bin/sh"
  cp "$root/scripts/lib/l1-init.sh" "$stage/init"
  chmod +x "$stage/init"
  echo kvm-amd >"$stage/harness/name"
  # Each step stops after 4 minutes (status 143).
  echo 240 >"$stage/harness/step-seconds"

  # kvm-amd.ko and what it depends on, in load order; tun.ko for the tests that open a tap
  # (the suite's virtio-net tap test, the virtio step's tap test).
  local order=() module
  for module in irqbypass kvm kvm-amd tun; do
    cp "$(find "$modules" -name "$module.ko")" "$stage/harness/modules/"
    order+=("$module")
  done
  echo "${order[*]}" >"$stage/harness/modules/order"

  copy_elf "$target_dir/release/axvm" /bin/axvm
  cp "$kernel" "$stage/harness/linux/vmlinuz"
  cp "$here/vm.toml.in" "$here/linux-boot.sh" "$stage/harness/linux/"
  make_linux_initramfs

  cp "$here/load-kvm.sh" "$stage/harness/"
  # What runs L1, e.g. "qemu-tcg 7.2.22": scripts/lib/l1-init.sh exports it as KVM_AMD_L0, from which
  # the GDB tests know which debug stops a nested KVM gets here (QEMU's TCG delivers an L2
  # int3 to the guest itself, and before 9.1 arms no DR7 that VMRUN loads).
  echo "qemu-$l1_accel $("$qemu" --version | sed -n 's/^QEMU emulator version \([0-9.]*\).*/\1/p')" >"$stage/harness/l0"
  echo "load-kvm sh load-kvm.sh" >"$stage/harness/steps"
  if wants suite; then add_suite; fi
  if wants linux; then
    # The reference first: what the same kernel says under QEMU in this L1 machine.
    copy_qemu
    echo "linux/qemu-pc-smp2-poweroff sh linux/linux-boot.sh 2 poweroff qemu-pc" >>"$stage/harness/steps"
    for cpus in 1 2 4; do
      echo "linux/axvm-smp$cpus-poweroff sh linux/linux-boot.sh $cpus poweroff axvm" >>"$stage/harness/steps"
    done
    echo "linux/axvm-smp2-reboot sh linux/linux-boot.sh 2 reboot axvm" >>"$stage/harness/steps"
  fi
  if wants bench; then add_bench; fi
  if wants virtio; then add_virtio blk net tap console; fi
  if wants virtio-bench; then add_virtio_bench bench-blk bench-net; fi
  if wants mine; then add_mine; fi
  copy_libraries

  say "packing the L1 initramfs ($(du -sh "$stage" | cut -f1))"
  (cd "$stage" && find . | cpio -o -H newc --quiet) >"$work/l1.cpio"
}

# The test executables, at the absolute paths cargo built them at: they name the axvm
# binary and the guest images by those paths.
add_suite() {
  local package name path images
  test_executables | suite_filter >"$work/tests"
  [ -s "$work/tests" ] || die "cargo listed no test executables${suite_only:+ named in KVM_AMD_SUITE=$suite_only}"
  local serial
  while read -r package name path; do
    copy_elf "$path" "$path"
    mkdir -p "$stage$root/crates/$package"
    # The stalled-console tests each make ~80k port exits, about 1 ms apiece here: run in
    # parallel they starve L1 until it prints nothing for $silence_limit s; one at a time
    # each ends (and prints) well within it.
    serial=""
    case $name in stalled_*) serial=" --test-threads 1" ;; esac
    suite_step "suite/$package/$name" "$root/crates/$package" "$path --color never$serial" >>"$stage/harness/steps"
  done <"$work/tests"
  copy_elf "$target_dir/debug/axvm" "$target_dir/debug/axvm"
  # Host tools the tests run (busybox provides the rest: unshare, setpriv, sh).
  local tool
  for tool in iasl acpiexec; do
    command -v "$tool" >/dev/null || die "the suite needs $tool (apt-get install acpica-tools)"
    copy_elf "$(command -v "$tool")" "/usr/bin/$tool"
  done
  fetch_gdb
  copy_elf "$work/gdb/usr/bin/gdb" /usr/bin/gdb
  for images in "$target_dir"/debug/build/axvm-guests-*/out/images; do
    mkdir -p "$stage$images"
    cp -r "$images/." "$stage$images/"
  done
}

# The `mine` step: KVM_AMD_MINE's directory at /harness/mine, run by its run.sh.
add_mine() {
  [ -n "$mine" ] || die "the mine step needs KVM_AMD_MINE=DIR (a directory with a run.sh)"
  [ -f "$mine/run.sh" ] || die "KVM_AMD_MINE=$mine has no run.sh"
  mkdir -p "$stage/harness/mine"
  cp -r "$mine/." "$stage/harness/mine/"
  copy_qemu
  echo "mine/$(basename "$mine") cd /harness/mine && sh run.sh" >>"$stage/harness/steps"
}

# QEMU itself, its firmware and option ROMs, to boot the same kernel under -accel kvm.
copy_qemu() {
  [ -x "$stage/usr/bin/qemu-system-x86_64" ] && return
  # At /usr/bin: QEMU finds its firmware relative to its own path (../share/qemu).
  copy_elf "$(command -v "$qemu")" /usr/bin/qemu-system-x86_64
  mkdir -p "$stage/usr/share"
  cp -rL /usr/share/qemu "$stage/usr/share/qemu"
  if [ -d /usr/share/seabios ]; then cp -rL /usr/share/seabios "$stage/usr/share/seabios"; fi
}

# The exit benchmark, and the same kernel's boot under axvm and QEMU side by side.
add_bench() {
  local bench cpus vmm
  bench=$(ls -t "$target_dir"/release/deps/exits-* | grep -v '\.d$' | head -n 1)
  copy_elf "$bench" /harness/bench-exits
  echo "bench/exits /harness/bench-exits --bench --quick" >>"$stage/harness/steps"
  copy_qemu
  for cpus in 1 2; do
    for vmm in axvm qemu-pc qemu-microvm; do
      echo "boot/$vmm-smp$cpus sh linux/linux-boot.sh $cpus poweroff $vmm" >>"$stage/harness/steps"
    done
  done
  # Where axvm's time goes during a boot (exits per kind and port, axvm's handling time).
  echo "boot/axvm-stats-smp1 sh linux/linux-boot.sh 1 poweroff axvm-stats" >>"$stage/harness/steps"
}

# module_order NAME...: the kernel modules NAME... and those they need, each after what it
# needs, as paths. The package ships no modules.dep: each module's .modinfo names its
# dependencies ("depends=a,b").
module_order() {
  local name file deps
  for name in "$@"; do
    [[ " $modules_listed " == *" ${name//-/_} "* ]] && continue
    modules_listed+=" ${name//-/_}"
    file=$(find "$modules" -name "${name//-/_}.ko" -o -name "${name//_/-}.ko" | head -n 1)
    [ -n "$file" ] || die "the kernel package has no module $name"
    objcopy -O binary --only-section=.modinfo "$file" "$work/modinfo"
    deps=$(tr '\0' '\n' <"$work/modinfo" | sed -n 's/^depends=//p' | tr ',' ' ')
    # shellcheck disable=SC2086 # one word per module
    module_order $deps
    echo "$file"
  done
}

# The virtio guest's initramfs (busybox, virtio-init.sh as /init, vbench, the virtio
# modules in load order) and the ext4 image of the blk test, made here with mke2fs -d:
# hello.txt, and host.bin of random bytes whose md5 the guest must print.
make_virtio_files() {
  local dir=$work/virtio-initramfs content=$work/virtio-disk file
  [ -e "$stage/harness/virtio/initramfs.cpio.gz" ] && return
  rm -rf "$dir" "$content"
  mkdir -p "$dir"/{bin,proc,sys,dev,tmp,mnt,modules} "$content" "$stage/harness/virtio"
  cp /bin/busybox "$dir/bin/busybox"
  ln -s busybox "$dir/bin/sh"
  cp "$here/virtio-init.sh" "$dir/init"
  chmod +x "$dir/init"
  cc -static -O2 -Wall -Wextra -Werror -o "$dir/bin/vbench" "$here/vbench.c"
  strip "$dir/bin/vbench"
  local order
  modules_listed=
  order=$(module_order virtio_mmio virtio_blk virtio_net virtio_console)
  for file in $order; do
    cp "$file" "$dir/modules/"
    basename "$file" .ko
  done >"$dir/modules/order"
  (cd "$dir" && find . | cpio -o -H newc --quiet | gzip -9) >"$stage/harness/virtio/initramfs.cpio.gz"

  echo "hello from the kvm-amd harness's host" >"$content/hello.txt"
  head -c 1M /dev/urandom >"$content/host.bin"
  cp "$content/hello.txt" "$stage/harness/virtio/"
  md5sum <"$content/host.bin" | cut -d' ' -f1 >"$stage/harness/virtio/host.bin.md5"
  rm -f "$work/virtio-disk.img"
  PATH=$PATH:/usr/sbin:/sbin mke2fs -q -t ext4 -L axvm-virtio -d "$content" "$work/virtio-disk.img" 32M >/dev/null
  gzip -c "$work/virtio-disk.img" >"$stage/harness/virtio/disk.img.gz"

  cp "$here/virtio-run.sh" "$stage/harness/virtio/"
  cp "$here/virtio-vm.toml.in" "$stage/harness/virtio/vm.toml.in"
  # L1's tools: debugfs and e2fsck read the image back; tun.ko makes the tap test's tap.
  for file in debugfs e2fsck; do
    copy_elf "$(PATH=$PATH:/usr/sbin:/sbin command -v $file)" "/usr/sbin/$file"
  done
  cp "$(find "$modules" -name tun.ko)" "$stage/harness/modules/"
}

# add_virtio TEST...: the virtio steps, each test under QEMU (the reference) then axvm.
add_virtio() {
  local test vmm
  make_virtio_files
  copy_qemu
  for test in "$@"; do
    for vmm in qemu-microvm axvm; do
      echo "virtio/$vmm-$test sh virtio/virtio-run.sh $test $vmm" >>"$stage/harness/steps"
    done
  done
}

# add_virtio_bench TEST...: the benchmarks, QEMU then axvm, in $bench_rounds rounds: this
# shared, emulated machine's speed drifts, and alternating shows how far.
add_virtio_bench() {
  local round test vmm
  make_virtio_files
  copy_qemu
  for round in $(seq "$bench_rounds"); do
    for test in "$@"; do
      for vmm in qemu-microvm axvm; do
        echo "virtio-bench/$vmm-$test-r$round sh virtio/virtio-run.sh $test $vmm" >>"$stage/harness/steps"
      done
    done
  done
}

# --- the run and its report -----------------------------------------------------------

# L1 under QEMU, booted by l1_run (scripts/lib/common.sh) until every step has run.
run_l1() {
  l1_qemu=("$qemu" -accel "$l1_accel" -cpu "$l1_cpu" -smp "$l1_cpus" -m 4G
    -kernel "$kernel" -initrd "$work/l1.cpio" -append "console=ttyS0 quiet panic=-1 rdinit=/init")
  l1_summary="$qemu -accel $l1_accel -cpu $l1_cpu -smp $l1_cpus -m 4G"
  l1_run
}

# One log per step, the Linux boot times, axvm compared with QEMU, and the verdict.
report() {
  python3 "$root/scripts/lib/l1-report.py" kvm-amd "$work/logs" "$work"/logs/console.*.log
}

install_tools
fetch_kernel
[ $build = 0 ] || build_workspace
make_l1
run_l1
report
