//! Test helpers shared by the plot tests: an XML well-formedness checker and example data.

use super::{LatencySeries, PlotData, ThroughputPoint};

/// Minimal XML well-formedness check: balanced, properly nested tags, quoted attributes,
/// known entities only, no stray `<` or `&` in text, exactly one root element.
pub(super) fn check_well_formed(xml: &str) -> Result<(), String> {
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
        check_text(&rest[..lt], stack.is_empty())?;
        rest = &rest[lt..];
        if let Some(r) = rest.strip_prefix("<!--") {
            rest = &r[r.find("-->").ok_or("unterminated comment")? + 3..];
            continue;
        }
        let end = tag_end(rest)?;
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
        check_tag_name(name)?;
        check_attributes(name, &body[name_end..])?;
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

/// Character data between tags.
fn check_text(txt: &str, outside_root: bool) -> Result<(), String> {
    if outside_root && !txt.trim().is_empty() {
        return Err(format!("text outside the root: {txt:?}"));
    }
    if txt.contains('>') {
        // Legal in XML, but our escaper never leaves one; catch regressions.
        return Err(format!("unescaped '>' in text {txt:?}"));
    }
    check_entities(txt)
}

fn check_tag_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_alphanumeric() || "-_:.".contains(c))
    {
        return Err(format!("bad tag name {name:?}"));
    }
    Ok(())
}

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

/// The index of the '>' that ends the tag `rest` starts with, skipping '>' inside quoted
/// attribute values.
fn tag_end(rest: &str) -> Result<usize, String> {
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
    end.ok_or_else(|| "unterminated tag".to_string())
}

/// Attributes of a tag: `name="value"` pairs, each name once.
fn check_attributes(name: &str, attrs: &str) -> Result<(), String> {
    let mut attrs = attrs.trim();
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
    Ok(())
}

/// Deterministic fake latencies: a log-normal-ish body with a heavy tail.
pub(super) fn fake_latencies(n: usize, base_ns: f64, seed: u64) -> Vec<u64> {
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

pub(super) fn example<'a>(a: &'a [u64], b: &'a [u64]) -> PlotData<'a> {
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
