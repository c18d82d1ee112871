# Smoke-test guest (real): assembled by run.sh with GNU as, loaded by vmm.rs.
.code16
.globl _start
_start:
  mov $1, %eax
  cpuid
  mov %ebx, %eax
  shr $24, %eax
  out %al, $0x80
  mov %ecx, %eax
  shr $31, %eax
  out %al, $0x80
  mov $0x1111, %ax
  in $0x81, %al
  out %ax, $0x82
  mov $0xb000, %bx
  mov %bx, %ds
  movw 0x8000, %ax
  out %ax, $0x82
  movb $0x42, 0x8002
  xor %ax, %ax
  mov %ax, %ds
  mov $0xc0000080, %ecx
  rdmsr
  out %eax, $0x84
  mov $0x1b, %ecx
  rdmsr
  out %eax, $0x84
  mov $7, %eax
  vmmcall
  hlt
  out %al, $0xf4
  mov $0xf000, %bx
  mov %bx, %ds
  movb $1, 0x10
  out %al, $0xf5
  hlt
