mod common;
axvm_test_harness::main!();
