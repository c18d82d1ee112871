//! The machines axvm builds, one folder each. A platform's `layout` module is the one place
//! its guest-physical facts are written (where the firmware tables, boot data and interrupt
//! controllers are, which interrupt pin each device uses); boot code, devices, the KVM
//! backend and `axvm check` name those constants instead of repeating the numbers, so that
//! moving one cannot leave another part of axvm describing the old place.
//!
//! Only the PC exists today.

pub mod pc;
