//! What a run tells about its exits, whatever the host: counts per kind and target
//! ([`stats`], `--stats`) and every exit as a JSON line ([`trace`], `--trace-exits`).

pub mod stats;
pub mod trace;
