//! Helpers shared by the end-to-end tests; each test binary uses what it needs.
#![allow(dead_code)]

pub mod outside;
pub mod server;
