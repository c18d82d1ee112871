# Smoke-test guest (sipi): assembled by run.sh with GNU as, loaded by vmm.rs at 0xb000, where
# a start-up IPI with vector 0x0b starts an application processor (CS 0x0b00, IP 0).
.code16
.globl _start
_start:
  mov %cs, %ax
  out %ax, $0x88
  hlt
