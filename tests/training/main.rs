//! burn training and export (feature `train`): pretraining and its resume, two-step and
//! distillation, export equal to burn bit for bit, transfer heads and the demo.
#![cfg(feature = "train")]

#[path = "../common/mod.rs"]
mod common;
mod fixtures;

mod bireal_export;
mod demo;
mod distillation;
mod export_equivalence;
mod export_paths;
mod model_binary;
mod train_pretrain;
mod transfer;
mod two_step;
