//! Tests of the header-polling protocol: batches across the wrap, stale bytes of an earlier
//! lap, re-claimed handles, hostile header values, and the waiter.

use super::*;

/// Pushes and reads `n` bytes' worth of 8-byte records so that both sides stand at `n`.
fn advance(p: &mut Producer, c: &mut Consumer, n: usize) {
    for _ in 0..n / 8 {
        assert!(p.try_push(&[]).unwrap());
        assert_eq!(read_one(c), Some(vec![]));
    }
}

fn commit(p: &mut Producer, payload: &[u8]) {
    let mut s = p.try_reserve(payload.len()).unwrap().unwrap();
    s.copy_from_slice(payload);
    s.commit();
}

/// Several commits, one publish, at every start offset: the batch crosses the ring end (a
/// padding record first, in the middle, or none) and stays invisible until published.
#[test]
fn batch_across_the_wrap_is_invisible_until_published() {
    for start in (0..256).step_by(8) {
        let r = ring(256);
        let (mut p, mut c) = (r.producer().unwrap(), r.consumer().unwrap());
        let w = c.waiter();
        advance(&mut p, &mut c, start);
        let batch: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i + 1; 9 + 8 * i as usize]).collect();
        for rec in &batch {
            commit(&mut p, rec);
        }
        assert!(p.unpublished() > 0);
        assert!(!w.ready(), "start {start}: waiter saw an unpublished batch");
        assert!(!c.poll_ready().unwrap(), "start {start}");
        assert_eq!(read_one(&mut c), None, "start {start}");
        p.publish();
        assert!(w.ready(), "start {start}");
        for rec in &batch {
            assert_eq!(read_one(&mut c).as_ref(), Some(rec), "start {start}");
        }
        assert_eq!(read_one(&mut c), None, "start {start}");
        assert!(!w.ready(), "start {start}");
    }
}

/// A padding record published alone (the reservation behind it abandoned) is consumed
/// without yielding a record, and the space it held is free again.
#[test]
fn lone_padding_record_is_skipped() {
    let r = ring(128);
    let (mut p, mut c) = (r.producer().unwrap(), r.consumer().unwrap());
    advance(&mut p, &mut c, 112);
    // Pads 112..128, then abandons the record at 0.
    assert!(p.try_reserve(40).unwrap().is_some());
    p.publish();
    assert!(c.poll_ready().unwrap());
    assert_eq!(read_one(&mut c), None);
    assert!(!c.poll_ready().unwrap());
    assert_eq!(r.header().head.0.load(Ordering::Relaxed), 128);
    assert!(p.try_push(&[5; 40]).unwrap());
    assert_eq!(read_one(&mut c), Some(vec![5; 40]));
}

/// Whole record area filled with valid-looking empty DATA headers (an earlier lap's bytes)
/// before `init`: the consumer must only ever see what was pushed, at every position.
#[test]
fn stale_headers_of_an_earlier_lap_are_never_read() {
    let cap = 256usize;
    let name = format!("hf-test-ring-stale-{}", std::process::id());
    let seg = Arc::new(Segment::create(&name, Ring::segment_len_for(cap)).unwrap());
    let stale = protocol::pack(0, KIND_DATA).to_le_bytes();
    for i in 0..cap {
        // SAFETY: RING_HEADER_LEN + i is inside the data region of this live mapping, which
        // nothing else uses yet.
        unsafe {
            let base = seg.data_ptr().as_ptr().add(RING_HEADER_LEN);
            std::ptr::write_volatile(base.add(i), stale[i % 8]);
        }
    }
    let r = Ring::init(seg).unwrap();
    let (mut p, mut c) = (r.producer().unwrap(), r.consumer().unwrap());
    assert_eq!(read_one(&mut c), None, "stale header at 0 read after init");
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    for i in 0..2_000u32 {
        let batch = rng.gen_range(1..4);
        let recs: Vec<Vec<u8>> = (0..batch)
            .map(|k| vec![(i + k) as u8 | 1; rng.gen_range(1..=40)])
            .collect();
        for rec in &recs {
            commit(&mut p, rec);
        }
        p.publish();
        for rec in &recs {
            assert_eq!(read_one(&mut c).as_ref(), Some(rec), "round {i}");
        }
        assert_eq!(read_one(&mut c), None, "round {i}: a stale record was read");
    }
}

/// A producer dropped with a batch pending and claimed again continues where it stopped,
/// across the wrap; a re-claimed consumer continues at its released position.
#[test]
fn reclaimed_producer_and_consumer_continue() {
    let r = ring(256);
    let mut c = r.consumer().unwrap();
    let mut expect = std::collections::VecDeque::new();
    for round in 0..40u8 {
        let mut p = r.producer().unwrap();
        for k in 0..3u8 {
            let rec = vec![round ^ k; 3 + 11 * k as usize];
            commit(&mut p, &rec);
            expect.push_back(rec);
        }
        drop(p); // publishes the batch
        if round % 3 == 0 {
            drop(c);
            c = r.consumer().unwrap();
        }
        while expect.len() > 1 {
            assert_eq!(read_one(&mut c), expect.pop_front(), "round {round}");
        }
    }
    assert_eq!(read_one(&mut c), expect.pop_front());
    assert_eq!(read_one(&mut c), None);
}

/// A ring of the previous protocol version (consumer polling `tail`) is refused.
#[test]
fn attach_refuses_version_01() {
    let r = ring(256);
    let v01 = u64::from_le_bytes(*b"HFRING01");
    r.header().meta.magic.store(v01, Ordering::Release);
    assert!(matches!(
        Ring::attach(r.segment().clone()),
        Err(RingError::BadLayout("ring magic"))
    ));
}

/// Positions a hostile peer left in the control block are refused at claim, and the claim
/// is given back.
#[test]
fn claim_refuses_impossible_positions() {
    let r = ring(256);
    r.header().tail.0.store(12, Ordering::Relaxed);
    assert!(matches!(r.producer(), Err(RingError::Corrupt { .. })));
    r.header().tail.0.store(512, Ordering::Relaxed);
    assert!(matches!(r.producer(), Err(RingError::Corrupt { .. })));
    r.header().tail.0.store(0, Ordering::Relaxed);
    assert!(r.producer().is_ok());
    r.header().head.0.store(4, Ordering::Relaxed);
    assert!(matches!(r.consumer(), Err(RingError::Corrupt { .. })));
    r.header().head.0.store(0, Ordering::Relaxed);
    assert!(r.consumer().is_ok());
}

/// Header words no honest producer writes, at the consumer's position: Corrupt, sticky.
#[test]
fn hostile_headers_are_corrupt_and_sticky() {
    let cases = [
        (
            0,
            protocol::pack(500, KIND_DATA),
            "record length exceeds ring bounds",
        ),
        (
            0,
            protocol::pack(u32::MAX, KIND_DATA),
            "record length exceeds ring bounds",
        ),
        (
            240,
            protocol::pack(9, KIND_DATA),
            "record length exceeds ring bounds",
        ),
        (64, protocol::pack(8, 0x1234), "unknown record kind"),
        (64, protocol::pack(8, 0), "unknown record kind"),
        (
            64,
            protocol::pack(8, KIND_PAD),
            "padding not up to ring end",
        ),
        (
            0,
            protocol::pack(248, KIND_PAD),
            "record length exceeds ring bounds",
        ),
    ];
    for (at, word, why) in cases {
        let r = ring(256);
        let (mut p, mut c) = (r.producer().unwrap(), r.consumer().unwrap());
        advance(&mut p, &mut c, at);
        r.record_header(at as u64).store(word, Ordering::Release);
        for _ in 0..2 {
            match c.try_read() {
                Err(RingError::Corrupt { reason, .. }) => assert_eq!(reason, why, "{word:#x}"),
                other => panic!("{word:#x}: {:?}", other.map(|s| s.map(|s| s.len()))),
            }
        }
        assert!(c.poll_ready().is_err());
    }
    // A padding record that does reach the end, followed by padding at 0: refused too.
    let r = ring(256);
    let (mut p, mut c) = (r.producer().unwrap(), r.consumer().unwrap());
    advance(&mut p, &mut c, 240);
    r.record_header(0)
        .store(protocol::pack(248, KIND_PAD), Ordering::Relaxed);
    r.record_header(240)
        .store(protocol::pack(8, KIND_PAD), Ordering::Release);
    assert!(matches!(c.try_read(), Err(RingError::Corrupt { .. })));
}

/// A waiter told to stop returns at once, even parked with a far deadline and nothing coming
/// (the link's reader thread when a caller starts driving the ring).
#[test]
fn waiter_stops_when_told() {
    let r = ring(256);
    let c = r.consumer().unwrap();
    let w = c.waiter();
    let far = Instant::now() + std::time::Duration::from_secs(30);
    assert!(!w.wait(Schedule::default(), far, || true));
    // Told to stop while parked: noticed at the next wake-up (a park lasts one slice at most).
    let asked = Instant::now() + std::time::Duration::from_millis(20);
    let started = Instant::now();
    assert!(!w.wait(Schedule::default(), far, || Instant::now() >= asked));
    let took = started.elapsed();
    assert!(took >= std::time::Duration::from_millis(20));
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
}

/// The waiter looks at the header at the released `head`, whatever `head` holds.
#[test]
fn waiter_ready_follows_the_header_at_head() {
    let r = ring(256);
    let (mut p, mut c) = (r.producer().unwrap(), r.consumer().unwrap());
    let w = c.waiter();
    assert!(!w.ready());
    commit(&mut p, &[1; 20]);
    assert!(!w.ready(), "committed but unpublished");
    p.publish();
    assert!(w.ready());
    let slot = c.try_read().unwrap().unwrap();
    assert!(w.ready(), "not released yet");
    drop(slot);
    assert!(!w.ready());
    assert!(p.try_push(&[2; 3]).unwrap());
    assert!(w.ready());
    assert!(w.wait(Schedule::BusySpin, Instant::now(), || false));
    // Garbage in `head` (unaligned, beyond the ring) stays inside the record area.
    for head in [3u64, 255, 1 << 40, u64::MAX] {
        r.header().head.0.store(head, Ordering::Relaxed);
        let _ = w.ready();
    }
}
