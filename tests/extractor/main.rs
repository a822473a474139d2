//! The frozen extractor end to end: the WGSL plans, the CPU path against the references, the
//! benches' building blocks and `bnn bench`, the examples, and the fixture the web tests share.

#[path = "../common/mod.rs"]
mod common;

mod bench_cli;
mod bench_cpu;
mod bench_extractor;
mod classifier;
mod cpu_extractor;
mod examples;
mod extractor_plans;
mod web_fixture;
