//! Benchmark figures as standalone SVG: a latency percentile plot on a "nines" axis and
//! throughput against message size, side by side. Everything here is pure string building
//! except [`write_plot`], which writes the file (and, for `.png`, rasterises it in-process with resvg).

mod axes;
mod latency;
mod layout;
pub mod raster;
mod svg;
#[cfg(test)]
mod test_util;
mod throughput;
pub mod topology;

use std::fmt::Write as _;
use std::path::Path;

// Public API; nothing outside `plot` uses these today.
#[allow(unused_imports)]
pub use axes::{format_ns, nice_ticks, percentile};
#[allow(unused_imports)]
pub use svg::escape_xml;

use latency::latency_panel;
use layout::Area;
use svg::text;
use throughput::throughput_panel;

/// Raw one-way latency samples of one run, unsorted.
pub struct LatencySeries<'a> {
    pub label: &'a str,
    pub samples_ns: &'a [u64],
}

/// One throughput measurement.
pub struct ThroughputPoint {
    pub message_bytes: u64,
    pub gbit_per_s: f64,
}

/// Everything one figure shows.
pub struct PlotData<'a> {
    pub title: String,
    pub latency: Vec<LatencySeries<'a>>,
    pub throughput: Vec<ThroughputPoint>,
    /// Horizontal reference lines on the throughput panel, in Gbit/s, e.g. `("iperf3", 27.0)`.
    pub peer_lines: Vec<(String, f64)>,
}

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 440.0;
const FONT: &str = "Helvetica, Arial, 'Liberation Sans', 'DejaVu Sans', sans-serif";
const PALETTE: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];
const PEER_COLORS: [&str; 4] = ["#555555", "#b8860b", "#6a3d9a", "#008080"];
const TEXT: &str = "#222222";
const MUTED: &str = "#555555";
const GRID: &str = "#e6e6e6";
const AXIS: &str = "#888888";

/// Writes the figure to `path`: `.svg` directly, `.png` rasterised in-process (resvg).
pub fn write_plot(path: &Path, d: &PlotData) -> Result<(), String> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "svg" => std::fs::write(path, render_svg(d))
            .map_err(|e| format!("cannot write {}: {e}", path.display())),
        "png" => write_png(path, d),
        _ => Err(format!(
            "cannot plot to {}: unsupported file extension; use .svg or .png",
            path.display()
        )),
    }
}

fn write_png(path: &Path, d: &PlotData) -> Result<(), String> {
    raster::write_png(path, &render_svg(d))
}

/// Renders the whole figure as a standalone SVG document.
pub fn render_svg(d: &PlotData) -> String {
    let mut s = String::with_capacity(64 * 1024);
    let _ = write!(
        s,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="{FONT}" fill="{TEXT}">
<rect x="0" y="0" width="{w}" height="{h}" fill="white"/>
"#,
        w = WIDTH,
        h = HEIGHT,
    );
    text(
        &mut s,
        WIDTH / 2.0,
        32.0,
        &d.title,
        "font-size=\"19\" font-weight=\"bold\" text-anchor=\"middle\"",
    );
    let left = Area::new(0.0);
    let right = Area::new(WIDTH / 2.0);
    latency_panel(&mut s, &left, &d.latency);
    throughput_panel(&mut s, &right, &d.throughput, &d.peer_lines);
    s.push_str("</svg>\n");
    s
}

// ---------------------------------------------------------------------------------------------
// Layout

#[cfg(test)]
mod tests {
    use super::test_util::{check_well_formed, example, fake_latencies};
    use super::*;

    #[test]
    fn svg_is_well_formed_and_labelled() {
        let a = fake_latencies(100_000, 9_000.0, 1);
        let b = fake_latencies(20_000, 14_000.0, 2);
        let svg = render_svg(&example(&a, &b));
        check_well_formed(&svg).unwrap();
        assert!(svg.starts_with("<?xml"));
        assert!(svg.contains("HyperFabric bench: node-a &lt;-&gt; node-b"));
        for label in [
            "hyperfabric",
            "sockperf (TCP)",
            "iperf3 27 Gbit/s",
            "UCX tcp 22.5 Gbit/s",
        ] {
            assert!(svg.contains(label), "missing {label}");
        }
        for tick in ["99.9", "64K", "1M", "16M"] {
            assert!(
                svg.contains(&format!(">{tick}</text>")),
                "missing tick {tick}"
            );
        }
        assert!(svg.contains("p50 ") && svg.contains("p99 "));
        assert!(!svg.contains("no data"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn empty_data_renders_no_data_panels() {
        let d = PlotData {
            title: String::new(),
            latency: vec![],
            throughput: vec![],
            peer_lines: vec![],
        };
        let svg = render_svg(&d);
        check_well_formed(&svg).unwrap();
        assert_eq!(svg.matches(">no data</text>").count(), 2);

        let d = PlotData {
            title: "t".into(),
            latency: vec![LatencySeries {
                label: "empty",
                samples_ns: &[],
            }],
            throughput: vec![ThroughputPoint {
                message_bytes: 4096,
                gbit_per_s: f64::NAN,
            }],
            peer_lines: vec![("iperf3".into(), 10.0)],
        };
        let svg = render_svg(&d);
        check_well_formed(&svg).unwrap();
        assert_eq!(svg.matches(">no data</text>").count(), 2);
    }

    #[test]
    fn degenerate_data_renders() {
        // One sample, all-equal samples, zeros, a single throughput point.
        for samples in [
            vec![5u64],
            vec![700; 1000],
            vec![0; 10],
            vec![0, 1, 2, 3_000_000],
        ] {
            let d = PlotData {
                title: "x".into(),
                latency: vec![LatencySeries {
                    label: "s",
                    samples_ns: &samples,
                }],
                throughput: vec![ThroughputPoint {
                    message_bytes: 1,
                    gbit_per_s: 0.0,
                }],
                peer_lines: vec![],
            };
            let svg = render_svg(&d);
            check_well_formed(&svg).unwrap();
            assert!(!svg.contains("NaN") && !svg.contains("inf"), "{samples:?}");
        }
    }

    #[test]
    fn write_plot_extensions() {
        let dir = tempfile::tempdir().unwrap();
        let d = PlotData {
            title: "t".into(),
            latency: vec![],
            throughput: vec![],
            peer_lines: vec![],
        };
        let svg = dir.path().join("f.SVG");
        write_plot(&svg, &d).unwrap();
        assert!(std::fs::read_to_string(&svg).unwrap().contains("</svg>"));
        let err = write_plot(&dir.path().join("f.pdf"), &d).unwrap_err();
        assert!(err.contains(".svg") && err.contains(".png"), "{err}");
        // PNG either works or explains what it needs.
        match write_plot(&dir.path().join("f.png"), &d) {
            Ok(()) => assert!(std::fs::metadata(dir.path().join("f.png")).unwrap().len() > 0),
            Err(e) => assert!(e.contains("librsvg2-bin") && e.contains(".svg"), "{e}"),
        }
    }

    /// Renders the example figure to /tmp/plot-example.svg for a human to look at.
    #[test]
    fn render_example_file() {
        let a = fake_latencies(200_000, 9_000.0, 1);
        let b = fake_latencies(20_000, 14_000.0, 2);
        write_plot(Path::new("/tmp/plot-example.svg"), &example(&a, &b)).unwrap();
        // A wide range (log latency axis), three series, one of them empty, no peer lines.
        let c = fake_latencies(1_000_000, 1_800.0, 3);
        let mut d = example(&a, &c);
        d.title = "Log-scale example".into();
        d.latency.push(LatencySeries {
            label: "ucx",
            samples_ns: &[],
        });
        d.peer_lines.clear();
        d.throughput.truncate(4);
        write_plot(Path::new("/tmp/plot-example-log.svg"), &d).unwrap();
    }
}
