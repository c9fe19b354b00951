//! The `yibao` package's library: the synthetic prefecture-year the
//! binary's `generate` command and the benchmarks write, and the
//! operations layer's edge formats re-exported for the end-to-end and
//! scenario tests.

pub use operations::{answers, channels, facts};
pub mod generate;
