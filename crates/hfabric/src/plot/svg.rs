//! The low-level SVG/XML writer: text elements, polylines and escaping.

use std::fmt::Write as _;

pub(super) fn text(s: &mut String, x: f64, y: f64, content: &str, attrs: &str) {
    let _ = writeln!(
        s,
        r#"<text x="{x:.1}" y="{y:.1}" {attrs}>{}</text>"#,
        escape_xml(content)
    );
}

pub(super) fn polyline(s: &mut String, pts: &[(f64, f64)], color: &str, width: f64) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::test_util::check_well_formed;
    use crate::plot::{render_svg, LatencySeries, PlotData};

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
}
