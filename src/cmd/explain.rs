//! `rtmdl explain`: the config reference (sections and fields, inference
//! parameters, CPU functions, sources) from the tables the code uses.

use anyhow::{Result, bail};

#[derive(clap::Args)]
pub struct Args {
    /// What to explain: a topic (`sections`, `inference`, `functions`,
    /// `sources`), or one name: a field (`overrun`, `tasks.period`), an
    /// inference parameter (`feedback`), a CPU function (`nms`) or a source
    /// kind (`folder`). Without it, a list of everything.
    topic: Option<String>,
    /// The whole reference as Markdown (what docs/reference.md holds).
    #[arg(long, conflicts_with = "topic")]
    markdown: bool,
}

pub fn run(a: Args) -> Result<()> {
    if a.markdown {
        print!("{}", rtmdl_config::reference::markdown());
        return Ok(());
    }
    match rtmdl_config::reference::text(a.topic.as_deref()) {
        Ok(s) => print!("{s}"),
        Err(e) => bail!("{e}"),
    }
    Ok(())
}
