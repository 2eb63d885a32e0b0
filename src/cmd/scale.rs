//! `rtmdl scale`: the `scale` command of rtmdl-train (one definition of its
//! arguments, `rtmdl_train::cli::ScaleArgs`). The training stack (candle)
//! is built only with the `train` feature.

use anyhow::Result;

pub type Args = rtmdl_train::cli::ScaleArgs;

#[cfg(feature = "train")]
pub fn run(a: Args) -> Result<()> {
    rtmdl_train::cli::scale(&a)
}

#[cfg(not(feature = "train"))]
pub fn run(_: Args) -> Result<()> {
    anyhow::bail!("{}", super::common::no_train("`rtmdl scale`", "scale ARGS"))
}
