use super::*;
use crate::route::Strategy;

fn fabric(links: &[(&str, &str)]) -> FabricConfig {
    let mut text = "[fabric]\nname = \"d\"\n".to_string();
    let mut ids: Vec<&str> = links.iter().flat_map(|(a, b)| [*a, *b]).collect();
    ids.sort();
    ids.dedup();
    for id in ids {
        text += &format!("[[nodes]]\nid = \"{id}\"\nhardware = \"cpu-cluster\"\n");
    }
    for (a, b) in links {
        text += &format!(
            "[[links]]\nbetween = [\"{a}\", \"{b}\"]\nbandwidth_gbps = 100\nlatency_ns = 1000\n"
        );
    }
    FabricConfig::from_toml_str(&text, "d.toml").unwrap()
}

fn series(median_us: u64, n: u64) -> Series {
    let mut s = Series::default();
    for i in 0..n {
        s.push(Ok(median_us * 1000 + i % 3));
    }
    s
}

/// Measured figures for `from -> to` where the k-th route node answers in `rtt_us[k]`.
fn measured(cfg: &FabricConfig, from: &str, to: &str, rtt_us: &[u64]) -> Measured {
    let route = Router::new(Topology::from_config(cfg))
        .route(from, to, Strategy::LowestLatency, Instant::now())
        .unwrap();
    assert_eq!(route.hops.len(), rtt_us.len(), "{:?}", route.nodes);
    let hops = rtt_us
        .iter()
        .enumerate()
        .map(|(i, us)| (series(*us, 15), route.nodes[..i + 2].to_vec()))
        .collect();
    let last = *rtt_us.last().unwrap();
    let sweep = SWEEP_SIZES
        .iter()
        .map(|&s| (s, series(last / 2, 15), series(last, 15)))
        .collect();
    Measured {
        from: from.into(),
        to: to.into(),
        route,
        sweep,
        hops,
        throughput_gbps: Vec::new(),
        socket_buffer_bytes: 64 << 20,
    }
}

fn limits() -> Limits {
    Limits {
        latency_ns: 1e6,
        loss_ratio: 0.001,
    }
}

#[test]
fn slow_hop_of_a_chain_is_the_bottleneck_with_no_detour() {
    let cfg = fabric(&[("a", "b"), ("b", "c"), ("c", "d")]);
    let m = measured(&cfg, "a", "d", &[100, 200, 20_200]);
    let r = analyse(&m, &cfg, &limits());
    assert_eq!(r.route, ["a", "b", "c", "d"]);
    assert_eq!(r.hops[2].latency_ns, Some(20_000_000));
    assert_eq!(r.hops[1].latency_ns, Some(100_000));
    assert_eq!(
        (r.hops[0].health, r.hops[2].health),
        (Health::Ok, Health::Degraded)
    );
    let b = &r.bottlenecks[0];
    assert_eq!(
        (b.kind.as_str(), b.from.as_str(), b.to.as_str()),
        ("latency", "c", "d")
    );
    let lat: Vec<_> = r
        .recommendations
        .iter()
        .filter(|x| x.category == "latency")
        .collect();
    assert_eq!(lat.len(), 1, "{:#?}", r.recommendations);
    assert!(
        lat[0].issue.contains("c -> d adds 20.00 ms"),
        "{}",
        lat[0].issue
    );
    assert!(
        lat[0].recommendation.contains("no other route"),
        "{}",
        lat[0].recommendation
    );
    assert_eq!(lat[0].priority, Urgency::High);
}

#[test]
fn slow_hop_of_a_diamond_gets_a_detour() {
    let cfg = fabric(&[("s", "r1"), ("s", "r2"), ("r1", "t"), ("r2", "t")]);
    let m = measured(&cfg, "s", "t", &[100, 5_100]);
    let relay = m.route.nodes[1].clone();
    let other = if relay == "r1" { "r2" } else { "r1" };
    let r = analyse(&m, &cfg, &limits());
    let lat = r
        .recommendations
        .iter()
        .find(|x| x.category == "latency")
        .unwrap();
    assert!(
        lat.recommendation.contains(&format!("s -> {other} -> t"))
            && lat.recommendation.contains(&format!("--via {other}=1")),
        "{}",
        lat.recommendation
    );
}

#[test]
fn bdp_above_the_socket_buffer_is_flagged_with_the_buffer_it_needs() {
    let cfg = fabric(&[("a", "b")]);
    let m = measured(&cfg, "a", "b", &[20_000]);
    let r = analyse(&m, &cfg, &limits());
    let bdp = r.bdp.clone().unwrap();
    // 100 Gbit/s × 20 ms = 250 MB.
    assert!(bdp.bytes.abs_diff(250_000_000) < 100, "{}", bdp.bytes);
    assert_eq!(bdp.buffer_bytes, 268_435_456);
    let buf = r
        .recommendations
        .iter()
        .find(|x| x.category == "buffers")
        .unwrap();
    assert!(
        buf.recommendation
            .contains("socket_buffer_bytes = 268435456"),
        "{}",
        buf.recommendation
    );
    assert_eq!(buf.priority, Urgency::High);
}

#[test]
fn a_healthy_fast_route_gets_no_latency_or_loss_advice() {
    let cfg = fabric(&[("a", "b"), ("b", "c")]);
    let m = measured(&cfg, "a", "c", &[50, 110]);
    let r = analyse(&m, &cfg, &limits());
    assert!(r.hops.iter().all(|h| h.health == Health::Ok));
    assert!(
        r.recommendations.iter().all(
            |x| !["latency", "reliability", "jitter", "buffers"].contains(&x.category.as_str())
        ),
        "{:#?}",
        r.recommendations
    );
    // 64 MiB buffers for a 1.4 MB BDP: the memory advice, derived from the figures.
    let mem = r
        .recommendations
        .iter()
        .find(|x| x.category == "memory")
        .unwrap();
    assert!(
        mem.recommendation.contains("socket_buffer_bytes = 2097152"),
        "{}",
        mem.recommendation
    );
}

#[test]
fn down_hop_and_losses_are_reported() {
    let cfg = fabric(&[("a", "b"), ("b", "c")]);
    let mut m = measured(&cfg, "a", "c", &[50, 110]);
    m.hops[0].0.push(Err(crate::error::Error::Shutdown));
    m.hops[1] = (Series::default(), Vec::new());
    m.hops[1].0.push(Err(crate::error::Error::Shutdown));
    let r = analyse(&m, &cfg, &limits());
    assert_eq!(r.hops[1].health, Health::Down);
    assert_eq!(r.hops[0].health, Health::Degraded);
    assert!(r
        .recommendations
        .iter()
        .any(|x| x.category == "reachability" && x.issue.contains("b -> c")));
    assert!(r
        .recommendations
        .iter()
        .any(|x| x.category == "reliability" && x.issue.contains("6.2%")));
    assert!(r.bdp.is_none(), "no round trip to the destination, no BDP");
}

#[test]
fn throughput_far_below_the_route_names_the_narrowest_hop() {
    let cfg = fabric(&[("a", "b"), ("b", "c")]);
    let mut m = measured(&cfg, "a", "c", &[50, 110]);
    m.throughput_gbps = vec![Some(40.0), Some(5.0)];
    let r = analyse(&m, &cfg, &limits());
    assert_eq!(r.throughput_gbps, Some(5.0));
    assert_eq!(r.hops[1].utilisation, Some(0.05));
    let b = r
        .bottlenecks
        .iter()
        .find(|b| b.kind == "bandwidth")
        .unwrap();
    assert_eq!((b.from.as_str(), b.to.as_str()), ("b", "c"));
    let bw = r
        .recommendations
        .iter()
        .find(|x| x.category == "bandwidth")
        .unwrap();
    assert!(
        bw.issue.contains("5.00 Gbit/s, 5%") && bw.recommendation.contains("b -> c"),
        "{bw:?}"
    );
}

#[test]
fn an_equal_shortfall_on_identical_relays_names_no_detour() {
    // Two identical relays; both hops of the route taken reach about the same share of their
    // configured 100 Gbit/s (noise apart): no relay is better, so none is recommended.
    let cfg = fabric(&[("s", "r1"), ("s", "r2"), ("r1", "t"), ("r2", "t")]);
    let mut m = measured(&cfg, "s", "t", &[50, 110]);
    m.throughput_gbps = vec![Some(21.0), Some(19.5)];
    let r = analyse(&m, &cfg, &limits());
    let bw = r
        .recommendations
        .iter()
        .find(|x| x.category == "bandwidth")
        .unwrap();
    assert!(
        bw.recommendation.contains("no hop stands out") && !bw.recommendation.contains("--via"),
        "{bw:?}"
    );
    assert!(
        r.recommendations
            .iter()
            .all(|x| !x.recommendation.contains("--via")),
        "{:#?}",
        r.recommendations
    );
}
