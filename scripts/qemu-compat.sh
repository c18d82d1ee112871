#!/usr/bin/env bash
# qemu-compat.sh: boots the same boot-protocol guest images under QEMU (TCG, the
# reference) and under axvm, and compares what the guests print on their serial console
# and the status they exit with.
#
# Usage: scripts/qemu-compat.sh [--no-build] [--keep] [CASE...]
#
#   CASE        multiboot-smp1, multiboot-smp4, pvh, pvh-elf32, virtio-blk, multiboot-low,
#               pvh-lowhdr, hpet-q35, bios-start (default: all)
#   --no-build  use the axvm binary and guest images already built
#   --keep      keep the work directory (configs, consoles, logs) and print its path
#
# Environment: QEMU (default qemu-system-x86_64), COMPAT_TIMEOUT (seconds per run,
# default 120), CARGO_TARGET_DIR.
#
# Installs nothing (.ci/run installs qemu-system-x86) and uses no network. Builds axvm and
# the guests (`cargo build -p axvm-cli -p axvm-guests`), takes the images from the newest
# target/debug/build/axvm-guests-*/out/images, and for each case runs
#
#   qemu-system-x86_64 -accel tcg -nodefaults -no-reboot -serial stdio -monitor none
#       -display none -device isa-debug-exit,iobase=0xf4,iosize=4
#       -kernel IMAGE -append CMDLINE -smp N -m 128M -initrd RAMDISK
#
# and `axvm run` on an equivalent generated config (cpu_num N, 128 MiB of RAM at 0,
# cmdline, ramdisk_path). Both run in the case's directory and name the kernel by the same
# relative path (`-kernel multiboot`, `kernel_path = "multiboot"`), so the Multiboot command
# line, which starts with the kernel's path under both, is the same string.
#
# multiboot-low runs the Multiboot guest linked at 0x9000 (`multiboot-low`), pvh-lowhdr the
# PVH guest with its ELF headers loaded at 0xff000 (`pvh-lowhdr`). QEMU's Multiboot loader
# writes its information block at 0x9500 and then loads a kernel at 0x9000 over it, so under
# QEMU the low guest finds its own bytes at EBX and says "info block ... inside this image"
# instead of its cmdline, memory and module lines; axvm puts the block after the kernel. For
# that case those lines are left out of the comparison, and axvm's run must not say "inside
# this image".
#
# `-nodefaults` gives QEMU's PC axvm's devices: no VGA, parallel port, floppy drive, NIC or
# CD-ROM, so SeaBIOS fills the BIOS Data Area (which the guests print, `bda: ...`) for the
# same hardware. Not `-nographic` either: with it QEMU has SeaBIOS emulate a text screen on
# the serial port, which sets the BDA's video fields, and axvm has no screen at all.
#
# pvh-elf32 runs `pvh-elf32`, the pvh guest converted to an i386 ELF32 by the guests'
# build; it prints as the pvh guest (lines from its first "pvh: " on).
#
# One line differs by design and is dropped from QEMU's output: `fw_cfg: e820
# 0xfd00000000 +0x300000000 type 2`. QEMU (7.1 and later) lists the AMD HyperTransport
# range below 1 TiB as reserved in `etc/e820` when the vCPU's vendor is AMD, as TCG's
# default qemu64 model is; `etc/e820` is otherwise RAM only, which is what axvm lists.
#
# hpet-q35 runs the `hpet` guest (PVH) on QEMU's q35 (`-M q35`), whose platform the
# ArceOS hypervisor's x86 guests are built for: an HPET at 0xfed00000 and the ACPI PM block
# at port 0x600. axvm's config passes the PC's platform devices through as those configs do
# (["IO APIC", 0xfec0_0000, ...], ["Local APIC", 0xfee0_0000, ...], ["HPET", 0xfed0_0000,
# ...]), which axvm serves with KVM's irqchip and its emulated HPET. The guest ends by
# powering off through port 0x604 (0x2000, as ArceOS and NimbOS do), not the exit port:
# QEMU then exits 0, which counts as the guest's status 0, and axvm exits 0.
#
# bios-start runs the ArceOS hypervisor's x86 start: the `bios-stub` BIOS at 0x8000, entered
# in real mode there, and the `biosboot` kernel at 0x200000, which the stub enters. axvm runs
# the guest's own config (guests/biosboot/biosboot.toml: entry_point 0x8000, bios_path,
# bios_load_addr, kernel_load_addr, image_location = "memory", pass-through of the IOAPIC
# and local APIC). QEMU, as axvisor, loads the two images where they go and starts at
# 0000:8000: `-M q35 -m 16M -bios bios-reset` (a 64 KiB ROM the guests' build makes whose
# reset vector jumps to 0000:8000; no other firmware runs) with `-device
# loader,file=bios-stub,addr=0x8000,force-raw=on` and `-device
# loader,file=biosboot,addr=0x200000,force-raw=on`; no -kernel, which would take the
# kernel's Multiboot header.
#
# virtio-blk runs the `virtio` guest (PVH) with one virtio-blk disk: a 1 MiB raw image the
# script makes, sector 0 = "axvm-virtio-disk", one copy per VMM. QEMU: `-M microvm,acpi=off`
# (without ACPI, microvm appends `virtio_mmio.device=512@0xfeb00e00:12` to the command line)
# with `-global virtio-mmio.force-legacy=false` (the modern register layout, as axvm's),
# `-drive id=d0,file=DISK,format=raw,if=none -device virtio-blk-device,drive=d0`, no initrd,
# and `-nographic` rather than `-nodefaults` (its guest prints no BIOS data).
# axvm: emu_devices row ["vda", 0xd000_0000, 0x1000, 5, 0xE1, []] with the backend
# `vda = { path = "disk.img" }`. The guest prints the device's base address and the disk's
# id, which differ between the VMMs by design: lines are compared with "virtio: <base> " and
# "virtio: blk id <id>" in their place. Both disks must also be byte-identical afterwards
# (the guest writes sector 1). Console lines are compared from the guest's first line on (the
# first line containing "<guest>: "; SeaBIOS and option-ROM output before it is dropped),
# with carriage returns removed. Exit statuses are compared as the guest's byte: QEMU's
# isa-debug-exit makes QEMU exit with (v << 1) | 1, axvm exits with v. A case passes when
# both match and QEMU's run passed (status 0). Exits 0 when every case passes, 1 when one
# does not, 2 when it cannot run at all.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
script="qemu-compat"
# shellcheck source=scripts/lib/common.sh
. "$root/scripts/lib/common.sh"
qemu=${QEMU:-qemu-system-x86_64}
run_timeout=${COMPAT_TIMEOUT:-120}
target_dir=${CARGO_TARGET_DIR:-$root/target}
cmdline="console=ttyS0 axvm-compat"
memory_mib=128

# name:image:cpus:ramdisk(yes/no):devices(none/virtio-blk/q35-platform)
all_cases=(
  "multiboot-smp1:multiboot:1:yes:none"
  "multiboot-smp4:multiboot:4:yes:none"
  "pvh:pvh:2:yes:none"
  "pvh-elf32:pvh-elf32:2:yes:none"
  "virtio-blk:virtio:1:no:virtio-blk"
  "multiboot-low:multiboot-low:2:yes:none"
  "pvh-lowhdr:pvh-lowhdr:2:yes:none"
  "hpet-q35:hpet:1:no:q35-platform"
  "bios-start:biosboot:1:no:bios-stub"
)
# Run only when named (none at present).
named_cases=()
# The virtio-blk case's disk: 1 MiB, sector 0 starting with this text.
disk_text="axvm-virtio-disk"
disk_mib=1

parse_options "$@"

cases=()
if [ ${#wanted[@]} -eq 0 ]; then
  cases=("${all_cases[@]}")
else
  for name in "${wanted[@]}"; do
    found=""
    for spec in "${all_cases[@]}" "${named_cases[@]}"; do
      [ "${spec%%:*}" = "$name" ] && found=$spec
    done
    if [ -z "$found" ]; then
      say "unknown case '$name' (cases: multiboot-smp1 multiboot-smp4 pvh pvh-elf32 virtio-blk multiboot-low pvh-lowhdr hpet-q35 bios-start)" >&2
      exit 2
    fi
    cases+=("$found")
  done
fi

if ! command -v "$qemu" >/dev/null 2>&1; then
  say "$qemu not found; install it (Debian: apt-get install qemu-system-x86)" >&2
  exit 2
fi
if ! command -v timeout >/dev/null 2>&1; then
  say "timeout (coreutils) not found" >&2
  exit 2
fi

make_work_dir

if [ "$build" = 1 ]; then
  say "building axvm and the guests"
  build "axvm and the guests" "$root" cargo build -p axvm-cli -p axvm-guests
fi

axvm=$target_dir/debug/axvm
if [ ! -x "$axvm" ]; then
  say "$axvm not found (build with: cargo build -p axvm-cli)" >&2
  exit 2
fi
# The images of the most recent axvm-guests build script run: the newest multiboot image
# (its directory also holds pvh and the test ramdisk).
images=$(guest_images debug multiboot)
if [ -z "$images" ] || [ ! -f "$images/pvh" ]; then
  say "no guest images with multiboot and pvh under $target_dir/debug/build/axvm-guests-*/out/images" >&2
  exit 2
fi

ramdisk=$images/ramdisk
if [ ! -f "$ramdisk" ]; then
  ramdisk=$work/ramdisk
  payload="axvm qemu-compat test ramdisk payload"
  le32() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))\\x$(printf %02x $(($1 >> 16 & 255)))\\x$(printf %02x $(($1 >> 24 & 255)))"; }
  sum=$(printf %s "$payload" | od -An -v -tu1 | awk '{ for (i = 1; i <= NF; i++) s += $i } END { print s % 4294967296 }')
  { printf AXVMRD; le32 ${#payload}; printf %s "$payload"; le32 "$sum"; } >"$ramdisk"
fi

# Console output from the guest's first line ("<marker>: " anywhere in a line) on, with
# carriage returns removed. Without the marker, all of it.
guest_lines() { # file marker
  local file=$1 marker="$2: "
  if tr -d '\r' <"$file" | grep -qaF -- "$marker"; then
    tr -d '\r' <"$file" | awk -v m="$marker" '
      !found { i = index($0, m); if (i == 0) next; $0 = substr($0, i); found = 1 }
      { print }'
  else
    tr -d '\r' <"$file"
  fi
}

# What legitimately differs between the VMMs in the guests' lines: in the virtio guest's,
# device addresses (QEMU's microvm places virtio-mmio windows at 0xfeb00000 and up) and the
# disk's id; and QEMU's AMD HyperTransport reservation in etc/e820 (see the top).
normalise() {
  sed -E 's/^virtio: 0x[0-9a-f]+ /virtio: <base> /; s/^virtio: blk id .*/virtio: blk id <id>/
    /^fw_cfg: e820 0xfd00000000 \+0x300000000 type 2$/d'
}

# The multiboot-low case's lines without those that read the Multiboot information block,
# which QEMU's loader overwrites with the kernel (see the header).
without_info_lines() {
  grep -avE '^(cmdline|memory|module): |^multiboot: info block at .* inside this image' || true
}

# Describes a guest exit status byte (or a run outcome).
describe() { # status
  case $1 in
    0) echo "exit 0 (passed)" ;;
    timeout) echo "timed out after ${run_timeout}s" ;;
    noexit) echo "QEMU ended without the exit port (reset or triple fault)" ;;
    qemu-error*) echo "QEMU failed (${1#qemu-error })" ;;
    126) echo "exit 126 (0x7e: not booted through the protocol)" ;;
    255) echo "exit 255 (guest panic)" ;;
    *) echo "exit $1" ;;
  esac
}

toml_string() { # text -> TOML basic string
  local s=${1//\\/\\\\}
  printf '"%s"' "${s//\"/\\\"}"
}

qemu_version=$("$qemu" --version | head -n 1)
say "reference $qemu_version (TCG)"
say "axvm $axvm"
say "images $images"
echo

passed=0
failed=0
summary=()
details=()
for spec in "${cases[@]}"; do
  IFS=: read -r name image cpus with_ramdisk devices <<<"$spec"
  # The guest's line prefix: its program's name (multiboot-low is the multiboot guest).
  marker=${image%%-*}
  dir=$work/$name
  mkdir -p "$dir"
  if [ ! -f "$images/$image" ]; then
    say "no $image image in $images (an older build?)" >&2
    exit 2
  fi
  cp "$images/$image" "$dir/$image"
  initrd=()
  ramdisk_line=""
  if [ "$with_ramdisk" = yes ]; then
    cp "$ramdisk" "$dir/ramdisk"
    initrd=(-initrd ramdisk)
    ramdisk_line="ramdisk_path = \"ramdisk\""
  fi
  machine=()
  # axvm's devices, and no emulated text screen (see the top).
  defaults=(-nodefaults)
  qemu_devices=()
  emu_devices=""
  backends=""
  interrupt_mode=no_irq
  pass_through=""
  # How the guest ends when it passes: the exit port, or a power-off (QEMU exits 0).
  ends_by=exit
  if [ "$devices" = q35-platform ]; then
    machine=(-M q35)
    pass_through='    ["IO APIC", 0xfec0_0000, 0xfec0_0000, 0x1000, 0x1],
    ["Local APIC", 0xfee0_0000, 0xfee0_0000, 0x1000, 0x1],
    ["HPET", 0xfed0_0000, 0xfed0_0000, 0x1000, 0x1],'
    interrupt_mode=passthrough
    ends_by=poweroff
  fi
  # How QEMU gets the guest: -kernel (a boot protocol), or the BIOS start's images.
  qemu_boot=(-kernel "$image" -append "$cmdline")
  qemu_memory_mib=$memory_mib
  own_config=""
  if [ "$devices" = bios-stub ]; then
    for file in bios-stub bios-reset; do
      if [ ! -f "$images/$file" ]; then
        say "no $file image in $images (an older build?)" >&2
        exit 2
      fi
      cp "$images/$file" "$dir/$file"
    done
    machine=(-M q35)
    qemu_boot=(-bios bios-reset -device loader,file=bios-stub,addr=0x8000,force-raw=on
      -device "loader,file=$image,addr=0x200000,force-raw=on")
    qemu_memory_mib=16
    own_config=$root/guests/biosboot/biosboot.toml
  fi
  if [ "$devices" = virtio-blk ]; then
    truncate -s "${disk_mib}M" "$dir/disk.img"
    printf %s "$disk_text" | dd of="$dir/disk.img" conv=notrunc status=none
    cp "$dir/disk.img" "$dir/qemu-disk.img"
    machine=(-M microvm,acpi=off -global virtio-mmio.force-legacy=false)
    defaults=(-nographic)
    qemu_devices=(-drive "id=d0,file=$dir/qemu-disk.img,format=raw,if=none"
      -device virtio-blk-device,drive=d0)
    emu_devices='    ["vda", 0xd000_0000, 0x1000, 5, 0xE1, []],'
    backends=$'\n[devices.backends]\nvda = { path = "disk.img" }'
    interrupt_mode=emu
  fi

  # QEMU: the reference, in the case's directory so that the kernel's path is the config's.
  qemu_rc=0
  (cd "$dir" && timeout -k 5 "$run_timeout" "$qemu" "${machine[@]}" -accel tcg "${defaults[@]}" \
    -no-reboot -serial stdio -monitor none -display none \
    -device isa-debug-exit,iobase=0xf4,iosize=4 "${qemu_boot[@]}" \
    -smp "$cpus" -m "${qemu_memory_mib}M" "${initrd[@]}" "${qemu_devices[@]}" \
    </dev/null >"$dir/qemu.out" 2>"$dir/qemu.err") || qemu_rc=$?
  if [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ]; then
    qemu_status=timeout
  elif [ "$qemu_rc" = 0 ] && [ "$ends_by" = poweroff ]; then
    qemu_status=0
  elif [ "$qemu_rc" = 0 ]; then
    qemu_status=noexit
  elif [ $((qemu_rc % 2)) = 1 ]; then
    qemu_status=$(((qemu_rc - 1) / 2))
  else
    qemu_status="qemu-error status $qemu_rc: $(tail -n 1 "$dir/qemu.err")"
  fi

  # axvm, with the equivalent config (paths relative to it).
  cat >"$dir/$name.toml" <<EOF
# Generated by scripts/qemu-compat.sh: the axvm equivalent of
# qemu ${machine[*]} -kernel $image -append "$cmdline" -smp $cpus -m ${memory_mib}M${initrd:+ -initrd ramdisk}${qemu_devices:+ ${qemu_devices[*]}}
[base]
id = 0
name = "compat-$name"
vm_type = 1
cpu_num = $cpus

[kernel]
entry_point = 0x10_0000
image_location = "memory"
kernel_path = "$image"
kernel_load_addr = 0x10_0000
cmdline = $(toml_string "$cmdline")
$ramdisk_line
memory_regions = [
    [0x0, $(printf '%#x' $((memory_mib << 20))), 0x7, 0],
]

[devices]
passthrough_devices = [
$pass_through
]
emu_devices = [
$emu_devices
]
interrupt_mode = "$interrupt_mode"
$backends
EOF
  if [ -n "$own_config" ]; then
    cp "$own_config" "$dir/$name.toml"
  fi
  axvm_rc=0
  timeout -k 5 "$run_timeout" "$axvm" run "$dir/$name.toml" \
    </dev/null >"$dir/axvm.out" 2>"$dir/axvm.err" || axvm_rc=$?
  if [ "$axvm_rc" = 124 ] || [ "$axvm_rc" = 137 ]; then
    axvm_status=timeout
  else
    axvm_status=$axvm_rc
  fi

  guest_lines "$dir/qemu.out" "$marker" | normalise >"$dir/qemu.lines"
  guest_lines "$dir/axvm.out" "$marker" | normalise >"$dir/axvm.lines"

  verdict=same
  notes=()
  if [ "$name" = multiboot-low ]; then
    if grep -qa "inside this image" "$dir/axvm.lines"; then
      verdict=DIFFERENT
      notes+=("axvm gave the low kernel an information block inside its image")
    fi
    for vmm in qemu axvm; do
      without_info_lines <"$dir/$vmm.lines" >"$dir/$vmm.compared"
      mv "$dir/$vmm.compared" "$dir/$vmm.lines"
    done
  fi
  if ! cmp -s "$dir/qemu.lines" "$dir/axvm.lines"; then
    verdict=DIFFERENT
    notes+=("console lines differ (- QEMU, + axvm):")
    while IFS= read -r line; do notes+=("    $line"); done < <(
      diff -U1 --label qemu --label axvm "$dir/qemu.lines" "$dir/axvm.lines" | tail -n +3 | head -n 40
    )
  fi
  if [ "$devices" = virtio-blk ] && ! cmp -s "$dir/qemu-disk.img" "$dir/disk.img"; then
    verdict=DIFFERENT
    notes+=("the disks differ after the runs: $(cmp "$dir/qemu-disk.img" "$dir/disk.img" 2>&1 | head -n 1 || true)")
  fi
  if [ "$qemu_status" != "$axvm_status" ]; then
    verdict=DIFFERENT
    notes+=("exit status: QEMU $(describe "$qemu_status"), axvm $(describe "$axvm_status")")
  fi
  if [ "$qemu_status" != 0 ]; then
    verdict="$verdict, REFERENCE FAILED"
    notes+=("the guest did not pass under QEMU: $(describe "$qemu_status")")
    while IFS= read -r line; do notes+=("    qemu stderr: $line"); done < <(tail -n 5 "$dir/qemu.err")
  fi
  if [ "$axvm_status" != 0 ] && [ -s "$dir/axvm.err" ]; then
    while IFS= read -r line; do notes+=("    axvm stderr: $line"); done < <(tail -n 5 "$dir/axvm.err")
  fi
  if [ "$axvm_status" = 126 ]; then
    notes+=("hint: axvm started the image without its $image boot protocol (the guest's fallback entry ran)")
  fi

  if [ "$verdict" = same ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
  fi
  summary+=("$(printf '%-16s %-28s %-28s %s' "$name" \
    "$(describe "$qemu_status"), $(wc -l <"$dir/qemu.lines") lines" \
    "$(describe "$axvm_status"), $(wc -l <"$dir/axvm.lines") lines" "$verdict")")
  if [ ${#notes[@]} -gt 0 ]; then
    details+=("== $name: qemu -smp $cpus vs axvm cpu_num = $cpus" "${notes[@]}" "")
  fi
done

printf '%-16s %-28s %-28s %s\n' case QEMU axvm result
printf '%s\n' "${summary[@]}"
echo
if [ ${#details[@]} -gt 0 ]; then
  printf '%s\n' "${details[@]}"
fi
say "$passed passed, $failed failed"
[ "$failed" = 0 ]
