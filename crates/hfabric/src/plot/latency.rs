//! The latency panel: percentile curves of each series on a "nines" x axis, with p50/p99
//! markers whose labels avoid the curves and each other.

use std::fmt::Write as _;

use super::axes::{format_ns, log_ticks, nice_ticks, nines, nines_label, percentile};
use super::layout::{
    axis_titles, frame, legend, no_data, panel_title, x_tick, y_tick, Area, Scale,
};
use super::svg::{polyline, text};
use super::{LatencySeries, AXIS, PALETTE};

/// Points per latency curve; plenty for a 400 px wide panel.
const CURVE_POINTS: usize = 480;

struct Curve<'a> {
    label: &'a str,
    /// (nines, ns)
    points: Vec<(f64, f64)>,
    p50: f64,
    p99: f64,
}

/// The latency axis: a scale over ns, or over log10(ns) when `log`.
struct YAxis {
    scale: Scale,
    log: bool,
}

impl YAxis {
    fn at(&self, ns: f64) -> f64 {
        if self.log {
            self.scale.at(ns.max(1.0).log10())
        } else {
            self.scale.at(ns)
        }
    }
}

pub(super) fn latency_panel(s: &mut String, a: &Area, series: &[LatencySeries]) {
    panel_title(s, a, "Latency distribution");
    axis_titles(s, a, "percentile", "one-way latency");

    let (curves, empty_labels) = build_curves(series);
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
    let ys = y_axis(s, a, &curves);

    for k in 0..=x_max as u32 {
        x_tick(s, a, xs.at(k as f64), &nines_label(k));
    }
    frame(s, a);

    let pixels: Vec<Vec<(f64, f64)>> = curves
        .iter()
        .map(|c| {
            c.points
                .iter()
                .map(|&(x, v)| (xs.at(x), ys.at(v)))
                .collect()
        })
        .collect();
    for (i, pts) in pixels.iter().enumerate() {
        polyline(s, pts, PALETTE[i % PALETTE.len()], 2.0);
    }
    markers(s, a, &curves, &pixels, xs, &ys);

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

/// One curve per non-empty series, and the labels of the empty ones.
fn build_curves<'a>(series: &[LatencySeries<'a>]) -> (Vec<Curve<'a>>, Vec<&'a str>) {
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
    (curves, empty_labels)
}

/// Chooses the latency axis for the curves and draws its ticks.
fn y_axis(s: &mut String, a: &Area, curves: &[Curve]) -> YAxis {
    let (lo, hi) = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.1))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });

    // Log scale when the values span more than ~1.5 decades, linear otherwise.
    let log = lo >= 1.0 && hi / lo > 30.0;
    let scale = if log {
        log_y_axis(s, a, lo, hi)
    } else {
        linear_y_axis(s, a, lo, hi)
    };
    YAxis { scale, log }
}

fn log_y_axis(s: &mut String, a: &Area, lo: f64, hi: f64) -> Scale {
    let ticks = log_ticks(lo, hi);
    let d0 = ticks.first().map_or(0.0, |t| t.0.log10());
    let d1 = ticks.last().map_or(1.0, |t| t.0.log10());
    let ys = Scale {
        d0,
        d1,
        p0: a.bottom(),
        p1: a.y,
    };
    for (v, major) in ticks {
        y_tick(s, a, ys.at(v.log10()), &format_ns(v), major);
    }
    ys
}

fn linear_y_axis(s: &mut String, a: &Area, lo: f64, hi: f64) -> Scale {
    let (lo, hi) = if hi - lo < 1.0 {
        ((lo - 1.0).max(0.0), hi + 1.0)
    } else {
        (lo, hi)
    };
    // Start the axis at zero when the data is not far from it.
    let lo = if lo < hi * 0.4 { 0.0 } else { lo };
    let ticks = nice_ticks(lo, hi, 6);
    let ys = Scale {
        d0: ticks[0],
        d1: *ticks.last().unwrap_or(&hi),
        p0: a.bottom(),
        p1: a.y,
    };
    for v in ticks {
        y_tick(s, a, ys.at(v), &format_ns(v), true);
    }
    ys
}

/// Median and p99 markers on top of all the lines. Each label goes to the first spot around
/// its dot that crosses no curve and no earlier label (else the least crowded one).
fn markers(
    s: &mut String,
    a: &Area,
    curves: &[Curve],
    pixels: &[Vec<(f64, f64)>],
    xs: Scale,
    ys: &YAxis,
) {
    let mut placed: Vec<Rect> = Vec::new();
    for (i, c) in curves.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        for (name, x, v) in [("p50", nines(0.5), c.p50), ("p99", 2.0, c.p99)] {
            let (px, py) = (xs.at(x), ys.at(v));
            let _ = writeln!(
                s,
                r#"<circle cx="{px:.1}" cy="{py:.1}" r="3.5" fill="{color}" stroke="white" stroke-width="1.2"/>"#
            );
            let label = format!("{name} {}", format_ns(v));
            let w = 5.9 * label.chars().count() as f64;
            let h = 11.0;
            let best = place_label(a, pixels, &placed, (px, py), w, h);
            placed.push(best);
            text(
                s,
                best.x,
                best.y + h - 2.0,
                &label,
                &format!("font-size=\"10.5\" fill=\"{color}\" stroke=\"white\" stroke-width=\"3\" paint-order=\"stroke\""),
            );
        }
    }
}

/// The box for a `w` x `h` label next to the dot at `(px, py)`: the first candidate spot with
/// nothing in the way, else the one with the least in the way.
fn place_label(
    a: &Area,
    pixels: &[Vec<(f64, f64)>],
    placed: &[Rect],
    (px, py): (f64, f64),
    w: f64,
    h: f64,
) -> Rect {
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
    Rect {
        x: best.0,
        y: best.1,
        w,
        h,
    }
}

/// A label's box, for placement.
#[derive(Clone, Copy)]
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
