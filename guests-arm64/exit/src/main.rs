//! axvm's arm64 exit guest: prints one line and writes status 42 to the exit
//! device, so a test can check that the status reaches the VMM's caller.
#![no_std]
#![no_main]

use rt::println;

rt::entry!(main);

/// The status this guest ends with.
const STATUS: u8 = 42;

fn main(_dtb: usize) -> ! {
    println!("axvm arm64 exit guest: exiting with status {STATUS}");
    rt::exit(STATUS)
}
