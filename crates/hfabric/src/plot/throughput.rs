//! The throughput panel: Gbit/s against message size on a log2 x axis, with dashed
//! reference lines for peer tools.

use std::fmt::Write as _;

use super::axes::{format_gbit, format_pow2, format_tick, nice_ticks};
use super::layout::{axis_titles, frame, no_data, panel_title, x_tick, y_tick, Area, Scale};
use super::svg::{polyline, text};
use super::{ThroughputPoint, PALETTE, PEER_COLORS};

pub(super) fn throughput_panel(
    s: &mut String,
    a: &Area,
    points: &[ThroughputPoint],
    peers: &[(String, f64)],
) {
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
    let ys = y_axis(s, a, &pts, &peers);
    x_ticks(s, a, xs, x0, x1);
    frame(s, a);
    peer_lines(s, a, &peers, ys);

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

/// The Gbit/s axis covering the points, the peer lines and zero; draws its ticks.
fn y_axis(s: &mut String, a: &Area, pts: &[(f64, f64)], peers: &[&(String, f64)]) -> Scale {
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
    ys
}

/// Power-of-two labels at exponents that are multiples of a stride, at most ~10 of them.
fn x_ticks(s: &mut String, a: &Area, xs: Scale, x0: f64, x1: f64) {
    let span = (x1 - x0) as u32;
    let stride = [1u32, 2, 4, 10, 20]
        .into_iter()
        .find(|st| span / st <= 10)
        .unwrap_or(20);
    for e in (x0 as u32..=x1 as u32).filter(|e| e % stride == 0) {
        x_tick(s, a, xs.at(e as f64), &format_pow2(e));
    }
}

/// Peer reference lines, labelled at the right end.
fn peer_lines(s: &mut String, a: &Area, peers: &[&(String, f64)], ys: Scale) {
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
}
