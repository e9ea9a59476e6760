//! `hfabric topo`: the topology of a fabric file (or an imported JSON/GraphML document) as a
//! table, a tree, JSON, DOT, GraphML or GML, and drawn as SVG.

use crate::common::{CliError, CliResult};
use hyperfabric::config::FabricConfig;
use hyperfabric::route::export::TopologyDoc;
use hyperfabric::route::formats;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Tree,
    Json,
    Dot,
    Graphml,
    Gml,
}

#[derive(clap::Args)]
pub struct Args {
    /// The fabric file (TOML).
    #[arg(
        long,
        short = 'c',
        value_name = "FILE",
        required_unless_present = "import",
        conflicts_with = "import"
    )]
    pub config: Option<PathBuf>,
    /// Read the topology from a JSON (as `--format json` prints) or GraphML file instead.
    #[arg(long, value_name = "FILE")]
    pub import: Option<PathBuf>,
    /// Output format (default table; nothing is printed for --visualize without --format).
    #[arg(long, short = 'f', value_enum)]
    pub format: Option<Format>,
    /// Root of the tree format (default: the first node).
    #[arg(long, value_name = "ID")]
    pub root: Option<String>,
    /// Draw the topology to an SVG file (Graphviz `dot` if installed, else a built-in layout).
    #[arg(long, value_name = "FILE.svg")]
    pub visualize: Option<PathBuf>,
}

fn load(a: &Args) -> CliResult<TopologyDoc> {
    if let Some(path) = &a.import {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::usage(format!("{}: cannot read: {e}", path.display())))?;
        let graphml = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("graphml"))
            || text.trim_start().starts_with('<');
        let doc = if graphml {
            formats::from_graphml(&text)
        } else {
            TopologyDoc::from_json(&text)
        };
        return doc.map_err(|e| CliError::usage(format!("{}: {e}", path.display())));
    }
    let path = a
        .config
        .as_ref()
        .ok_or_else(|| CliError::usage("give --config or --import"))?;
    Ok(TopologyDoc::from_config(&FabricConfig::from_file(path)?))
}

pub fn run(a: Args) -> CliResult {
    let doc = load(&a)?;
    if let Some(svg) = &a.visualize {
        visualize(&doc, svg)?;
    }
    let format = match (a.format, &a.visualize) {
        (Some(f), _) => f,
        (None, Some(_)) => return Ok(()),
        (None, None) => Format::Table,
    };
    let text = match format {
        Format::Table => doc.to_table(),
        Format::Tree => doc.to_tree(a.root.as_deref()).map_err(CliError::usage)?,
        Format::Json => format!("{}\n", doc.to_json()),
        Format::Dot => formats::to_dot(&doc),
        Format::Graphml => formats::to_graphml(&doc),
        Format::Gml => formats::to_gml(&doc),
    };
    print!("{text}");
    Ok(())
}

/// True if an executable `name` is in a directory of `PATH`.
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

fn graphviz(dot: &str, out: &Path) -> Result<(), String> {
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .arg("-o")
        .arg(out)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(dot.as_bytes()).map_err(|e| e.to_string())?;
    }
    let res = child.wait_with_output().map_err(|e| e.to_string())?;
    if res.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&res.stderr).trim().to_string())
    }
}

fn visualize(doc: &TopologyDoc, out: &Path) -> CliResult {
    let force_builtin = std::env::var_os("HFABRIC_NO_GRAPHVIZ").is_some();
    if on_path("dot") && !force_builtin {
        match graphviz(&formats::to_dot(doc), out) {
            Ok(()) => {
                eprintln!(
                    "hfabric: wrote {} (rendered with Graphviz dot)",
                    out.display()
                );
                return Ok(());
            }
            Err(e) => eprintln!("hfabric: Graphviz dot failed ({e}); using the built-in layout"),
        }
    }
    std::fs::write(out, formats::to_svg(doc))
        .map_err(|e| CliError::failed(format!("{}: cannot write: {e}", out.display())))?;
    eprintln!(
        "hfabric: wrote {} (built-in circular layout; Graphviz dot not used)",
        out.display()
    );
    Ok(())
}
