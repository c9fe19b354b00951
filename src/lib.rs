//! The `yibao` package's library: the edge formats the binary reads and
//! writes, shared with the end-to-end and scenario tests.

pub mod answers;
pub mod channels;
pub mod facts;
pub mod generate;
