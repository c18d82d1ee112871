#!/bin/sh
# check-kvm.sh: the kvm-arm64 harness's first step in L1: the kernel has KVM built in, so
# there is nothing to load; checks that it initialized at EL2 (VHE or nVHE) and that
# /dev/kvm exists, printing what the kernel said.
dmesg | grep -E 'kvm|CPU features|GIC' | sed 's/^/dmesg: /'
[ -c /dev/kvm ] || { echo "no /dev/kvm: the kernel did not start at EL2 (QEMU -M virt,virtualization=on?)"; exit 1; }
dmesg | grep -qE 'kvm \[[0-9]+\]: (VHE|Hyp|Protected nVHE) mode initialized successfully' ||
  { echo "KVM did not say it initialized (VHE or nVHE mode)"; exit 1; }
echo "/dev/kvm is KVM/arm64 ($(dmesg | sed -n 's/.*kvm \[[0-9]*\]: \(.*mode\) initialized.*/\1/p' | head -n 1))"
