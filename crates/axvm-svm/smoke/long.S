# Smoke-test guest (long): assembled by run.sh with GNU as, loaded by vmm.rs.
.code64
.globl _start
_start:
  mov $0x400000, %rbx
  mov $-1, %rcx
  movswq (%rbx), %rcx
  mov %rcx, %rax
  out %eax, $0x84
  shr $32, %rax
  out %eax, $0x84
  movl $0xdeadbeef, 8(%rbx)
  mov $0xab, %ah
  mov %ah, 16(%rbx)
  mov $1, %eax
  cpuid
  mov %ebx, %eax
  shr $24, %eax
  out %al, $0x80
  hlt
