//! One module per command: its `clap::Args` and its `run`. The demo is
//! `crate::demo`; what commands share is `common`.

pub mod analyze;
pub mod common;
pub mod compare;
pub mod explain;
pub mod fidelity;
pub mod inspect;
pub mod plan;
pub mod profile;
pub mod run;
pub mod scale;
pub mod simulate;
pub mod stress;
pub mod variants;
