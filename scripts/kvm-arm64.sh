#!/usr/bin/env bash
# kvm-arm64.sh: runs axvm on arm64 KVM, on any x86_64 Linux machine.
#
# QEMU's TCG emulates an arm64 -M virt machine with EL2 and a GICv3, and Debian's arm64
# cloud kernel (KVM built in) starts there in VHE mode: that is the "L1" machine this
# script builds and boots, and whose /dev/kvm runs axvm's aarch64 VMs ("L2"). axvm and the
# tests are cross-built for aarch64-unknown-linux-gnu, statically linked.
#
# Usage: scripts/kvm-arm64.sh [--no-build] [--keep-going] [STEP...]
#
#   suite     the KVM tests of axvm-kvm-arm64 (cargo test --no-run executables), axvm-cli's
#             `arm64` test target, and the unit tests of axvm-linux and axvm-virt, with
#             AXVM_REQUIRE_KVM=1, one result per test executable
#   linux     the Debian arm64 kernel (L1's own) as an axvm guest with 1 and 2 vCPUs ending
#             in poweroff (PSCI SYSTEM_OFF: axvm exits 0); its /init
#             (scripts/kvm-arm64/linux-init.sh) checks CPUs, memory, the arch timer's
#             interrupts and reports kernel errors. First the same kernel under QEMU -accel
#             kvm -M virt in L1, the reference: the kernel must report the same machine
#             under both, and print no error under axvm that it does not print under QEMU
#   bench     the exit benchmark (cargo bench -p axvm-kvm-arm64 --bench exits: the MMIO exit
#             round trip under axvm and under a bare KVM_RUN loop) in L1; `bench linux` adds
#             the Debian kernel's time to /init under axvm and QEMU -M virt -accel kvm in
#             the same L1 run: the figures of docs/PERFORMANCE.md
#   mine      your own kernel on arm64 KVM: the directory KVM_ARM64_MINE names (a config,
#             its images, a run.sh) is copied into L1, where `sh run.sh` runs in it with the
#             release aarch64 axvm as `axvm` on PATH when it is built (and QEMU as
#             qemu-system-aarch64); its status is the step's. KVM_ARM64_BIN=a,b adds static
#             aarch64 executables of yours to L1's /bin. Nothing of it is kept in git
#   (default: suite linux)
#
#   --no-build    use the binaries already built
#   --keep-going  when the aarch64 axvm does not build, run the steps anyway (those that
#                 need axvm then fail, mine runs without it)
#
# Needs nothing but apt and cargo: as root it installs qemu-system-arm, gcc-aarch64-linux-gnu,
# libc6-dev-arm64-cross and cpio when missing, and adds dpkg's arm64 architecture. Cargo
# cross-builds with the linker aarch64-linux-gnu-gcc and +crt-static (set here, through
# CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER/_RUSTFLAGS, unless already set). Builds under
# target/kvm-arm64/: the Debian arm64 packages (cached: the kernel, busybox, QEMU and its
# libraries), the L1 initramfs, and logs/: console.N.log (everything L1 printed) and one file
# per step. Prints a line per step as it ends; on failure, the failed steps' logs. Exits 0
# when every step passed, 1 when one failed, 2 when it could not run.
#
# Environment: QEMU (default qemu-system-aarch64), KVM_ARM64_TIMEOUT (seconds for each L1
# boot, default 3600), KVM_ARM64_SMP (L1's CPUs, default 2), KVM_ARM64_GIC (L1's GIC version,
# default 3; 2 tries axvm's GICv2 path: the GICv3 guests then fail), KVM_ARM64_SUITE (the suite's
# test targets, comma-separated; default all), KVM_ARM64_MINE (the directory the `mine` step
# runs), KVM_ARM64_BIN (comma-separated static aarch64 executables copied to L1's /bin).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
here=$root/scripts/kvm-arm64
target_dir=${CARGO_TARGET_DIR:-$root/target}
triple=aarch64-unknown-linux-gnu
work=$target_dir/kvm-arm64
qemu=${QEMU:-qemu-system-aarch64}
run_timeout=${KVM_ARM64_TIMEOUT:-3600}
silence_limit=180
l1_cpus=${KVM_ARM64_SMP:-2}
# L1's interrupt controller: 3, or 2 to try axvm's GICv2 path (KVM then offers a vGICv2 only).
l1_gic=${KVM_ARM64_GIC:-3}
suite_only=${KVM_ARM64_SUITE:-}
mine=${KVM_ARM64_MINE:-}
extra_bins=${KVM_ARM64_BIN:-}
script=kvm-arm64
# shellcheck source=scripts/lib/common.sh
. "$root/scripts/lib/common.sh"

build=1
keep_going=0
steps=()
for arg in "$@"; do
  case $arg in
    --no-build) build=0 ;;
    --keep-going) keep_going=1 ;;
    suite | linux | bench | mine) steps+=("$arg") ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "kvm-arm64: unknown argument $arg (see --help)" >&2
      exit 2
      ;;
  esac
done
[ ${#steps[@]} -gt 0 ] || steps=(suite linux)
wants() { [[ " ${steps[*]} " == *" $1 "* ]]; }


# Notes printed again after the report (a skipped suite, an axvm that did not build).
note() {
  say "$*"
  echo "$*" >>"$work/notes"
}
mkdir -p "$work"
: >"$work/notes"

# --- tools and packages -------------------------------------------------------------------

install_tools() {
  if [ $build = 1 ] && command -v rustup >/dev/null &&
    ! rustup target list --installed | grep -qx "$triple"; then
    say "adding the Rust target $triple"
    rustup target add "$triple"
  fi
  local need=()
  command -v "$qemu" >/dev/null || need+=(qemu-system-arm)
  command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
  [ -e /usr/aarch64-linux-gnu/lib/libc.a ] || need+=(libc6-dev-arm64-cross)
  command -v cpio >/dev/null || need+=(cpio)
  local arm64_known=1
  dpkg --print-foreign-architectures | grep -qx arm64 || [ "$(dpkg --print-architecture)" = arm64 ] ||
    arm64_known=0
  [ ${#need[@]} -eq 0 ] && [ $arm64_known = 1 ] && return
  [ "$(id -u)" = 0 ] || die "needs ${need[*]}${need[*]:+ and }dpkg's arm64 architecture (as root: dpkg --add-architecture arm64; apt-get update; apt-get install ${need[*]})"
  [ $arm64_known = 1 ] || dpkg --add-architecture arm64
  say "installing ${need[*]}${need[*]:+ and }apt's arm64 package lists"
  apt-get update -qq
  [ ${#need[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
}

# apt_download DIR PACKAGE...: fetches the packages' .debs into DIR (apt-get download).
apt_download() {
  local dir=$1
  shift
  mkdir -p "$dir"
  (
    cd "$dir" || exit
    apt-get download -q "$@" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true
  )
}

# The newest Debian arm64 cloud kernel (linux-image-cloud-arm64 depends on it) and
# busybox-static for arm64, fetched once into $work/debs and unpacked into $work/kernel and
# $work/busybox. The kernel's vmlinuz is an uncompressed arm64 Image with KVM built in.
fetch_packages() {
  local package
  package=$(apt-cache depends linux-image-cloud-arm64:arm64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9][^:]*\).*$/\1/p' | head -n 1)
  if [ -z "$package" ]; then
    apt-get update -qq
    package=$(apt-cache depends linux-image-cloud-arm64:arm64 |
      sed -n 's/^ *Depends: \(linux-image-[0-9][^:]*\).*$/\1/p' | head -n 1)
  fi
  [ -n "$package" ] || die "apt knows no linux-image-cloud-arm64:arm64 (dpkg --add-architecture arm64; apt-get update)"
  if [ "$(cat "$work/kernel/package" 2>/dev/null)" != "$package" ]; then
    say "fetching $package:arm64"
    rm -rf "$work/debs/kernel" "$work/kernel"
    apt_download "$work/debs/kernel" "$package:arm64"
    mkdir -p "$work/kernel"
    dpkg-deb -x "$work"/debs/kernel/*.deb "$work/kernel"
    echo "$package" >"$work/kernel/package"
  fi
  kernel=$(ls "$work"/kernel/boot/vmlinuz-*)
  if [ ! -x "$work/busybox/bin/busybox" ]; then
    say "fetching busybox-static:arm64"
    rm -rf "$work/debs/busybox" "$work/busybox"
    apt_download "$work/debs/busybox" busybox-static:arm64
    mkdir -p "$work/busybox"
    dpkg-deb -x "$work"/debs/busybox/*.deb "$work/busybox"
  fi
  busybox=$work/busybox/bin/busybox
}

# QEMU for arm64 and every package it needs (the closure of its Depends, as apt resolves it
# for an arm64 machine with nothing installed: a private, empty dpkg status), unpacked into
# $work/qemu-root once: L1 runs it as the reference, with the loader /lib/ld-linux-aarch64.so.1
# and the libraries at the paths Debian puts them.
fetch_qemu_arm64() {
  local dir=$work/qemu-apt
  [ -x "$work/qemu-root/usr/bin/qemu-system-aarch64" ] && return
  say "fetching qemu-system-arm:arm64 and the packages it needs"
  rm -rf "$dir" "$work/qemu-root"
  mkdir -p "$dir/archives/partial" "$dir/state" "$work/qemu-root"
  : >"$dir/state/status"
  apt-get install --download-only -y -qq --no-install-recommends \
    -o APT::Architecture=arm64 -o APT::Architectures=arm64 \
    -o Dir::State::status="$dir/state/status" -o Dir::Cache::archives="$dir/archives" \
    -o Debug::NoLocking=1 qemu-system-arm:arm64 >"$dir/apt.log" 2>&1 ||
    die "apt could not download qemu-system-arm:arm64 and its dependencies ($dir/apt.log)"
  local deb
  for deb in "$dir"/archives/*.deb; do dpkg-deb -x "$deb" "$work/qemu-root"; done
  # What L1 needs is the program, its libraries and QEMU's data files.
  rm -rf "$work/qemu-root"/usr/share/{doc,man,locale,info,lintian,bug}
  [ -x "$work/qemu-root/usr/bin/qemu-system-aarch64" ] ||
    die "qemu-system-arm:arm64 unpacked without usr/bin/qemu-system-aarch64"
}

# --- builds ---------------------------------------------------------------------------

# Cross-building for aarch64: the GNU cross linker, and static executables, which need no
# libraries in L1. Set for this script's cargo runs only (not in .cargo/config.toml): a
# [target.aarch64-unknown-linux-gnu] section there would also apply to native builds on an
# arm64 machine, where +crt-static breaks the build of proc-macro crates.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER:-aarch64-linux-gnu-gcc}
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS=${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS:--C target-feature=+crt-static}

release_axvm=$target_dir/$triple/release/axvm
debug_axvm=$target_dir/$triple/debug/axvm

# The cargo arguments of the suite's test executables: the arm64 host's (all its test
# targets), the command's `arm64` target, and the unit tests of the crates it is built on
# that have arm64-specific code (the sandbox's rules, the board's devices and device tree).
suite_packages() {
  suite_args=("-p axvm-kvm-arm64" "-p axvm-cli --test arm64" "-p axvm-linux --lib" "-p axvm-virt --lib")
}

# test_executables ARGS: the aarch64 test executables cargo builds for ARGS (one word
# string, e.g. "-p axvm-cli --test arm64"), one "package target path" line each.
test_executables() {
  # shellcheck disable=SC2086 # ARGS is a list of cargo arguments
  cargo test --manifest-path "$root/Cargo.toml" --target "$triple" $1 --no-run \
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
  say "building axvm for $triple (release)"
  if ! cargo build --manifest-path "$root/Cargo.toml" --release --target "$triple" -p axvm-cli; then
    if [ $keep_going = 1 ] || [ "${steps[*]}" = mine ]; then
      note "axvm did not build for $triple (cargo's errors above): the steps run without it"
      rm -f "$release_axvm"
    else
      die "axvm did not build for $triple (cargo's errors above; --keep-going runs the steps anyway)"
    fi
  fi
  if wants bench; then
    say "building the exit benchmark"
    cargo bench --manifest-path "$root/Cargo.toml" --target "$triple" -p axvm-kvm-arm64 \
      --bench exits --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message.get("executable"):
        print(message["executable"])
' >"$work/bench-exe"
    [ -s "$work/bench-exe" ] || die "the exit benchmark did not build (cargo bench -p axvm-kvm-arm64 --bench exits --no-run)"
  fi
  if wants suite; then
    local args
    for args in "${suite_args[@]}"; do
      say "building the test executables of $args"
      # shellcheck disable=SC2086 # a list of cargo arguments
      cargo test --manifest-path "$root/Cargo.toml" --target "$triple" $args --no-run ||
        die "the test executables of $args did not build (cargo's errors above)"
    done
  fi
}

# --- the L1 initramfs -------------------------------------------------------------------

# copy_elf SRC DEST: copies an aarch64 executable without its debug info (test executables
# are mostly DWARF).
copy_elf() {
  mkdir -p "$(dirname "$stage$2")"
  aarch64-linux-gnu-strip --strip-debug -o "$stage$2" "$1"
}

make_l1() {
  stage=$work/l1
  rm -rf "$stage"
  mkdir -p "$stage"/{bin,proc,sys,dev,tmp,root,harness}
  cp "$busybox" "$stage/bin/busybox"
  ln -s busybox "$stage/bin/sh"
  cp "$root/scripts/lib/l1-init.sh" "$stage/init"
  chmod +x "$stage/init"
  echo kvm-arm64 >"$stage/harness/name"
  # Each step stops after 10 minutes (status 143): an arm64 Linux guest under KVM inside TCG
  # boots in minutes at worst, not seconds.
  echo 600 >"$stage/harness/step-seconds"
  if [ -x "$release_axvm" ]; then
    copy_elf "$release_axvm" /usr/bin/axvm
  else
    note "no aarch64 axvm at $release_axvm: L1 has no axvm"
  fi
  local bin
  for bin in ${extra_bins//,/ }; do
    [ -f "$bin" ] || die "KVM_ARM64_BIN names $bin, which is no file"
    cp "$bin" "$stage/bin/$(basename "$bin")"
    chmod +x "$stage/bin/$(basename "$bin")"
  done
  cp "$here/check-kvm.sh" "$stage/harness/"
  echo "qemu-tcg $("$qemu" --version | sed -n 's/^QEMU emulator version \([0-9.]*\).*/\1/p')" >"$stage/harness/l0"
  echo "kvm sh check-kvm.sh" >"$stage/harness/steps"
  if wants suite; then add_suite; fi
  if wants bench; then add_bench; fi
  if wants linux; then add_linux; fi
  if wants mine; then add_mine; fi

  say "packing the L1 initramfs ($(du -sh "$stage" | cut -f1))"
  (cd "$stage" && find . | cpio -o -H newc --quiet) >"$work/l1.cpio"
}

# The test executables, at the absolute paths cargo built them at: they name the axvm
# binary and the guest images by those paths.
add_suite() {
  local package name path images args
  : >"$work/tests"
  for args in "${suite_args[@]}"; do
    test_executables "$args" | suite_filter >>"$work/tests"
  done
  if [ ${#suite_args[@]} -gt 0 ] && [ ! -s "$work/tests" ]; then
    die "cargo listed no test executables${suite_only:+ named in KVM_ARM64_SUITE=$suite_only}"
  fi
  while read -r package name path; do
    copy_elf "$path" "$path"
    mkdir -p "$stage$root/crates/$package"
    suite_step "suite/$package/$name" "$root/crates/$package" "$path --color never" >>"$stage/harness/steps"
  done <"$work/tests"
  [ ! -x "$debug_axvm" ] || copy_elf "$debug_axvm" "$debug_axvm"
  # Tests compare axvm with QEMU -accel kvm on the same L1 (the reference).
  copy_qemu
  for images in "$target_dir/$triple"/debug/build/axvm-guests-*/out/images; do
    [ -d "$images" ] || continue
    mkdir -p "$stage$images"
    cp -r "$images/." "$stage$images/"
  done
}

# QEMU and its libraries at L1's root, where its loader and Debian's paths put them.
copy_qemu() {
  [ -x "$stage/usr/bin/qemu-system-aarch64" ] && return
  fetch_qemu_arm64
  cp -a "$work/qemu-root/." "$stage/"
}

# The linux step: the kernel L1 runs, the L2 initramfs (busybox, linux-init.sh), the VM
# config; QEMU -M virt first (the reference: a boot takes about 10 s there), then axvm, each
# with 1 and 2 vCPUs.
add_linux() {
  local dir=$work/linux-initramfs cpus
  rm -rf "$dir"
  mkdir -p "$dir"/{bin,proc,sys,dev,tmp} "$stage/harness/linux"
  cp "$busybox" "$dir/bin/busybox"
  ln -s busybox "$dir/bin/sh"
  cp "$here/linux-init.sh" "$dir/init"
  cp "$root/scripts/lib/linux-guest.sh" "$dir/linux-guest.sh"
  chmod +x "$dir/init"
  (cd "$dir" && find . | cpio -o -H newc --quiet | gzip -9) >"$stage/harness/linux/initramfs.cpio.gz"
  cp "$kernel" "$stage/harness/linux/Image"
  cp "$here/vm.toml.in" "$here/linux-boot.sh" "$stage/harness/linux/"
  copy_qemu
  for cpus in 1 2; do
    echo "linux/qemu-virt-smp$cpus-poweroff sh linux/linux-boot.sh $cpus qemu-virt" >>"$stage/harness/steps"
  done
  for cpus in 1 2; do
    echo "linux/axvm-smp$cpus-poweroff sh linux/linux-boot.sh $cpus axvm" >>"$stage/harness/steps"
  done
}

# The `mine` step: KVM_ARM64_MINE's directory at /harness/mine, run by its run.sh.
# The bench step: the exit benchmark's executable, run once in L1.
add_bench() {
  local exe
  exe=$(head -n 1 "$work/bench-exe" 2>/dev/null) || true
  [ -x "$exe" ] || die "no exit benchmark built (run without --no-build)"
  copy_elf "$exe" /bin/axvm-exit-bench
  echo "bench/exits /bin/axvm-exit-bench" >>"$stage/harness/steps"
}

add_mine() {
  [ -n "$mine" ] || die "the mine step needs KVM_ARM64_MINE=DIR (a directory with a run.sh)"
  [ -f "$mine/run.sh" ] || die "KVM_ARM64_MINE=$mine has no run.sh"
  mkdir -p "$stage/harness/mine"
  cp -r "$mine/." "$stage/harness/mine/"
  copy_qemu
  echo "mine/$(basename "$(cd "$mine" && pwd)") cd /harness/mine && sh run.sh" >>"$stage/harness/steps"
}

# --- the run and its report -----------------------------------------------------------

# L1: QEMU -M virt with EL2 (virtualization=on) and a GICv3, whose TCG emulates the
# virtualization host extensions KVM starts with; booted by l1_run (scripts/lib/common.sh)
# until every step has run.
run_l1() {
  # shellcheck disable=SC2054 # the commas are QEMU's
  l1_qemu=("$qemu" -M "virt,virtualization=on,gic-version=$l1_gic" -cpu max,pauth-impdef=on
    -smp "$l1_cpus" -m 4G -accel tcg
    -kernel "$kernel" -initrd "$work/l1.cpio" -append "console=ttyAMA0 quiet panic=-1 rdinit=/init")
  l1_summary="$qemu -M virt,virtualization=on,gic-version=$l1_gic -cpu max -accel tcg -smp $l1_cpus -m 4G"
  l1_run
}

report() {
  local status=0
  python3 "$root/scripts/lib/l1-report.py" kvm-arm64 "$work/logs" "$work"/logs/console.*.log || status=$?
  sed 's/^/kvm-arm64: note: /' "$work/notes"
  return $status
}

install_tools
fetch_packages
suite_args=()
if wants suite; then suite_packages; fi
if [ $build = 1 ]; then build_workspace; fi
make_l1
run_l1
report
