# Smoke-test guest (irq): assembled by run.sh with GNU as, loaded by vmm.rs at 0x10000
# (CS 0x1000, IP 0). Points IVT entry 0x30 at its handler, halts with interrupts on, and
# reports what the handler left in AL after the interrupt returns.
.code16
.globl _start
_start:
  xor %ax, %ax
  mov %ax, %ds
  movw $(handler - _start), 0xc0
  movw $0x1000, 0xc2
  sti
  hlt
  out %al, $0x87
  hlt
handler:
  mov $0x55, %al
  out %al, $0x86
  iret
