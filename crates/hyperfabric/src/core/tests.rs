//! Unit tests of the core's decisions, frame by frame (the mesh runs are in
//! `tests/node_sim.rs`).

use super::*;
use crate::route::Topology;
use crate::types::{DataType, Priority};
use crate::wire::{flags, node_key, FrameKind, Header, Refusal, RefusalCode};

const KIND: (DataType, Priority) = (DataType::Custom, Priority::Normal);

/// a - b - c, and the node `name` of it with its links.
fn node(name: &str, limits: Limits) -> (Node, Vec<LinkId>) {
    let mut t = Topology::new();
    for n in ["a", "b", "c"] {
        t.add_node_id(n, None);
    }
    t.add_link_raw("a", "b", 100.0, 1000);
    t.add_link_raw("b", "c", 100.0, 1000);
    let mut cfg = CoreConfig::new(name, 1);
    cfg.limits = limits;
    cfg.send.chunk_len = 4;
    let mut n = Node::new(cfg, t);
    let peers: &[&str] = match name {
        "b" => &["a", "c"],
        "a" => &["b"],
        _ => &["b"],
    };
    let links = peers.iter().map(|p| n.add_link(p).unwrap()).collect();
    (n, links)
}

fn data(src: &str, dst: u64, id: u64, offset: u64, total: u64, payload: &[u8]) -> Header {
    let mut h = Header::new(FrameKind::Data);
    (h.src, h.dst, h.transfer_id) = (node_key(src), dst, id);
    (h.offset, h.aux, h.payload_len) = (offset, total, payload.len() as u32);
    h
}

/// `h` as node `b` relays it (one hop more).
fn via_b(mut h: Header) -> Header {
    h.hops += 1;
    h
}

fn drain(n: &mut Node) -> Vec<Transmit> {
    std::iter::from_fn(|| n.poll_transmit()).collect()
}

fn refusal_of(t: &Transmit) -> RefusalCode {
    assert_eq!(t.header.kind, FrameKind::Nack);
    assert!(t.header.has(flags::FATAL));
    Refusal::from_nack(t.header.aux, &t.payload).code
}

#[test]
fn a_relay_forwards_with_one_more_hop_and_refuses_what_it_cannot() {
    let (mut b, links) = node("b", Limits::default());
    let h = data("a", node_key("c"), 7, 0, 4, b"abcd");
    b.handle_frame(Time::ZERO, links[0], &h, b"abcd");
    let out = drain(&mut b);
    assert_eq!(
        (out.len(), out[0].link, out[0].header.hops),
        (1, links[1], 1)
    );
    assert_eq!(out[0].payload, b"abcd");

    let unknown = data("a", node_key("zz"), 8, 0, 4, b"abcd");
    b.handle_frame(Time::ZERO, links[0], &unknown, b"abcd");
    let out = drain(&mut b);
    assert_eq!(refusal_of(&out[0]), RefusalCode::UnknownDestination);
    assert_eq!((out[0].link, out[0].header.dst), (links[0], node_key("a")));
    // A relay's refusal names the relay, made here: hops 0 (docs/wire.md, "Refusal codes").
    assert_eq!((out[0].header.src, out[0].header.hops), (node_key("b"), 0));

    // From c, come round through a (relayed: a frame straight from its source has hops 0).
    let mut looped = data("c", node_key("a"), 9, 0, 4, b"abcd");
    looped.hops = Limits::default().hops_max;
    b.handle_frame(Time::ZERO, links[0], &looped, b"abcd");
    assert_eq!(refusal_of(&drain(&mut b)[0]), RefusalCode::RoutingLoop);

    b.link_down(Time::ZERO, links[1]);
    b.handle_frame(Time::ZERO, links[0], &h, b"abcd");
    assert_eq!(
        refusal_of(&drain(&mut b)[0]),
        RefusalCode::NextHopUnreachable
    );
}

#[test]
fn a_transfer_is_delivered_once_and_duplicates_get_the_final_ack() {
    let (mut c, links) = node("c", Limits::default());
    let h = via_b(data("a", node_key("c"), 3, 0, 4, b"wxyz"));
    for _ in 0..3 {
        c.handle_frame(Time::ZERO, links[0], &h, b"wxyz");
        let acks = drain(&mut c);
        assert_eq!(acks.len(), 1);
        assert!(acks[0].header.has(flags::FINAL));
        assert_eq!(acks[0].header.dst, node_key("a"));
    }
    let events: Vec<Event> = std::iter::from_fn(|| c.poll_event()).collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        matches!(&events[0], Event::Delivered { data, src, .. } if data == b"wxyz" && src == "a")
    );
}

#[test]
fn a_frame_whose_source_cannot_be_true_on_its_link_is_dropped() {
    let (mut c, links) = node("c", Limits::default());
    // From a, but straight off the link to b: b would have to relay it (hops 1).
    let forged = data("a", node_key("c"), 1, 0, 4, b"wxyz");
    c.handle_frame(Time::ZERO, links[0], &forged, b"wxyz");
    // Relayed, but claiming to come from c itself, or from b that sent it.
    c.handle_frame(
        Time::ZERO,
        links[0],
        &via_b(data("c", node_key("c"), 2, 0, 4, b"wxyz")),
        b"wxyz",
    );
    c.handle_frame(
        Time::ZERO,
        links[0],
        &via_b(data("b", node_key("c"), 3, 0, 4, b"wxyz")),
        b"wxyz",
    );
    assert!(drain(&mut c).is_empty() && c.poll_event().is_none());
    assert_eq!(c.stats().frames_bad_source, 3);
    c.handle_frame(Time::ZERO, links[0], &via_b(forged), b"wxyz");
    assert!(
        drain(&mut c)[0].header.has(flags::FINAL),
        "the same frame relayed is taken"
    );
}

#[test]
fn the_memory_of_finished_transfers_is_bounded_per_source_and_lingers() {
    let limits = Limits {
        finished_per_peer_max: 1,
        ..Limits::default()
    };
    let (mut c, links) = node("c", limits);
    let whole = |src: &str, id| match src {
        "b" => data(src, node_key("c"), id, 0, 4, b"wxyz"),
        _ => via_b(data(src, node_key("c"), id, 0, 4, b"wxyz")),
    };
    c.handle_frame(Time::ZERO, links[0], &whole("a", 1), b"wxyz");
    assert!(drain(&mut c)[0].header.has(flags::FINAL));
    // a's one remembered transfer is young: a second from a is refused, not let push it out.
    c.handle_frame(Time::ZERO, links[0], &whole("a", 2), b"wxyz");
    assert_eq!(refusal_of(&drain(&mut c)[0]), RefusalCode::TooManyTransfers);
    c.handle_frame(Time::ZERO, links[0], &whole("b", 1), b"wxyz");
    assert!(
        drain(&mut c)[0].header.has(flags::FINAL),
        "b has its own bound"
    );
    // The duplicate is answered, never delivered again.
    c.handle_frame(Time::ZERO, links[0], &whole("a", 1), b"wxyz");
    assert!(drain(&mut c)[0].header.has(flags::FINAL));
    let linger = CoreConfig::new("c", 1).finished_linger;
    let later = Time::ZERO + linger;
    assert!(c.poll_timeout().is_some_and(|t| t <= later));
    c.handle_timeout(later);
    c.handle_frame(later, links[0], &whole("a", 2), b"wxyz");
    assert!(
        drain(&mut c)[0].header.has(flags::FINAL),
        "after the linger: room"
    );
    let delivered = std::iter::from_fn(|| c.poll_event())
        .filter(|e| matches!(e, Event::Delivered { .. }))
        .count();
    assert_eq!(delivered, 3, "a's 1 and 2, b's 1: each once");
}

#[test]
fn limits_and_unhandled_flags_are_refused_with_their_codes() {
    let limits = Limits {
        incoming_per_peer_max: 1,
        ..Limits::default()
    };
    let (mut c, links) = node("c", limits);
    c.handle_frame(
        Time::ZERO,
        links[0],
        &via_b(data("a", node_key("c"), 1, 0, 8, b"1234")),
        b"1234",
    );
    assert_eq!(drain(&mut c).len(), 0, "first half: no ack due yet");
    c.handle_frame(
        Time::ZERO,
        links[0],
        &via_b(data("a", node_key("c"), 2, 0, 8, b"1234")),
        b"1234",
    );
    assert_eq!(refusal_of(&drain(&mut c)[0]), RefusalCode::TooManyTransfers);

    let mut compressed = data("b", node_key("c"), 5, 0, 4, b"abcd");
    compressed.flags = flags::with_compression(0, 1);
    c.handle_frame(Time::ZERO, links[0], &compressed, b"abcd");
    assert_eq!(
        refusal_of(&drain(&mut c)[0]),
        RefusalCode::BadFrame,
        "not a block"
    );

    let mut named = data("b", node_key("c"), 7, 0, 4, b"abcd");
    named.flags = flags::NAMED;
    c.handle_frame(Time::ZERO, links[0], &named, b"abcd");
    assert_eq!(
        refusal_of(&drain(&mut c)[0]),
        RefusalCode::BadFrame,
        "names: not yet"
    );

    let big = data("b", node_key("c"), 6, 0, 1 << 40, b"abcd");
    c.handle_frame(Time::ZERO, links[0], &big, b"abcd");
    assert_eq!(refusal_of(&drain(&mut c)[0]), RefusalCode::Quota);
}

#[test]
fn a_send_is_chunked_and_completes_on_the_final_ack() {
    let (mut a, links) = node("a", Limits::default());
    assert_eq!(
        a.send(Time::ZERO, "zz", vec![1], KIND),
        Err(CommandError::UnknownDestination("zz".into()))
    );
    let id = a
        .send(Time::ZERO, "c", b"0123456789".to_vec(), KIND)
        .unwrap();
    let frames = drain(&mut a);
    assert_eq!(frames.len(), 3, "chunks of 4 bytes");
    assert!(frames
        .iter()
        .all(|t| t.link == links[0] && t.header.dst == node_key("c")));
    let mut ack = Header::new(FrameKind::Ack);
    (ack.src, ack.dst, ack.transfer_id) = (node_key("c"), node_key("a"), id.0);
    (ack.offset, ack.aux, ack.flags, ack.hops) = (10, 10, flags::FINAL, 1);
    a.handle_frame(Time::from_nanos(5), links[0], &ack, &[]);
    match a.poll_event() {
        Some(Event::Sent {
            id: got, report, ..
        }) => {
            assert_eq!((got, report.bytes), (id, 10));
            assert_eq!(report.first_hops, vec!["b".to_string()]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(a.poll_timeout(), None);
}

#[test]
fn a_refusal_by_the_destination_says_not_delivered_and_a_timeout_does_not() {
    let (mut a, links) = node("a", Limits::default());
    let id = a.send(Time::ZERO, "c", vec![0; 8], KIND).unwrap();
    drain(&mut a);
    let mut nack = Header::new(FrameKind::Nack);
    (nack.src, nack.dst, nack.transfer_id) = (node_key("c"), node_key("a"), id.0);
    (nack.flags, nack.aux, nack.hops) = (flags::FATAL, RefusalCode::Quota.wire_code(), 1);
    a.handle_frame(Time::ZERO, links[0], &nack, &[]);
    let Some(Event::Failed { error, .. }) = a.poll_event() else {
        panic!("no failure")
    };
    assert!(!error.may_have_been_delivered(), "{error}");

    a.send(Time::ZERO, "c", vec![0; 8], KIND).unwrap();
    drain(&mut a);
    let mut now = Time::ZERO;
    for _ in 0..100 {
        let Some(t) = a.poll_timeout() else { break };
        now = t;
        a.handle_timeout(now);
        drain(&mut a);
    }
    let Some(Event::Failed { error, .. }) = a.poll_event() else {
        panic!("no timeout by {now:?}")
    };
    assert!(error.may_have_been_delivered(), "{error}");
}

#[test]
fn chunks_that_shrink_travel_compressed_and_arrive_whole() {
    let (mut a, _) = node("a", Limits::default());
    let (mut c, c_links) = node("c", Limits::default());
    a.cfg.compression = crate::compress::Algorithm::Lz4;
    // Chunks at least pack::MIN_COMPRESS_BYTES long, as the runtime's sender requires.
    a.cfg.send.chunk_len = 1024;
    let bytes: Vec<u8> = (0..3 * 1024 + 8u32).map(|i| (i / 800) as u8).collect();
    a.send(Time::ZERO, "c", bytes.clone(), KIND).unwrap();
    let frames = drain(&mut a);
    let shapes: Vec<(u8, usize)> = frames
        .iter()
        .map(|t| (flags::compression(t.header.flags), t.payload.len()))
        .collect();
    assert_eq!(shapes.len(), 4, "{shapes:?}");
    assert!(
        shapes[..3].iter().all(|(c, len)| *c == 1 && *len < 1024),
        "{shapes:?}"
    );
    assert_eq!(
        shapes[3],
        (0, 8),
        "an 8-byte tail does not shrink: sent as it is"
    );
    for t in &frames {
        c.handle_frame(Time::ZERO, c_links[0], &via_b(t.header), &t.payload);
    }
    assert!(matches!(c.poll_event(), Some(Event::Delivered { data, .. }) if data == bytes));
    assert_eq!(a.stats().chunks_compressed, 3);
}

#[test]
fn zone_isolation_is_checked_at_the_source_at_a_relay_and_at_the_destination() {
    use crate::config::Isolation;
    let zoned = |name: &str, hard: &str| {
        let (mut n, links) = node(name, Limits::default());
        for (member, zone) in [("a", "g"), ("b", "g"), ("c", "g")] {
            let zone = if member == hard { "q" } else { zone };
            let iso = if member == hard {
                Isolation::Hard
            } else {
                Isolation::Soft
            };
            n.cfg.zones.insert(member, zone, iso);
        }
        (n, links)
    };
    let (mut a, _) = zoned("a", "c");
    assert!(matches!(
        a.send(Time::ZERO, "c", vec![1], KIND),
        Err(CommandError::ZoneDenied(_))
    ));
    let (mut c, c_links) = zoned("c", "c");
    let h = data("a", node_key("c"), 1, 0, 4, b"abcd");
    c.handle_frame(Time::ZERO, c_links[0], &via_b(h), b"abcd");
    assert_eq!(refusal_of(&drain(&mut c)[0]), RefusalCode::ZoneDenied);
    assert!(c.poll_event().is_none(), "nothing delivered");
    // b hard-isolated: a's transfer to c may not transit through it.
    let (mut b, b_links) = zoned("b", "b");
    b.handle_frame(Time::ZERO, b_links[0], &h, b"abcd");
    let out = drain(&mut b);
    assert_eq!(refusal_of(&out[0]), RefusalCode::ZoneDenied);
    assert_eq!(b.stats().frames_relayed, 0);
}
