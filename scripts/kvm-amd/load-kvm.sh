#!/bin/sh
# load-kvm.sh: the kvm-amd harness's first step in L1: loads kvm_amd and the modules it
# needs (modules/order), then checks that /dev/kvm runs on SVM with nested paging.
for module in $(cat modules/order); do
  insmod "modules/$module.ko" || exit 1
done
dmesg | grep -E 'SVM|kvm' | sed 's/^/dmesg: /'
[ -c /dev/kvm ] || { echo "no /dev/kvm after loading the modules"; exit 1; }
dmesg | grep -q 'Nested Paging enabled' || { echo "kvm_amd without nested paging"; exit 1; }
echo "/dev/kvm is kvm_amd with nested paging"
