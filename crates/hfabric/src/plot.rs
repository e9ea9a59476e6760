//! Benchmark figures as standalone SVG: a latency percentile plot on a "nines" axis and
//! throughput against message size, side by side. Everything here is pure string building
//! except [`write_plot`], which writes the file (and, for `.png`, runs an external converter).

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

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
/// Points per latency curve; plenty for a 400 px wide panel.
const CURVE_POINTS: usize = 480;

/// Writes the figure to `path`: `.svg` directly, `.png` through `rsvg-convert` or ImageMagick.
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
    let converter = png_converter().ok_or_else(|| {
        format!(
            "cannot write {}: PNG output needs `rsvg-convert` (Debian/Ubuntu package librsvg2-bin) \
             or ImageMagick's `convert` on PATH; writing a .svg file works without either",
            path.display()
        )
    })?;
    let mut tmp = tempfile::Builder::new()
        .prefix("hfabric-plot-")
        .suffix(".svg")
        .tempfile()
        .map_err(|e| format!("cannot create a temporary file for the SVG: {e}"))?;
    std::io::Write::write_all(&mut tmp, render_svg(d).as_bytes())
        .map_err(|e| format!("cannot write the temporary SVG: {e}"))?;
    let mut cmd = Command::new(converter);
    match converter {
        "rsvg-convert" => cmd.arg(tmp.path()).arg("-o").arg(path),
        _ => cmd
            .arg("-background")
            .arg("white")
            .arg(tmp.path())
            .arg(path),
    };
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {converter}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{converter} failed to write {} ({}): {}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The first working SVG-to-PNG converter on PATH, if any.
fn png_converter() -> Option<&'static str> {
    let works = |program: &str, arg: &str, must_contain: &str| {
        Command::new(program)
            .arg(arg)
            .output()
            .map(|o| {
                o.status.success() && String::from_utf8_lossy(&o.stdout).contains(must_contain)
            })
            .unwrap_or(false)
    };
    if works("rsvg-convert", "--version", "rsvg-convert") {
        Some("rsvg-convert")
    } else if works("convert", "-version", "ImageMagick") {
        Some("convert")
    } else {
        None
    }
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

/// The plotting rectangle of one panel.
struct Area {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

impl Area {
    fn new(panel_x: f64) -> Area {
        let (ml, mr, mt, mb) = (78.0, 26.0, 78.0, 62.0);
        Area {
            x: panel_x + ml,
            y: mt,
            w: WIDTH / 2.0 - ml - mr,
            h: HEIGHT - mt - mb,
        }
    }
    fn bottom(&self) -> f64 {
        self.y + self.h
    }
    fn right(&self) -> f64 {
        self.x + self.w
    }
    fn cx(&self) -> f64 {
        self.x + self.w / 2.0
    }
}

/// A linear map from data space (possibly already log-transformed) to pixels.
#[derive(Clone, Copy)]
struct Scale {
    d0: f64,
    d1: f64,
    p0: f64,
    p1: f64,
}

impl Scale {
    fn at(&self, v: f64) -> f64 {
        let span = self.d1 - self.d0;
        let t = if span.abs() < f64::EPSILON {
            0.5
        } else {
            (v - self.d0) / span
        };
        self.p0 + t * (self.p1 - self.p0)
    }
}

fn panel_title(s: &mut String, a: &Area, title: &str) {
    text(
        s,
        a.cx(),
        a.y - 22.0,
        title,
        "font-size=\"14.5\" font-weight=\"bold\" text-anchor=\"middle\"",
    );
}

fn axis_titles(s: &mut String, a: &Area, x_title: &str, y_title: &str) {
    text(
        s,
        a.cx(),
        a.bottom() + 44.0,
        x_title,
        &format!("font-size=\"12.5\" text-anchor=\"middle\" fill=\"{MUTED}\""),
    );
    let (x, y) = (a.x - 60.0, a.y + a.h / 2.0);
    text(
        s,
        x,
        y,
        y_title,
        &format!(
            "font-size=\"12.5\" text-anchor=\"middle\" fill=\"{MUTED}\" transform=\"rotate(-90 {x:.1} {y:.1})\""
        ),
    );
}

fn frame(s: &mut String, a: &Area) {
    let _ = writeln!(
        s,
        r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="{AXIS}" stroke-width="1"/>"#,
        a.x, a.y, a.w, a.h
    );
}

fn no_data(s: &mut String, a: &Area) {
    frame(s, a);
    text(
        s,
        a.cx(),
        a.y + a.h / 2.0,
        "no data",
        &format!("font-size=\"14\" text-anchor=\"middle\" fill=\"{AXIS}\" font-style=\"italic\""),
    );
}

fn x_tick(s: &mut String, a: &Area, px: f64, label: &str) {
    let _ = writeln!(
        s,
        r#"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}" stroke="{GRID}"/>"#,
        a.y,
        a.bottom()
    );
    let _ = writeln!(
        s,
        r#"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}" stroke="{AXIS}"/>"#,
        a.bottom(),
        a.bottom() + 5.0
    );
    text(
        s,
        px,
        a.bottom() + 19.0,
        label,
        &format!("font-size=\"11.5\" text-anchor=\"middle\" fill=\"{MUTED}\""),
    );
}

fn y_tick(s: &mut String, a: &Area, py: f64, label: &str, major: bool) {
    let _ = writeln!(
        s,
        r#"<line x1="{:.1}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="{GRID}"/>"#,
        a.x,
        a.right()
    );
    if !major {
        return;
    }
    let _ = writeln!(
        s,
        r#"<line x1="{:.1}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="{AXIS}"/>"#,
        a.x - 5.0,
        a.x
    );
    text(
        s,
        a.x - 8.0,
        py + 4.0,
        label,
        &format!("font-size=\"11.5\" text-anchor=\"end\" fill=\"{MUTED}\""),
    );
}

fn text(s: &mut String, x: f64, y: f64, content: &str, attrs: &str) {
    let _ = writeln!(
        s,
        r#"<text x="{x:.1}" y="{y:.1}" {attrs}>{}</text>"#,
        escape_xml(content)
    );
}

fn polyline(s: &mut String, pts: &[(f64, f64)], color: &str, width: f64) {
    s.push_str(
        "<polyline fill=\"none\" stroke-linejoin=\"round\" stroke-linecap=\"round\" points=\"",
    );
    for (i, (x, y)) in pts.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{x:.1},{y:.1}");
    }
    let _ = writeln!(s, "\" stroke=\"{color}\" stroke-width=\"{width}\"/>");
}

/// Escapes text for XML element content and attribute values.
pub fn escape_xml(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters other than tab/newline are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' && c != '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Latency panel

/// Nearest-rank percentile of already sorted samples; `p` in [0, 1].
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = (p.clamp(0.0, 1.0) * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// Position on the "nines" axis: 0 -> 0, 0.9 -> 1, 0.99 -> 2, 0.999 -> 3, ...
fn nines(p: f64) -> f64 {
    -(1.0 - p).log10()
}

fn nines_label(k: u32) -> String {
    match k {
        0 => "0".to_string(),
        1 => "90".to_string(),
        2 => "99".to_string(),
        _ => format!("99.{}", "9".repeat(k as usize - 2)),
    }
}

struct Curve<'a> {
    label: &'a str,
    /// (nines, ns)
    points: Vec<(f64, f64)>,
    p50: f64,
    p99: f64,
}

fn latency_panel(s: &mut String, a: &Area, series: &[LatencySeries]) {
    panel_title(s, a, "Latency distribution");
    axis_titles(s, a, "percentile", "one-way latency");

    let mut curves = Vec::new();
    let mut empty_labels = Vec::new();
    for ser in series {
        if ser.samples_ns.is_empty() {
            empty_labels.push(ser.label);
            continue;
        }
        let mut sorted = ser.samples_ns.to_vec();
        sorted.sort_unstable();
        let n = sorted.len();
        // The tail a sample set of n can resolve: 1 - p = 1/n; at most 99.999.
        let x_end = (n as f64).log10().clamp(0.0, 5.0);
        let points: Vec<(f64, f64)> = (0..=CURVE_POINTS)
            .map(|i| {
                let x = x_end * i as f64 / CURVE_POINTS as f64;
                let p = 1.0 - 10f64.powf(-x);
                (x, percentile(&sorted, p).unwrap_or(0) as f64)
            })
            .collect();
        curves.push(Curve {
            label: ser.label,
            points,
            p50: percentile(&sorted, 0.5).unwrap_or(0) as f64,
            p99: percentile(&sorted, 0.99).unwrap_or(0) as f64,
        });
    }
    if curves.is_empty() {
        no_data(s, a);
        return;
    }

    let x_max = curves
        .iter()
        .map(|c| c.points.last().map_or(0.0, |p| p.0))
        .fold(0.0, f64::max)
        .ceil()
        .clamp(2.0, 5.0);
    let xs = Scale {
        d0: 0.0,
        d1: x_max,
        p0: a.x,
        p1: a.right(),
    };
    let (lo, hi) = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.1))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });

    // Log scale when the values span more than ~1.5 decades, linear otherwise.
    let log = lo >= 1.0 && hi / lo > 30.0;
    let ys;
    if log {
        let ticks = log_ticks(lo, hi);
        let d0 = ticks.first().map_or(0.0, |t| t.0.log10());
        let d1 = ticks.last().map_or(1.0, |t| t.0.log10());
        ys = Scale {
            d0,
            d1,
            p0: a.bottom(),
            p1: a.y,
        };
        for (v, major) in ticks {
            y_tick(s, a, ys.at(v.log10()), &format_ns(v), major);
        }
    } else {
        let (lo, hi) = if hi - lo < 1.0 {
            ((lo - 1.0).max(0.0), hi + 1.0)
        } else {
            (lo, hi)
        };
        // Start the axis at zero when the data is not far from it.
        let lo = if lo < hi * 0.4 { 0.0 } else { lo };
        let ticks = nice_ticks(lo, hi, 6);
        ys = Scale {
            d0: ticks[0],
            d1: *ticks.last().unwrap_or(&hi),
            p0: a.bottom(),
            p1: a.y,
        };
        for v in ticks {
            y_tick(s, a, ys.at(v), &format_ns(v), true);
        }
    }
    let y_of = |ns: f64| {
        if log {
            ys.at(ns.max(1.0).log10())
        } else {
            ys.at(ns)
        }
    };

    for k in 0..=x_max as u32 {
        x_tick(s, a, xs.at(k as f64), &nines_label(k));
    }
    frame(s, a);

    let pixels: Vec<Vec<(f64, f64)>> = curves
        .iter()
        .map(|c| c.points.iter().map(|&(x, v)| (xs.at(x), y_of(v))).collect())
        .collect();
    for (i, pts) in pixels.iter().enumerate() {
        polyline(s, pts, PALETTE[i % PALETTE.len()], 2.0);
    }
    // Median and p99 markers on top of all the lines. Each label goes to the first spot around
    // its dot that crosses no curve and no earlier label (else the least crowded one).
    let mut placed: Vec<Rect> = Vec::new();
    for (i, c) in curves.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        for (name, x, v) in [("p50", nines(0.5), c.p50), ("p99", 2.0, c.p99)] {
            let (px, py) = (xs.at(x), y_of(v));
            let _ = writeln!(
                s,
                r#"<circle cx="{px:.1}" cy="{py:.1}" r="3.5" fill="{color}" stroke="white" stroke-width="1.2"/>"#
            );
            let label = format!("{name} {}", format_ns(v));
            let w = 5.9 * label.chars().count() as f64;
            let h = 11.0;
            let candidates = [
                (px + 5.0, py + 6.0),         // below right
                (px - 5.0 - w, py - 6.0 - h), // above left
                (px + 5.0, py - 6.0 - h),     // above right
                (px - 5.0 - w, py + 6.0),     // below left
                (px + 5.0, py + 18.0),        // further below right
                (px - 5.0 - w, py - 18.0 - h),
            ];
            let cost = |&(x, y): &(f64, f64)| {
                let r = Rect { x, y, w, h };
                let outside = x < a.x || x + w > a.right() || y < a.y || y + h > a.bottom();
                let crossings = pixels
                    .iter()
                    .flatten()
                    .filter(|&&(qx, qy)| r.contains(qx, qy, 1.5))
                    .count();
                let overlaps = placed.iter().filter(|p| p.overlaps(&r)).count();
                (outside as usize) * 1000 + overlaps * 100 + crossings
            };
            let mut best = candidates[0];
            let mut best_cost = usize::MAX;
            for cand in candidates {
                let c = cost(&cand);
                if c < best_cost {
                    best = cand;
                    best_cost = c;
                }
                if c == 0 {
                    break;
                }
            }
            placed.push(Rect {
                x: best.0,
                y: best.1,
                w,
                h,
            });
            text(
                s,
                best.0,
                best.1 + h - 2.0,
                &label,
                &format!("font-size=\"10.5\" fill=\"{color}\" stroke=\"white\" stroke-width=\"3\" paint-order=\"stroke\""),
            );
        }
    }

    // Legend, top left inside the plot (latency curves rise to the right).
    let entries: Vec<(String, &str)> = curves
        .iter()
        .enumerate()
        .map(|(i, c)| (c.label.to_string(), PALETTE[i % PALETTE.len()]))
        .chain(
            empty_labels
                .iter()
                .map(|l| (format!("{l} (no data)"), AXIS)),
        )
        .collect();
    legend(s, a.x + 10.0, a.y + 10.0, &entries);
}

/// A label's box, for placement.
struct Rect {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

impl Rect {
    fn contains(&self, x: f64, y: f64, pad: f64) -> bool {
        x >= self.x - pad
            && x <= self.x + self.w + pad
            && y >= self.y - pad
            && y <= self.y + self.h + pad
    }
    fn overlaps(&self, o: &Rect) -> bool {
        self.x < o.x + o.w && o.x < self.x + self.w && self.y < o.y + o.h && o.y < self.y + self.h
    }
}

fn legend(s: &mut String, x: f64, y: f64, entries: &[(String, &str)]) {
    let longest = entries
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0) as f64;
    let w = 34.0 + longest * 6.6;
    let h = 8.0 + 17.0 * entries.len() as f64;
    let _ = writeln!(
        s,
        r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" rx="3" fill="white" fill-opacity="0.9" stroke="{GRID}"/>"#
    );
    for (i, (label, color)) in entries.iter().enumerate() {
        let ly = y + 13.0 + 17.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="2.5"/>"#,
            x + 7.0,
            x + 25.0
        );
        text(s, x + 31.0, ly + 4.0, label, "font-size=\"11.5\"");
    }
}

// ---------------------------------------------------------------------------------------------
// Throughput panel

fn throughput_panel(s: &mut String, a: &Area, points: &[ThroughputPoint], peers: &[(String, f64)]) {
    panel_title(s, a, "Throughput vs message size");
    axis_titles(s, a, "message size (bytes)", "throughput (Gbit/s)");

    let mut pts: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.message_bytes > 0 && p.gbit_per_s.is_finite())
        .map(|p| ((p.message_bytes as f64).log2(), p.gbit_per_s))
        .collect();
    if pts.is_empty() {
        no_data(s, a);
        return;
    }
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let peers: Vec<&(String, f64)> = peers.iter().filter(|p| p.1.is_finite()).collect();

    let (mut x0, mut x1) = (pts[0].0.floor(), pts[pts.len() - 1].0.ceil());
    if x1 - x0 < 2.0 {
        x0 = (x0 - 1.0).max(0.0);
        x1 = x0 + 2.0;
    }
    let xs = Scale {
        d0: x0 - 0.3,
        d1: x1 + 0.3,
        p0: a.x,
        p1: a.right(),
    };
    let y_lo = pts
        .iter()
        .map(|p| p.1)
        .chain(peers.iter().map(|p| p.1))
        .fold(0.0, f64::min);
    let y_hi = pts
        .iter()
        .map(|p| p.1)
        .chain(peers.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let y_hi = if y_hi - y_lo < 1e-9 {
        y_lo + 1.0
    } else {
        y_hi * 1.06
    };
    let ticks = nice_ticks(y_lo, y_hi, 6);
    let ys = Scale {
        d0: ticks[0],
        d1: *ticks.last().unwrap_or(&y_hi),
        p0: a.bottom(),
        p1: a.y,
    };
    let step = if ticks.len() > 1 {
        ticks[1] - ticks[0]
    } else {
        1.0
    };
    for &v in &ticks {
        y_tick(s, a, ys.at(v), &format_tick(v, step), true);
    }
    // Power-of-two labels at exponents that are multiples of a stride, at most ~10 of them.
    let span = (x1 - x0) as u32;
    let stride = [1u32, 2, 4, 10, 20]
        .into_iter()
        .find(|st| span / st <= 10)
        .unwrap_or(20);
    for e in (x0 as u32..=x1 as u32).filter(|e| e % stride == 0) {
        x_tick(s, a, xs.at(e as f64), &format_pow2(e));
    }
    frame(s, a);

    // Peer reference lines, labelled at the right end.
    let mut used_label_ys: Vec<f64> = Vec::new();
    for (i, (name, gbit)) in peers.iter().map(|p| (&p.0, p.1)).enumerate() {
        let color = PEER_COLORS[i % PEER_COLORS.len()];
        let py = ys.at(gbit);
        let _ = writeln!(
            s,
            r#"<line x1="{:.1}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="{color}" stroke-width="1.5" stroke-dasharray="6 4"/>"#,
            a.x,
            a.right()
        );
        let mut ly = if py - a.y < 16.0 { py + 14.0 } else { py - 5.0 };
        while used_label_ys.iter().any(|u| (u - ly).abs() < 13.0) {
            ly += 13.0;
        }
        used_label_ys.push(ly);
        text(
            s,
            a.right() - 6.0,
            ly,
            &format!("{name} {}", format_gbit(gbit)),
            &format!("font-size=\"11\" text-anchor=\"end\" fill=\"{color}\" stroke=\"white\" stroke-width=\"3\" paint-order=\"stroke\""),
        );
    }

    let color = PALETTE[0];
    let pix: Vec<(f64, f64)> = pts.iter().map(|&(x, y)| (xs.at(x), ys.at(y))).collect();
    polyline(s, &pix, color, 2.0);
    for (px, py) in pix {
        let _ = writeln!(
            s,
            r#"<circle cx="{px:.1}" cy="{py:.1}" r="3.2" fill="{color}" stroke="white" stroke-width="1"/>"#
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Ticks and number formatting

/// A "nice" step (1, 2 or 5 times a power of ten) near `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let exp = raw.log10().floor();
    let base = 10f64.powf(exp);
    let frac = raw / base;
    let m = if frac < 1.5 {
        1.0
    } else if frac < 3.0 {
        2.0
    } else if frac < 7.0 {
        5.0
    } else {
        10.0
    };
    m * base
}

/// Round tick values covering [lo, hi] with about `target` ticks; first <= lo, last >= hi.
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() {
        (lo.min(hi), lo.max(hi))
    } else {
        (0.0, 1.0)
    };
    let (lo, hi) = if hi - lo < 1e-12 {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    let step = nice_step((hi - lo) / target.saturating_sub(1).max(1) as f64);
    let first = (lo / step).floor() as i64;
    let last = (hi / step).ceil() as i64;
    // k * step, then snapped to the step's decimal precision to drop float noise.
    let decimals = (-step.log10().floor()).max(0.0) as i32;
    let snap = 10f64.powi(decimals);
    (first..=last)
        .map(|k| (k as f64 * step * snap).round() / snap)
        .collect()
}

/// Log-axis ticks for [lo, hi] (both >= 1) in a 1-2-5 sequence, flagged `true` when labelled.
/// Within three decades every tick is labelled and the list is trimmed to the data; wider
/// ranges label only the decades and extend to whole decades.
fn log_ticks(lo: f64, hi: f64) -> Vec<(f64, bool)> {
    let few = hi / lo < 1000.0;
    let d0 = lo.log10().floor() as i32;
    let d1 = hi.log10().ceil() as i32;
    let mut all = Vec::new();
    for d in d0..=d1 {
        let base = 10f64.powi(d);
        all.push((base, true));
        if d < d1 {
            for m in [2.0, 5.0] {
                all.push((m * base, few));
            }
        }
    }
    if few {
        let first = all.iter().rposition(|t| t.0 <= lo).unwrap_or(0);
        let last = all.iter().position(|t| t.0 >= hi).unwrap_or(all.len() - 1);
        all = all[first..=last].to_vec();
    }
    all
}

/// Tick label for a value on an axis with the given step: no more decimals than the step needs.
fn format_tick(v: f64, step: f64) -> String {
    let decimals = if step > 0.0 {
        (-step.log10().floor()).max(0.0) as usize
    } else {
        0
    };
    let v = if v.abs() < step * 1e-6 { 0.0 } else { v };
    format!("{v:.decimals$}")
}

/// Up to three significant digits, trailing zeros removed: 1.5, 12.3, 250.
fn short_number(v: f64) -> String {
    let decimals = if v.abs() >= 100.0 {
        0
    } else if v.abs() >= 10.0 {
        1
    } else {
        2
    };
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A latency in nanoseconds with a readable unit: "850 ns", "1.5 µs", "12 ms", "2 s".
pub fn format_ns(ns: f64) -> String {
    let a = ns.abs();
    if a == 0.0 {
        "0".to_string()
    } else if a < 1e3 {
        format!("{} ns", short_number(ns))
    } else if a < 1e6 {
        format!("{} µs", short_number(ns / 1e3))
    } else if a < 1e9 {
        format!("{} ms", short_number(ns / 1e6))
    } else {
        format!("{} s", short_number(ns / 1e9))
    }
}

fn format_gbit(g: f64) -> String {
    format!("{} Gbit/s", short_number(g))
}

/// 2^e bytes as "512", "1K", "64K", "1M", "4G".
fn format_pow2(e: u32) -> String {
    match e {
        0..=9 => format!("{}", 1u64 << e),
        10..=19 => format!("{}K", 1u64 << (e - 10)),
        20..=29 => format!("{}M", 1u64 << (e - 20)),
        30..=39 => format!("{}G", 1u64 << (e - 30)),
        _ => format!("2^{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Minimal XML well-formedness check: balanced, properly nested tags, quoted attributes,
    /// known entities only, no stray `<` or `&` in text, exactly one root element.
    fn check_well_formed(xml: &str) -> Result<(), String> {
        fn check_entities(t: &str) -> Result<(), String> {
            let mut rest = t;
            while let Some(i) = rest.find('&') {
                let after = &rest[i + 1..];
                let end = after.find(';').ok_or("unterminated entity")?;
                let name = &after[..end];
                let ok = matches!(name, "amp" | "lt" | "gt" | "quot" | "apos")
                    || (name.starts_with("#x")
                        && name.len() > 2
                        && name[2..].chars().all(|c| c.is_ascii_hexdigit()))
                    || (name.starts_with('#')
                        && name.len() > 1
                        && name[1..].chars().all(|c| c.is_ascii_digit()));
                if !ok {
                    return Err(format!("bad entity &{name};"));
                }
                rest = &after[end + 1..];
            }
            Ok(())
        }
        let mut stack: Vec<&str> = Vec::new();
        let mut roots = 0;
        let mut rest = xml.trim_start();
        if let Some(r) = rest.strip_prefix("<?xml") {
            rest = &r[r.find("?>").ok_or("unterminated XML declaration")? + 2..];
        }
        loop {
            let lt = match rest.find('<') {
                Some(i) => i,
                None => {
                    if !rest.trim().is_empty() && stack.is_empty() {
                        return Err("text after the root element".into());
                    }
                    check_entities(rest)?;
                    break;
                }
            };
            let txt = &rest[..lt];
            if stack.is_empty() && !txt.trim().is_empty() {
                return Err(format!("text outside the root: {txt:?}"));
            }
            if txt.contains('>') {
                // Legal in XML, but our escaper never leaves one; catch regressions.
                return Err(format!("unescaped '>' in text {txt:?}"));
            }
            check_entities(txt)?;
            rest = &rest[lt..];
            if let Some(r) = rest.strip_prefix("<!--") {
                rest = &r[r.find("-->").ok_or("unterminated comment")? + 3..];
                continue;
            }
            // Find the end of the tag, skipping '>' inside quoted attribute values.
            let mut quote = None;
            let mut end = None;
            for (i, c) in rest.char_indices().skip(1) {
                match (quote, c) {
                    (None, '"' | '\'') => quote = Some(c),
                    (Some(q), c) if c == q => quote = None,
                    (Some(_), '<') => return Err("'<' inside an attribute value".into()),
                    (None, '<') => return Err("'<' inside a tag".into()),
                    (None, '>') => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let end = end.ok_or("unterminated tag")?;
            let tag = &rest[1..end];
            rest = &rest[end + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                let open = stack.pop().ok_or("close tag without an open tag")?;
                if open != name.trim() {
                    return Err(format!("<{open}> closed by </{name}>"));
                }
                continue;
            }
            let self_closing = tag.ends_with('/');
            let body = tag.trim_end_matches('/');
            let name_end = body.find(|c: char| c.is_whitespace()).unwrap_or(body.len());
            let name = &body[..name_end];
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_alphanumeric() || "-_:.".contains(c))
            {
                return Err(format!("bad tag name {name:?}"));
            }
            // Attributes: name="value" pairs, each name once.
            let mut attrs = body[name_end..].trim();
            let mut seen = Vec::new();
            while !attrs.is_empty() {
                let eq = attrs
                    .find('=')
                    .ok_or(format!("attribute without value in <{name}>"))?;
                let an = attrs[..eq].trim();
                if an.is_empty() || an.contains(char::is_whitespace) || seen.contains(&an) {
                    return Err(format!("bad or repeated attribute {an:?} in <{name}>"));
                }
                seen.push(an);
                let v = attrs[eq + 1..].trim_start();
                let q = v.chars().next().ok_or("missing attribute value")?;
                if q != '"' && q != '\'' {
                    return Err(format!("unquoted attribute {an} in <{name}>"));
                }
                let close = v[1..].find(q).ok_or("unterminated attribute value")?;
                check_entities(&v[1..1 + close])?;
                attrs = v[close + 2..].trim_start();
            }
            if stack.is_empty() {
                roots += 1;
            }
            if !self_closing {
                stack.push(name);
            }
        }
        if !stack.is_empty() {
            return Err(format!("unclosed elements: {stack:?}"));
        }
        if roots != 1 {
            return Err(format!("{roots} root elements"));
        }
        Ok(())
    }

    /// Deterministic fake latencies: a log-normal-ish body with a heavy tail.
    fn fake_latencies(n: usize, base_ns: f64, seed: u64) -> Vec<u64> {
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| {
                let u = next().max(1e-12);
                let body = base_ns * (1.0 + 0.25 * (next() - 0.5));
                // Pareto tail: a few samples 10-100x the body.
                let tail = if u < 0.02 {
                    base_ns * 0.05 / u.sqrt()
                } else {
                    0.0
                };
                (body + tail) as u64
            })
            .collect()
    }

    fn example<'a>(a: &'a [u64], b: &'a [u64]) -> PlotData<'a> {
        PlotData {
            title: "HyperFabric bench: node-a <-> node-b (TCP, 2 nodes)".to_string(),
            latency: vec![
                LatencySeries {
                    label: "hyperfabric",
                    samples_ns: a,
                },
                LatencySeries {
                    label: "sockperf (TCP)",
                    samples_ns: b,
                },
            ],
            throughput: (6..=24)
                .step_by(2)
                .map(|e| {
                    let bytes = 1u64 << e;
                    let g = 31.0 * (1.0 - (-(bytes as f64) / 40_000.0).exp());
                    ThroughputPoint {
                        message_bytes: bytes,
                        gbit_per_s: g,
                    }
                })
                .collect(),
            peer_lines: vec![("iperf3".to_string(), 27.0), ("UCX tcp".to_string(), 22.5)],
        }
    }

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
    fn escaping() {
        assert_eq!(escape_xml("a<&>\"'b"), "a&lt;&amp;&gt;&quot;&apos;b");
        let d = PlotData {
            title: "<&>".into(),
            latency: vec![LatencySeries {
                label: "x<y & \"z\"",
                samples_ns: &[1, 2, 3],
            }],
            throughput: vec![],
            peer_lines: vec![("a&b".into(), 1.0)],
        };
        let svg = render_svg(&d);
        check_well_formed(&svg).unwrap();
        assert!(svg.contains(">&lt;&amp;&gt;</text>"));
        assert!(svg.contains("x&lt;y &amp; &quot;z&quot;"));
        assert!(check_well_formed("<a>x < y</a>").is_err());
        assert!(check_well_formed("<a>x & y</a>").is_err());
        assert!(check_well_formed("<a><b></a></b>").is_err());
    }

    #[test]
    fn nice_ticks_are_round() {
        for (lo, hi, target) in [
            (0.0, 27.3, 6),
            (0.0, 1.0, 5),
            (3.7, 9.1, 6),
            (0.0, 0.037, 6),
            (1234.0, 98765.0, 6),
            (0.0, 33.0, 6),
            (-4.0, 17.0, 5),
        ] {
            let t = nice_ticks(lo, hi, target);
            assert!(t[0] <= lo && *t.last().unwrap() >= hi, "{lo}..{hi}: {t:?}");
            assert!(t.len() >= 3 && t.len() <= 2 * target, "{lo}..{hi}: {t:?}");
            let step = t[1] - t[0];
            let mantissa = step / 10f64.powf(step.log10().floor());
            assert!(
                [1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-9),
                "step {step} in {t:?}"
            );
            for v in &t {
                let k = v / step;
                assert!((k - k.round()).abs() < 1e-9, "{v} not a multiple of {step}");
                // No float noise like 0.30000000000000004 in the values themselves.
                assert!(format!("{v}").len() <= 8, "{v}");
            }
        }
        assert_eq!(
            nice_ticks(0.0, 27.3, 6),
            vec![0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0]
        );
        assert_eq!(nice_ticks(0.0, 1.0, 6), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(nice_step(0.4), 0.5);
        assert_eq!(nice_step(0.27), 0.2);
        assert_eq!(nice_step(7.0), 10.0);
        assert_eq!(nice_step(1.0), 1.0);
    }

    #[test]
    fn log_ticks_are_decades() {
        let t = log_ticks(800.0, 2_000_000.0);
        let majors: Vec<f64> = t.iter().filter(|x| x.1).map(|x| x.0).collect();
        assert_eq!(majors, vec![100.0, 1e3, 1e4, 1e5, 1e6, 1e7]);
        let t = log_ticks(800.0, 30_000.0);
        assert!(t.iter().all(|x| x.1));
        let values: Vec<f64> = t.iter().map(|x| x.0).collect();
        assert_eq!(values, vec![500.0, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4]);
    }

    #[test]
    fn percentiles_on_known_samples() {
        let mut v: Vec<u64> = (1..=100).rev().collect();
        v.sort_unstable();
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&v, 0.9), Some(90));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&v, 0.999), Some(100));
        assert_eq!(percentile(&v, 1.0), Some(100));
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[7], 0.99), Some(7));
        let v: Vec<u64> = (0..10_000).collect();
        assert_eq!(percentile(&v, 0.9999), Some(9_998));
        assert!((nines(0.99) - 2.0).abs() < 1e-9);
        assert_eq!(nines_label(0), "0");
        assert_eq!(nines_label(1), "90");
        assert_eq!(nines_label(4), "99.99");
    }

    #[test]
    fn formatting() {
        assert_eq!(format_ns(850.0), "850 ns");
        assert_eq!(format_ns(1500.0), "1.5 µs");
        assert_eq!(format_ns(12_345.0), "12.3 µs");
        assert_eq!(format_ns(2e6), "2 ms");
        assert_eq!(format_ns(0.0), "0");
        assert_eq!(format_pow2(0), "1");
        assert_eq!(format_pow2(10), "1K");
        assert_eq!(format_pow2(16), "64K");
        assert_eq!(format_pow2(20), "1M");
        assert_eq!(format_tick(2.5, 0.5), "2.5");
        assert_eq!(format_tick(10.0, 5.0), "10");
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
