//! Endpoints: a sender's handle on one destination that resolves the send plan once, two
//! nodes in one process over a shared-memory link.

use hyperfabric::transport::TransportChoice;
use hyperfabric::{
    DataType, DataTypePolicy, Error, Fabric, Priority, SendOptions, LOAN_SLOT_BYTES,
};
use std::time::Duration;

mod common;
use common::{pattern, start_pair, two_node_config};

const RECV: Duration = Duration::from_secs(5);

fn pair_over(transport: TransportChoice) -> (Fabric, Fabric) {
    let fabric = "profile = \"high_throughput\"\nsend_timeout_ms = 3000\nconnect_timeout_ms = 1000";
    start_pair(two_node_config("endpoint", fabric), transport)
}

fn pair() -> (Fabric, Fabric) {
    pair_over(TransportChoice::Shm)
}

#[test]
fn an_endpoint_sends_copies_and_loans_with_its_options() {
    let (a, b) = pair();
    let opts = SendOptions::new()
        .data_type(DataType::Activation)
        .priority(Priority::High);
    let mut ep = a.endpoint("b", opts).unwrap();
    assert_eq!(ep.destination(), "b");
    let sent: Vec<Vec<u8>> = (0..40u8)
        .map(|i| pattern([64, 70_000, 1 << 20, 3000][i as usize % 4], i))
        .collect();
    let mut pending = std::collections::VecDeque::new();
    for (i, data) in sent.iter().enumerate() {
        let p = if i % 2 == 0 {
            ep.start_send(data).unwrap()
        } else {
            let mut buf = ep.loan(data.len()).unwrap();
            assert!(
                buf.is_shared(),
                "message {i}: a loan over shm is a pool slot"
            );
            buf.copy_from_slice(data);
            ep.start_send_loaned(buf).unwrap()
        };
        pending.push_back((p, data.len() as u64));
        if pending.len() == 4 {
            let (p, len) = pending.pop_front().unwrap();
            if i % 3 == 0 {
                let report = p.wait().unwrap();
                assert_eq!(report.priority, Priority::High);
                assert_eq!(report.bytes, len);
            } else {
                // The bare completion: the same figures without the names.
                let id = p.transfer_id();
                let done = p.finish().unwrap();
                assert_eq!((done.transfer_id, done.bytes), (id, len));
                assert!(done.latency > Duration::ZERO);
            }
        }
    }
    for (p, _) in pending {
        p.finish().unwrap();
    }
    for (i, data) in sent.iter().enumerate() {
        let msg = b.recv_timeout(RECV).unwrap();
        assert!(msg.payload == *data, "message {i} damaged or out of order");
        assert_eq!(msg.data_type, DataType::Activation);
        assert_eq!(msg.priority, Priority::High);
        if i % 2 == 1 {
            assert!(
                msg.payload.is_shared(),
                "message {i}: a loan arrives in place"
            );
        }
    }
    assert_eq!(a.stats().transfers_sent, sent.len() as u64);
}

#[test]
fn an_endpoint_follows_a_policy_change_at_its_next_send() {
    let (a, b) = pair();
    let mut ep = a
        .endpoint("b", SendOptions::new().data_type(DataType::Gradient))
        .unwrap();
    ep.send(b"before").unwrap();
    assert_eq!(b.recv_timeout(RECV).unwrap().priority, Priority::Normal);
    a.configure_data_type(
        DataType::Gradient,
        DataTypePolicy::new().priority(Priority::UltraHigh),
    )
    .unwrap();
    let report = ep.send(b"after").unwrap();
    assert_eq!(report.priority, Priority::UltraHigh);
    let msg = b.recv_timeout(RECV).unwrap();
    assert_eq!(msg.payload, b"after".to_vec());
    assert_eq!(msg.priority, Priority::UltraHigh);
}

#[test]
fn an_endpoint_refuses_unknown_nodes_and_buffers_loaned_for_another() {
    let (a, b) = pair();
    assert!(matches!(
        a.endpoint("nowhere", SendOptions::new()),
        Err(Error::NodeNotFound { .. })
    ));
    // A buffer loaned for `a` (a heap one: larger than a slot) cannot go to `b`.
    let foreign = b.loan("a", LOAN_SLOT_BYTES + 1).unwrap();
    let mut to_b = a.endpoint("b", SendOptions::new()).unwrap();
    let refused = to_b.start_send_loaned(foreign);
    assert!(
        matches!(refused, Err(Error::InvalidArgument(ref m)) if m.contains("loaned for `a`")),
        "{:?}",
        refused.err()
    );
    // Nothing was lost: a fresh loan through the right endpoint goes.
    let mut buf = to_b.loan(8).unwrap();
    buf.copy_from_slice(b"12345678");
    to_b.send_loaned(buf).unwrap();
    assert_eq!(b.recv_timeout(RECV).unwrap().payload, b"12345678".to_vec());
}

#[test]
fn an_endpoint_over_tcp_loans_from_the_heap_and_sends_by_copy() {
    let (a, b) = pair_over(TransportChoice::Tcp);
    let mut ep = a.endpoint("b", SendOptions::new()).unwrap();
    for i in 0..6u8 {
        let data = pattern(100_000 + usize::from(i), i);
        let mut buf = ep.loan(data.len()).unwrap();
        assert!(!buf.is_shared(), "no pool over TCP");
        buf.copy_from_slice(&data);
        let done = ep.start_send_loaned(buf).unwrap().finish().unwrap();
        assert_eq!(done.bytes, data.len() as u64);
        let msg = b.recv_timeout(RECV).unwrap();
        assert!(!msg.payload.is_shared());
        assert!(msg.payload == data, "message {i} damaged");
    }
}
