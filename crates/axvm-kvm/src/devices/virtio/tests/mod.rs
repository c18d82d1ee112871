//! Tests of the virtio transport and devices through a driver written for them
//! ([`crate::testing::virtio_driver`]): what a correct driver gets, what a hostile one
//! cannot do, and seeded runs of the fuzz harness the `virtio_blk` fuzz target shares.

mod block;
/// The test driver, shared with the fuzz harness.
mod driver {
    pub use crate::testing::virtio_driver::*;
}
mod fuzz;
mod hostile;
