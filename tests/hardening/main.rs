//! Bad input never panics and never loses work: the fixes for past defects, every mutation of a
//! model file, and the fuzzers' regression inputs.

#[path = "../common/mod.rs"]
mod common;
#[path = "../data_fixtures/mod.rs"]
mod data_fixtures;

mod fixes;
mod fuzz_regressions;
mod model_file_mutations;
