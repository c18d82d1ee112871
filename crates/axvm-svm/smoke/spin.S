# Smoke-test guest (spin): assembled by run.sh with GNU as, loaded by vmm.rs.
.code16
.globl _start
_start:
  jmp _start
