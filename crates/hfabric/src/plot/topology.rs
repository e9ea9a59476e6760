//! A fabric's topology drawn in layers: switches on top, then each node by its hop distance
//! from them, nodes of one zone side by side inside a coloured group, every link labelled
//! with its bandwidth and latency, and a legend. Pure string building (no IO).

use super::svg::escape_xml as xml;
use hyperfabric::route::export::{DocLink, TopologyDoc};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;

const BOX_W: f64 = 132.0;
const BOX_H: f64 = 44.0;
const SLOT_W: f64 = 168.0;
const ROW_H: f64 = 190.0;
const MARGIN: f64 = 40.0;
const TOP: f64 = 70.0;
const LEGEND_W: f64 = 230.0;
/// Fill colours of zone groups, in the order zones are met (then repeated).
const ZONE_FILLS: [&str; 6] = [
    "#dbeafe", "#fce7f3", "#dcfce7", "#fef3c7", "#ede9fe", "#cffafe",
];
const ZONE_STROKES: [&str; 6] = [
    "#3b82f6", "#db2777", "#16a34a", "#d97706", "#7c3aed", "#0891b2",
];

/// Where every node sits: its layer (row) and its position in the row.
struct Layout<'a> {
    rows: Vec<Vec<&'a str>>,
    at: HashMap<&'a str, (f64, f64)>,
    zone_of: HashMap<&'a str, Option<&'a str>>,
    zones: Vec<&'a str>,
    width: f64,
    height: f64,
}

fn is_switch(hardware: Option<&str>) -> bool {
    hardware.is_some_and(|h| h.contains("switch"))
}

/// Layers by hop distance from the switches (or, with none, from the best-linked node).
fn layers(doc: &TopologyDoc) -> HashMap<&str, usize> {
    let mut adj: HashMap<&str, Vec<&str>> = HashMap::new();
    for l in &doc.links {
        let [a, b] = &l.between;
        adj.entry(a).or_default().push(b);
        adj.entry(b).or_default().push(a);
    }
    let mut roots: Vec<&str> = (doc.nodes.iter())
        .filter(|n| is_switch(n.hardware.as_deref()))
        .map(|n| n.id.as_str())
        .collect();
    if roots.is_empty() {
        let best = (doc.nodes.iter()).max_by_key(|n| adj.get(n.id.as_str()).map_or(0, Vec::len));
        roots.extend(best.map(|n| n.id.as_str()));
    }
    let mut depth: HashMap<&str, usize> = roots.iter().map(|r| (*r, 0)).collect();
    let mut queue: VecDeque<&str> = roots.into_iter().collect();
    while let Some(n) = queue.pop_front() {
        let d = depth[n];
        for m in adj.get(n).into_iter().flatten() {
            if !depth.contains_key(m) {
                depth.insert(m, d + 1);
                queue.push_back(m);
            }
        }
    }
    let deepest = depth.values().copied().max().unwrap_or(0);
    for n in &doc.nodes {
        // Nodes no link reaches get a row of their own at the bottom.
        depth.entry(n.id.as_str()).or_insert(deepest + 1);
    }
    depth
}

fn layout(doc: &TopologyDoc) -> Layout<'_> {
    let depth = layers(doc);
    let mut zones: Vec<&str> = doc.zones.iter().map(|z| z.id.as_str()).collect();
    for n in &doc.nodes {
        if let Some(z) = n.zone.as_deref() {
            if !zones.contains(&z) {
                zones.push(z);
            }
        }
    }
    let zone_rank = |z: Option<&str>| z.and_then(|z| zones.iter().position(|x| *x == z));
    let mut by_row: BTreeMap<usize, Vec<(Option<usize>, &str)>> = BTreeMap::new();
    for n in &doc.nodes {
        let d = depth[n.id.as_str()];
        by_row
            .entry(d)
            .or_default()
            .push((zone_rank(n.zone.as_deref()), n.id.as_str()));
    }
    let rows: Vec<Vec<&str>> = by_row
        .into_values()
        .map(|mut r| {
            // Zoned nodes first, zone by zone; nodes without a zone last.
            r.sort_by_key(|(z, id)| (z.is_none(), *z, *id));
            r.into_iter().map(|(_, id)| id).collect()
        })
        .collect();
    let widest = rows.iter().map(Vec::len).max().unwrap_or(1) as f64;
    let drawing_w = widest * SLOT_W;
    let mut at = HashMap::new();
    for (r, row) in rows.iter().enumerate() {
        let x0 = MARGIN + (drawing_w - row.len() as f64 * SLOT_W) / 2.0;
        for (i, id) in row.iter().enumerate() {
            let x = x0 + (i as f64 + 0.5) * SLOT_W;
            at.insert(*id, (x, TOP + 30.0 + r as f64 * ROW_H));
        }
    }
    let zone_of = (doc.nodes.iter())
        .map(|n| (n.id.as_str(), n.zone.as_deref()))
        .collect();
    Layout {
        width: MARGIN * 2.0 + drawing_w + LEGEND_W,
        // The last row's boxes, room for arcs under them, a margin.
        height: TOP + 30.0 + (rows.len().max(1) - 1) as f64 * ROW_H + BOX_H / 2.0 + 100.0,
        rows,
        at,
        zone_of,
        zones,
    }
}

/// "400 Gbit/s · 100 ns"; latencies of 1 µs and more in µs.
fn link_label(l: &DocLink) -> String {
    let lat = if l.latency_ns >= 1000 {
        format!("{:.1} µs", l.latency_ns as f64 / 1000.0)
    } else {
        format!("{} ns", l.latency_ns)
    };
    format!("{} Gbit/s · {lat}", l.bandwidth_gbps)
}

/// Line width grows with the logarithm of the bandwidth: 10 Gbit/s thin, 1.6 Tbit/s thick.
fn stroke_width(gbps: f64) -> f64 {
    (1.0 + (gbps.max(1.0) / 10.0).log2() * 0.6).clamp(1.0, 6.0)
}

fn zone_colour(l: &Layout<'_>, z: &str) -> (&'static str, &'static str) {
    let i = l.zones.iter().position(|x| *x == z).unwrap_or(0) % ZONE_FILLS.len();
    (ZONE_FILLS[i], ZONE_STROKES[i])
}

/// One rounded group box around each run of same-zone nodes in a row.
fn zone_groups(l: &Layout<'_>, out: &mut String) {
    for row in &l.rows {
        let mut i = 0;
        while i < row.len() {
            let Some(z) = l.zone_of[row[i]] else {
                i += 1;
                continue;
            };
            let mut j = i;
            while j + 1 < row.len() && l.zone_of[row[j + 1]] == Some(z) {
                j += 1;
            }
            let (x1, y) = l.at[row[i]];
            let (x2, _) = l.at[row[j]];
            let (fill, stroke) = zone_colour(l, z);
            let (gx, gy) = (x1 - SLOT_W / 2.0 + 8.0, y - BOX_H / 2.0 - 26.0);
            let gw = x2 - x1 + SLOT_W - 16.0;
            let _ = writeln!(
                out,
                "  <rect x=\"{gx:.1}\" y=\"{gy:.1}\" width=\"{gw:.1}\" height=\"{:.1}\" rx=\"12\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-dasharray=\"5 3\"/>\n  <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" font-style=\"italic\" fill=\"{stroke}\">zone {}</text>",
                BOX_H + 40.0,
                gx + 8.0,
                gy + 16.0,
                xml(z)
            );
            i = j + 1;
        }
    }
}

/// For links between rows: 0 or 1 by the order of their lower ends from left to right, so
/// neighbouring labels of a fan sit at different heights.
fn label_heights(doc: &TopologyDoc, l: &Layout<'_>) -> HashMap<usize, usize> {
    let mut slanted: Vec<(i64, i64, usize)> = Vec::new();
    for (k, link) in doc.links.iter().enumerate() {
        let (Some(a), Some(b)) = (
            l.at.get(link.between[0].as_str()),
            l.at.get(link.between[1].as_str()),
        ) else {
            continue;
        };
        if (a.1 - b.1).abs() >= 1.0 {
            let (upper, lower) = if a.1 < b.1 { (a, b) } else { (b, a) };
            slanted.push((upper.1 as i64, lower.0 as i64, k));
        }
    }
    slanted.sort_unstable();
    (slanted.iter().enumerate())
        .map(|(i, (_, _, k))| (*k, i % 2))
        .collect()
}

fn links(doc: &TopologyDoc, l: &Layout<'_>, out: &mut String) {
    let mut labels = String::new();
    let parity = label_heights(doc, l);
    for (k, link) in doc.links.iter().enumerate() {
        let (Some(&(x1, y1)), Some(&(x2, y2))) = (
            l.at.get(link.between[0].as_str()),
            l.at.get(link.between[1].as_str()),
        ) else {
            continue;
        };
        let width = stroke_width(link.bandwidth_gbps);
        let (lx, ly) = if (y1 - y2).abs() < 1.0 {
            // Same row: an arc under the boxes, labelled at its lowest point.
            let (yb, mx) = (y1 + BOX_H / 2.0, (x1 + x2) / 2.0);
            let _ = writeln!(
                out,
                "  <path d=\"M {x1:.1} {yb:.1} Q {mx:.1} {:.1} {x2:.1} {yb:.1}\" fill=\"none\" stroke=\"#6b7280\" stroke-width=\"{width:.1}\"/>",
                yb + 70.0
            );
            (mx, yb + 46.0)
        } else {
            let _ = writeln!(
                out,
                "  <line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" stroke=\"#6b7280\" stroke-width=\"{width:.1}\"/>"
            );
            // Labels of a fan alternate between two heights so neighbours do not collide.
            let ((ux, uy), (dx, dy)) = if y2 >= y1 {
                ((x1, y1), (x2, y2))
            } else {
                ((x2, y2), (x1, y1))
            };
            let t = if parity.get(&k) == Some(&1) {
                0.74
            } else {
                0.48
            };
            (ux + (dx - ux) * t, uy + (dy - uy) * t)
        };
        let _ = writeln!(
            labels,
            "  <text x=\"{lx:.1}\" y=\"{ly:.1}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#111827\" stroke=\"white\" stroke-width=\"4\" paint-order=\"stroke\">{}</text>",
            xml(&link_label(link))
        );
    }
    out.push_str(&labels);
}

fn nodes(doc: &TopologyDoc, l: &Layout<'_>, out: &mut String) {
    for n in &doc.nodes {
        let (x, y) = l.at[n.id.as_str()];
        let switch = is_switch(n.hardware.as_deref());
        let (fill, stroke, ink) = if switch {
            ("#1f2937", "#111827", "white")
        } else {
            let s = n.zone.as_deref().map_or("#6b7280", |z| zone_colour(l, z).1);
            ("white", s, "#111827")
        };
        let rx = if switch { 4 } else { 10 };
        let _ = writeln!(
            out,
            "  <rect x=\"{:.1}\" y=\"{:.1}\" width=\"{BOX_W}\" height=\"{BOX_H}\" rx=\"{rx}\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"2\"/>\n  <text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"13\" font-weight=\"bold\" text-anchor=\"middle\" fill=\"{ink}\">{}</text>\n  <text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\" fill=\"{ink}\">{}</text>",
            x - BOX_W / 2.0,
            y - BOX_H / 2.0,
            y - 3.0,
            xml(&n.id),
            y + 13.0,
            xml(n.hardware.as_deref().unwrap_or("?"))
        );
    }
}

/// What a legend row shows left of its text.
enum Swatch {
    Box(&'static str, &'static str, u8),
    Line(f64),
    Blank,
}

fn legend(l: &Layout<'_>, out: &mut String) {
    let x = l.width - LEGEND_W + 10.0;
    let _ = writeln!(
        out,
        "  <text x=\"{x:.1}\" y=\"{TOP:.1}\" font-size=\"13\" font-weight=\"bold\" fill=\"#111827\">Legend</text>"
    );
    let mut rows = vec![
        (Swatch::Box("#1f2937", "#111827", 2), "switch".to_owned()),
        (
            Swatch::Box("white", "#6b7280", 5),
            "host (hardware below its id)".to_owned(),
        ),
    ];
    for z in &l.zones {
        let (fill, stroke) = zone_colour(l, z);
        rows.push((Swatch::Box(fill, stroke, 5), format!("zone {z}")));
    }
    rows.push((Swatch::Line(stroke_width(10.0)), "10 Gbit/s link".into()));
    rows.push((Swatch::Line(stroke_width(400.0)), "400 Gbit/s link".into()));
    rows.push((Swatch::Blank, "label: bandwidth · one-way latency".into()));
    rows.push((Swatch::Blank, "rows: hops from the switches".into()));
    for (i, (swatch, text)) in rows.iter().enumerate() {
        let y = TOP + 22.0 + i as f64 * 24.0;
        let _ = match swatch {
            Swatch::Box(fill, stroke, rx) => writeln!(
                out,
                "  <rect x=\"{x:.1}\" y=\"{:.1}\" width=\"30\" height=\"16\" rx=\"{rx}\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"2\"/>",
                y - 8.0
            ),
            Swatch::Line(w) => writeln!(
                out,
                "  <line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#6b7280\" stroke-width=\"{w:.1}\"/>",
                x + 30.0
            ),
            Swatch::Blank => Ok(()),
        };
        let tx = if matches!(swatch, Swatch::Blank) {
            x
        } else {
            x + 40.0
        };
        let _ = writeln!(
            out,
            "  <text x=\"{tx:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#111827\">{}</text>",
            y + 4.0,
            xml(text)
        );
    }
}

/// The whole picture as a standalone SVG document.
pub fn to_svg(doc: &TopologyDoc) -> String {
    let l = layout(doc);
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" viewBox=\"0 0 {w:.0} {h:.0}\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n  <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n  <text x=\"{MARGIN}\" y=\"34\" font-size=\"18\" font-weight=\"bold\" fill=\"#111827\">fabric {}: {} nodes, {} links</text>\n",
        xml(&doc.name),
        doc.nodes.len(),
        doc.links.len(),
        w = l.width,
        h = l.height
    );
    zone_groups(&l, &mut out);
    links(doc, &l, &mut out);
    nodes(doc, &l, &mut out);
    legend(&l, &mut out);
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyperfabric::config::FabricConfig;

    fn lab() -> TopologyDoc {
        let text = include_str!("../../../../examples/lab.toml");
        TopologyDoc::from_config(&FabricConfig::from_toml_str(text, "lab.toml").unwrap())
    }

    #[test]
    fn switches_sit_above_their_hosts_and_zones_are_grouped() {
        let doc = lab();
        let l = layout(&doc);
        assert_eq!(l.rows[0], vec!["switch-1"]);
        let (_, ys) = l.at["switch-1"];
        for host in ["gpu-01", "qpu-01", "storage-01", "neuro-01"] {
            assert!(l.at[host].1 > ys, "{host} should sit below the switch");
        }
        // The compute zone's nodes are contiguous in their row.
        let row = &l.rows[1];
        let compute: Vec<usize> = (0..row.len())
            .filter(|i| l.zone_of[row[*i]] == Some("compute"))
            .collect();
        assert!(compute.windows(2).all(|w| w[1] == w[0] + 1), "{row:?}");
    }

    #[test]
    fn every_link_is_labelled_and_the_legend_names_every_zone() {
        let svg = to_svg(&lab());
        assert!(svg.contains("400 Gbit/s · 100 ns"), "{svg}");
        assert!(svg.contains("10 Gbit/s · 5.0 µs"));
        assert!(svg.contains("Legend"));
        assert!(svg.contains("zone compute") && svg.contains("zone quantum"));
        // Every link is a line or (within a row) an arc, plus two legend lines.
        let drawn = svg.matches("<line").count() + svg.matches("<path").count();
        assert_eq!(drawn, lab().links.len() + 2);
        assert!(super::super::raster::svg_to_png(&svg, 1.0).is_ok());
    }
}
