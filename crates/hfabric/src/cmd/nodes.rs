//! `hfabric nodes`: the fabric file as a table (or JSON).

use crate::common::CliResult;
use hyperfabric::config::{nodes_table, FabricConfig};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The fabric file (TOML).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    /// Print the checked configuration as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> CliResult {
    let cfg = FabricConfig::from_file(&a.config)?;
    if a.json {
        crate::context::print_report(&cfg, None)
    } else {
        print!("{}", nodes_table(&cfg));
        Ok(())
    }
}
