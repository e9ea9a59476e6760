use super::*;
use crate::config::FabricConfig;
use crate::route::predictor::tests::synthetic;
use crate::route::LinkSample;

/// src → r1 → dst is nominally fast (100 ns hops), src → r2 → dst is slower (300 ns) but wide.
fn diamond() -> Router {
    let mut t = Topology::new();
    t.add_link_raw("src", "r1", 100.0, 100);
    t.add_link_raw("r1", "dst", 100.0, 100);
    t.add_link_raw("src", "r2", 400.0, 300);
    t.add_link_raw("r2", "dst", 400.0, 300);
    Router::new(t)
}

fn now() -> Instant {
    Instant::now()
}

fn via(r: &mut Router, s: Strategy) -> Result<Vec<String>, RouteError> {
    r.route("src", "dst", s, now()).map(|r| r.nodes)
}

fn path(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[test]
fn strategies_on_the_diamond() {
    let mut r = diamond();
    let fast = path(&["src", "r1", "dst"]);
    let wide = path(&["src", "r2", "dst"]);
    assert_eq!(via(&mut r, Strategy::LowestLatency), Ok(fast.clone()));
    assert_eq!(via(&mut r, Strategy::ShortestPath), Ok(fast.clone()));
    assert_eq!(via(&mut r, Strategy::HighestBandwidth), Ok(wide.clone()));
    let route = r
        .route("src", "dst", Strategy::LowestLatency, now())
        .expect("route");
    assert_eq!(route.latency_ns, 200);
    assert_eq!(route.bandwidth_gbps, 100.0);
    assert_eq!(route.cost, 2.0);
    assert_eq!(route.hops.len(), 2);
    r.topology_mut().record(
        "src",
        "r1",
        LinkSample {
            utilisation: 0.9,
            ..LinkSample::default()
        },
    );
    assert_eq!(via(&mut r, Strategy::LoadBalanced), Ok(wide));
    assert_eq!(
        via(&mut r, Strategy::LowestLatency),
        Ok(fast),
        "cached, measurement ignored"
    );
}

#[test]
fn failures_and_errors() {
    let mut r = diamond();
    r.topology_mut().set_node_up("r1", false);
    assert_eq!(
        via(&mut r, Strategy::LowestLatency),
        Ok(path(&["src", "r2", "dst"]))
    );
    r.topology_mut().set_link_up("r2", "dst", false);
    assert!(matches!(
        via(&mut r, Strategy::LowestLatency),
        Err(RouteError::NoRoute { .. })
    ));
    assert_eq!(
        r.route("src", "nowhere", Strategy::LowestLatency, now()),
        Err(RouteError::UnknownNode("nowhere".into()))
    );
    r.topology_mut().set_node_up("r1", true);
    assert_eq!(r.next_hop("src", "dst", now()), Ok("r1".to_string()));
    assert_eq!(r.next_hop("src", "src", now()), Ok("src".to_string()));
    r.topology_mut().remove_node("r1");
    assert!(matches!(
        via(&mut r, Strategy::ShortestPath),
        Err(RouteError::NoRoute { .. })
    ));
    assert!(matches!(
        r.next_hop("src", "r1", now()),
        Err(RouteError::UnknownNode(_))
    ));
}

#[test]
fn cache_expires_and_follows_topology_changes() {
    let mut r = diamond();
    r.set_cache_ttl(Duration::from_secs(5));
    let t0 = now();
    let _ = r.route("src", "dst", Strategy::LoadBalanced, t0);
    assert_eq!(r.cached_routes(), 1);
    r.topology_mut().record(
        "src",
        "r1",
        LinkSample {
            utilisation: 0.95,
            ..LinkSample::default()
        },
    );
    let cached = r.route(
        "src",
        "dst",
        Strategy::LoadBalanced,
        t0 + Duration::from_secs(1),
    );
    assert_eq!(cached.map(|r| r.nodes), Ok(path(&["src", "r1", "dst"])));
    let fresh = r.route(
        "src",
        "dst",
        Strategy::LoadBalanced,
        t0 + Duration::from_secs(6),
    );
    assert_eq!(fresh.map(|r| r.nodes), Ok(path(&["src", "r2", "dst"])));
    r.topology_mut().set_link_up("src", "r2", false);
    let after = r.route(
        "src",
        "dst",
        Strategy::LoadBalanced,
        t0 + Duration::from_secs(7),
    );
    assert_eq!(
        after.map(|r| r.nodes),
        Ok(path(&["src", "r1", "dst"])),
        "invalidated"
    );
}

#[test]
fn disjoint_paths_best_first() {
    let mut r = diamond();
    let routes = r.disjoint_routes("src", "dst", 4, Strategy::LowestLatency);
    let nodes: Vec<Vec<String>> = routes.into_iter().map(|r| r.nodes).collect();
    assert_eq!(
        nodes,
        vec![path(&["src", "r1", "dst"]), path(&["src", "r2", "dst"])]
    );
    r.topology_mut().add_link_raw("src", "dst", 10.0, 5_000);
    assert_eq!(
        r.disjoint_routes("src", "dst", 9, Strategy::ShortestPath)
            .len(),
        3
    );
    assert!(r
        .disjoint_routes("src", "zz", 2, Strategy::ShortestPath)
        .is_empty());
}

/// The nominally fastest link is congested: its real latency is far above its figure. A
/// predictor trained on completed transfers steers around it; lowest_latency does not.
#[test]
fn predictive_beats_lowest_latency_on_a_congested_link() {
    let mut r = diamond();
    r.topology_mut().record(
        "src",
        "r1",
        LinkSample {
            utilisation: 0.95,
            ..LinkSample::default()
        },
    );
    assert_eq!(
        via(&mut r, Strategy::Predictive),
        Ok(path(&["src", "r1", "dst"])),
        "untrained"
    );
    r.invalidate();
    for s in synthetic(400, 11) {
        r.train(s);
    }
    let pred = r
        .route("src", "dst", Strategy::Predictive, now())
        .expect("route");
    let low = r
        .route("src", "dst", Strategy::LowestLatency, now())
        .expect("route");
    assert_eq!(pred.nodes, path(&["src", "r2", "dst"]));
    assert_eq!(low.nodes, path(&["src", "r1", "dst"]));
    // The congested hop alone is expected at ~100·(1 + 2·19) ns; the chosen route at ~600 ns.
    let expected = pred.predicted_latency_ns.unwrap_or(f64::MAX);
    assert!((expected - 600.0).abs() < 150.0, "predicted {expected}");
    let truth = |lat: f64, u: f64| lat * (1.0 + 2.0 * u / (1.0 - u));
    assert!(
        truth(100.0, 0.95) + 100.0 > expected,
        "lowest_latency's route is really slower"
    );
}

fn quantum() -> Router {
    let mut t = Topology::new();
    t.add_node_id("qa", Some("q"));
    t.add_node_id("qb", Some("q"));
    t.add_node_id("mid", Some("q"));
    t.set_coherence_us("qa", Some(100.0));
    t.set_coherence_us("qb", Some(100.0));
    t.add_link_raw("qa", "qb", 10.0, 10);
    t.set_link_fidelity("qa", "qb", 0.85);
    t.add_link_raw("qa", "mid", 10.0, 1_000);
    t.add_link_raw("mid", "qb", 10.0, 1_000);
    t.set_link_fidelity("qa", "mid", 0.99);
    t.set_link_fidelity("mid", "qb", 0.99);
    Router::new(t)
}

#[test]
fn quantum_maximises_fidelity_and_refuses_below_threshold() {
    let mut r = quantum();
    let q = r
        .route("qa", "qb", Strategy::QuantumOptimized, now())
        .expect("route");
    assert_eq!(q.nodes, path(&["qa", "mid", "qb"]));
    // 0.99² × exp(-2000 ns × 2 / 100 µs)
    let want = 0.99f64.powi(2) * (-2_000.0 * 2.0 / 100_000.0f64).exp();
    assert!((q.fidelity.unwrap_or(0.0) - want).abs() < 1e-9);
    assert_eq!(
        r.route("qa", "qb", Strategy::ShortestPath, now())
            .map(|r| r.nodes.len()),
        Ok(2)
    );
    r.set_fidelity_threshold(0.99);
    match r.route("qa", "qb", Strategy::QuantumOptimized, now()) {
        Err(RouteError::FidelityTooLow { best, threshold }) => {
            assert!((best - want).abs() < 1e-9);
            assert_eq!(threshold, 0.99);
        }
        other => panic!("expected FidelityTooLow, got {other:?}"),
    }
}

fn zones(text_zone_isolation: &str) -> Router {
    let mut t = Topology::new();
    for (n, z) in [
        ("a1", "a"),
        ("a2", "a"),
        ("b1", "b"),
        ("sw", "core"),
        ("h", "hz"),
    ] {
        t.add_node_id(n, Some(z));
    }
    t.set_zone("a", Isolation::Hard);
    t.set_zone("hz", Isolation::Hard);
    t.set_zone("b", text_zone_isolation.parse().unwrap_or(Isolation::None));
    t.add_link_raw("a1", "sw", 10.0, 100);
    t.add_link_raw("a2", "sw", 10.0, 100);
    t.add_link_raw("a1", "a2", 10.0, 900);
    t.add_link_raw("b1", "sw", 10.0, 100);
    t.add_link_raw("b1", "h", 10.0, 1);
    t.add_link_raw("h", "sw", 10.0, 1);
    Router::new(t)
}

#[test]
fn hard_zones_refuse_crossing_and_transit() {
    let mut r = zones("soft");
    let got = r.route("a1", "b1", Strategy::LowestLatency, now());
    match got {
        Err(RouteError::Isolated {
            from_zone,
            to_zone,
            reason,
        }) => {
            assert_eq!((from_zone.as_str(), to_zone.as_str()), ("a", "b"));
            assert!(reason.contains("hard"), "{reason}");
        }
        other => panic!("expected Isolated, got {other:?}"),
    }
    // Inside zone a the route must stay in a: the direct (slower) link, not via sw.
    let inside = r
        .route("a1", "a2", Strategy::LowestLatency, now())
        .map(|r| r.nodes);
    assert_eq!(inside, Ok(path(&["a1", "a2"])));
    // sw → b1 may not transit hard zone hz even though it is faster.
    let around = r
        .route("sw", "b1", Strategy::LowestLatency, now())
        .map(|r| r.nodes);
    assert_eq!(around, Ok(path(&["sw", "b1"])));
    assert!(r.route("sw", "a1", Strategy::ShortestPath, now()).is_err());
}

#[test]
fn medium_zones_cost_more() {
    let mut t = Topology::new();
    t.add_node_id("m", Some("med"));
    t.set_zone("med", Isolation::Medium);
    t.add_link_raw("x", "m", 20.0, 10);
    t.add_link_raw("m", "y", 20.0, 10);
    t.add_link_raw("x", "z", 10.0, 500);
    t.add_link_raw("z", "y", 10.0, 500);
    let mut r = Router::new(t);
    let route = r
        .route("x", "y", Strategy::LowestLatency, now())
        .expect("route");
    assert_eq!(route.nodes, path(&["x", "z", "y"]));
    let hb = r
        .route("x", "y", Strategy::HighestBandwidth, now())
        .expect("route");
    assert_eq!(hb.nodes, path(&["x", "m", "y"]), "wider; not penalised");
    assert_eq!(hb.cost, 2.0 * (1.0 + MEDIUM_CROSSING_COST));
}

#[test]
fn lab_file_routes() {
    let text = include_str!("../../../../examples/lab.toml");
    let cfg = FabricConfig::from_toml_str(text, "lab.toml").expect("lab parses");
    let mut r = Router::new(Topology::from_config(&cfg));
    let got = r
        .route("gpu-01", "gpu-02", Strategy::LowestLatency, now())
        .map(|r| r.nodes);
    assert_eq!(got, Ok(path(&["gpu-01", "gpu-02"])));
    let s = r
        .route("gpu-02", "storage-01", Strategy::ShortestPath, now())
        .map(|r| r.nodes);
    assert_eq!(s, Ok(path(&["gpu-02", "switch-1", "storage-01"])));
    let q = r.route("gpu-01", "qpu-01", Strategy::LowestLatency, now());
    assert!(matches!(q, Err(RouteError::Isolated { .. })));
}

#[test]
fn fidelity_field_is_checked() {
    let base = "[fabric]\nname = \"f\"\n[[nodes]]\nid = \"a\"\nhardware = \"cpu-cluster\"\n\
                [[nodes]]\nid = \"b\"\nhardware = \"cpu-cluster\"\n[[links]]\n\
                between = [\"a\", \"b\"]\nbandwidth_gbps = 1\nlatency_ns = 1\n";
    let ok = FabricConfig::from_toml_str(&format!("{base}fidelity = 0.95\n"), "f").expect("ok");
    assert_eq!(ok.links[0].fidelity, Some(0.95));
    let back = FabricConfig::from_toml_str(&ok.to_toml_string(), "f").expect("round trip");
    assert_eq!(back.links[0].fidelity, Some(0.95));
    for bad in ["0", "1.5", "-0.1"] {
        let e = FabricConfig::from_toml_str(&format!("{base}fidelity = {bad}\n"), "f");
        let msg = e.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("links[0].fidelity"), "{msg}");
    }
}
