//! Panel layout and chrome: the plotting area, data-to-pixel scales, titles, frame, grid
//! ticks and the legend box.

use std::fmt::Write as _;

use super::svg::text;
use super::{AXIS, GRID, HEIGHT, MUTED, WIDTH};

/// The plotting rectangle of one panel.
pub(super) struct Area {
    pub(super) x: f64,
    pub(super) y: f64,
    pub(super) w: f64,
    pub(super) h: f64,
}

impl Area {
    pub(super) fn new(panel_x: f64) -> Area {
        let (ml, mr, mt, mb) = (78.0, 26.0, 78.0, 62.0);
        Area {
            x: panel_x + ml,
            y: mt,
            w: WIDTH / 2.0 - ml - mr,
            h: HEIGHT - mt - mb,
        }
    }
    pub(super) fn bottom(&self) -> f64 {
        self.y + self.h
    }
    pub(super) fn right(&self) -> f64 {
        self.x + self.w
    }
    pub(super) fn cx(&self) -> f64 {
        self.x + self.w / 2.0
    }
}

/// A linear map from data space (possibly already log-transformed) to pixels.
#[derive(Clone, Copy)]
pub(super) struct Scale {
    pub(super) d0: f64,
    pub(super) d1: f64,
    pub(super) p0: f64,
    pub(super) p1: f64,
}

impl Scale {
    pub(super) fn at(&self, v: f64) -> f64 {
        let span = self.d1 - self.d0;
        let t = if span.abs() < f64::EPSILON {
            0.5
        } else {
            (v - self.d0) / span
        };
        self.p0 + t * (self.p1 - self.p0)
    }
}

pub(super) fn panel_title(s: &mut String, a: &Area, title: &str) {
    text(
        s,
        a.cx(),
        a.y - 22.0,
        title,
        "font-size=\"14.5\" font-weight=\"bold\" text-anchor=\"middle\"",
    );
}

pub(super) fn axis_titles(s: &mut String, a: &Area, x_title: &str, y_title: &str) {
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

pub(super) fn frame(s: &mut String, a: &Area) {
    let _ = writeln!(
        s,
        r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="{AXIS}" stroke-width="1"/>"#,
        a.x, a.y, a.w, a.h
    );
}

pub(super) fn no_data(s: &mut String, a: &Area) {
    frame(s, a);
    text(
        s,
        a.cx(),
        a.y + a.h / 2.0,
        "no data",
        &format!("font-size=\"14\" text-anchor=\"middle\" fill=\"{AXIS}\" font-style=\"italic\""),
    );
}

pub(super) fn x_tick(s: &mut String, a: &Area, px: f64, label: &str) {
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

pub(super) fn y_tick(s: &mut String, a: &Area, py: f64, label: &str, major: bool) {
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
pub(super) fn legend(s: &mut String, x: f64, y: f64, entries: &[(String, &str)]) {
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
