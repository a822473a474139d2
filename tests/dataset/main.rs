//! Data sets: folders, tars and the official layouts, the prefetching loader, preprocessing,
//! damaged archives, and the real sets in ../shared when they are there.

#[path = "../common/mod.rs"]
mod common;
#[path = "../data_fixtures/mod.rs"]
mod data_fixtures;

mod folder;
mod layouts;
mod loader;
mod preprocess;
mod real;
mod tar_damage;
