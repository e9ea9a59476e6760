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
    /// Draw the topology to FILE.svg or FILE.png (rasterised in-process): switches on top,
    /// nodes in rows by hops from them, zones as coloured groups, links labelled with
    /// bandwidth and latency, a legend. Any other extension is refused.
    #[arg(long, value_name = "FILE.svg|FILE.png")]
    pub visualize: Option<PathBuf>,
    /// With --visualize FILE.svg: lay the graph out with Graphviz `dot` (must be on PATH)
    /// instead of the built-in layered layout.
    #[arg(long, requires = "visualize")]
    pub graphviz: bool,
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
        visualize(&doc, svg, a.graphviz)?;
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

fn graphviz(dot: &str, out: &Path) -> Result<(), String> {
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .arg("-o")
        .arg(out)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run Graphviz `dot`: {e}"))?;
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

/// What `--visualize` writes, by the file's extension.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Picture {
    Svg,
    Png,
}

fn picture_kind(out: &Path) -> CliResult<Picture> {
    let ext = out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("svg") => Ok(Picture::Svg),
        Some("png") => Ok(Picture::Png),
        _ => Err(CliError::usage(format!(
            "--visualize {}: unsupported file extension; use .svg or .png",
            out.display()
        ))),
    }
}

fn visualize(doc: &TopologyDoc, out: &Path, use_graphviz: bool) -> CliResult {
    let kind = picture_kind(out)?;
    if use_graphviz {
        if kind != Picture::Svg {
            return Err(CliError::usage(
                "--graphviz draws SVG only: use --visualize FILE.svg",
            ));
        }
        graphviz(&formats::to_dot(doc), out).map_err(CliError::failed)?;
        eprintln!(
            "hfabric: wrote {} (laid out by Graphviz dot)",
            out.display()
        );
        return Ok(());
    }
    let svg = crate::plot::topology::to_svg(doc);
    match kind {
        Picture::Svg => std::fs::write(out, svg)
            .map_err(|e| CliError::io(format_args!("{}: cannot write", out.display()), &e))?,
        Picture::Png => crate::plot::raster::write_png(out, &svg).map_err(CliError::failed)?,
    }
    eprintln!(
        "hfabric: wrote {} (built-in layered layout with legend)",
        out.display()
    );
    Ok(())
}
