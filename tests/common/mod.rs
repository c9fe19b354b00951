//! Helpers shared by the end-to-end tests; each test binary uses what it needs.
#![allow(dead_code)]

pub mod outside;
pub mod run;
pub mod server;
mod tree;

// Not every test binary that includes these helpers copies a tree.
#[allow(unused_imports)]
pub use tree::copy_tree;
