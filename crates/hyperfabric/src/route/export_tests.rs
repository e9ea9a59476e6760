use super::super::formats::{from_graphml, to_dot, to_gml, to_graphml, to_svg};
use super::*;

fn lab() -> TopologyDoc {
    let text = include_str!("../../../../examples/lab.toml");
    let cfg = FabricConfig::from_toml_str(text, "lab.toml").expect("lab parses");
    TopologyDoc::from_config(&cfg)
}

#[test]
fn json_and_graphml_round_trip() {
    let doc = lab();
    assert_eq!(TopologyDoc::from_json(&doc.to_json()), Ok(doc.clone()));
    let mut back = from_graphml(&to_graphml(&doc)).expect("graphml reads");
    for n in &mut back.nodes {
        n.listen = doc
            .nodes
            .iter()
            .find(|m| m.id == n.id)
            .and_then(|m| m.listen.clone());
    }
    assert_eq!(back.nodes, doc.nodes);
    assert_eq!(back.links, doc.links);
    let t = doc.to_topology();
    assert_eq!(
        (t.node_count(), t.link_count()),
        (doc.nodes.len(), doc.links.len())
    );
}

#[test]
fn import_refuses_bad_documents() {
    assert!(TopologyDoc::from_json("{").is_err());
    let bad = r#"{"nodes":[{"id":"a"}],"links":[{"between":["a","b"],"bandwidth_gbps":1,"latency_ns":1}]}"#;
    assert!(TopologyDoc::from_json(bad)
        .err()
        .unwrap_or_default()
        .contains("unknown node"));
    assert!(from_graphml("<xml/>").is_err());
}

#[test]
fn text_formats_are_well_formed() {
    let doc = lab();
    let dot = to_dot(&doc);
    assert!(dot.starts_with("graph \"lab\" {") && dot.trim_end().ends_with('}'));
    assert_eq!(dot.matches(" -- ").count(), doc.links.len());
    let gml = to_gml(&doc);
    assert_eq!(gml.matches('[').count(), gml.matches(']').count());
    assert_eq!(gml.matches("edge [").count(), doc.links.len());
    let svg = to_svg(&doc);
    assert_eq!(svg.matches("<circle").count(), doc.nodes.len());
    assert!(svg.trim_end().ends_with("</svg>"));
    let table = doc.to_table();
    assert!(table.contains("switch-1") && table.contains("7 nodes, 7 links"));
    let tree = doc.to_tree(None).expect("tree");
    assert!(tree.starts_with("gpu-01\n"));
    assert!(tree.contains("└─ switch-1"));
    assert_eq!(tree.lines().count(), doc.nodes.len());
    assert!(doc.to_tree(Some("nope")).is_err());
}
