//! Tests of the virtio transport and devices through a driver written for them
//! ([`driver`]): what a correct driver gets, what a hostile one cannot do, and a seeded fuzz
//! run of random queues and requests.

mod block;
mod driver;
mod fuzz;
mod hostile;
