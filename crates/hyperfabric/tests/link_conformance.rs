//! One conformance suite for every link (`transport::link`): TCP, TLS, shared memory, in
//! memory, and the fault and pacing wrappers with their knobs off. Each property is a generic
//! function; `conformance!` instantiates all of them for one way of making a link.

use hyperfabric::transport::mem;
use hyperfabric::transport::ring_link::{ShmRx, ShmTx};
use hyperfabric::transport::shm::{Ring, Segment};
use hyperfabric::transport::shmframe::LinkKeys;
use hyperfabric::transport::stream::{StreamRx, StreamTx};
use hyperfabric::transport::tls::{LinkReader, LinkWriter, TlsReader, TlsSession};
use hyperfabric::transport::wrap::{Faulty, Paced};
use hyperfabric::transport::{LinkRx, LinkTx, RecvError, Sent};
use hyperfabric::wire::{FrameKind, Header, Limits};
use std::any::Any;
use std::io::{BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Keys of the two ends (frames from A to B go compact over shared memory).
const A: u64 = 0x0A0A_0A0A_0A0A_0A0A;
const B: u64 = 0x0B0B_0B0B_0B0B_0B0B;
/// Longest any one receive may take before the test fails (a watchdog, not a timing claim).
const PATIENCE: Duration = Duration::from_secs(30);
/// Bytes the bounded links (mem, shm) hold.
const LINK_BYTES: usize = 4 << 20;

/// The sending half at A, the receiving half at B, and whatever keeps them open.
struct Pair<T, R> {
    tx: T,
    rx: R,
    _keep: Box<dyn Any + Send>,
}

fn limits() -> Limits {
    Limits::default()
}

fn mem_pair() -> Pair<mem::MemTx, mem::MemRx> {
    let (tx, rx) = mem::channel(LINK_BYTES, limits());
    Pair {
        tx,
        rx,
        _keep: Box::new(()),
    }
}

fn sockets() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let client = TcpStream::connect(listener.local_addr().expect("address")).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    server.set_read_timeout(Some(PATIENCE)).expect("timeout");
    (client, server)
}

fn tcp_pair() -> Pair<StreamTx, StreamRx> {
    let (client, server) = sockets();
    Pair {
        tx: StreamTx::new(LinkWriter::Plain(client)),
        rx: StreamRx::new(BufReader::new(LinkReader::Plain(server)), limits()),
        _keep: Box::new(()),
    }
}

fn tls_config() -> hyperfabric::auth::tls::TlsConfig {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = p.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["a".into(), "b".into()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    hyperfabric::auth::tls::TlsConfig::new(vec![cert.der().clone()], key, roots).unwrap()
}

/// Both ends of a TLS session over loopback: [dialer, acceptor], each with its socket.
fn tls_sessions() -> [(Arc<TlsSession>, TlsReader, TcpStream); 2] {
    let cfg = tls_config();
    let (client, server) = sockets();
    let server_cfg = Arc::clone(&cfg.server);
    let accepted = std::thread::spawn(move || {
        let conn = rustls::ServerConnection::new(server_cfg).unwrap();
        let (session, reader) = TlsSession::handshake(&server, conn.into(), None).unwrap();
        (session, reader, server)
    });
    let name = hyperfabric::auth::tls::server_name("b").unwrap();
    let conn = rustls::ClientConnection::new(Arc::clone(&cfg.client), name).unwrap();
    let (session, reader) = TlsSession::handshake(&client, conn.into(), None).unwrap();
    [(session, reader, client), accepted.join().unwrap()]
}

fn tls_pair() -> Pair<StreamTx, StreamRx> {
    let [(session, client_reader, client), (server_session, reader, server)] = tls_sessions();
    Pair {
        tx: StreamTx::new(LinkWriter::Tls(session)),
        rx: StreamRx::new(BufReader::new(LinkReader::Tls(reader)), limits()),
        _keep: Box::new((client, server, client_reader, server_session)),
    }
}

fn shm_pair() -> Pair<ShmTx, ShmRx> {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "hf-conformance-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let seg = Segment::create(&name, Ring::segment_len_for(LINK_BYTES)).expect("segment");
    // The mapping outlives the name: nothing is left in /dev/shm whatever the test does.
    seg.unlink().expect("unlink");
    let ring = Ring::init(Arc::new(seg)).expect("ring");
    let stop = Arc::new(AtomicBool::new(false));
    let tx = ShmTx::new(
        ring.producer().expect("producer"),
        LinkKeys { local: A, peer: B },
        stop,
    );
    let rx = ShmRx::new(
        ring.consumer().expect("consumer"),
        LinkKeys { local: B, peer: A },
        limits(),
    );
    Pair {
        tx,
        rx,
        _keep: Box::new(()),
    }
}

fn faulty_pair() -> Pair<Faulty<mem::MemTx>, mem::MemRx> {
    let p = mem_pair();
    Pair {
        tx: Faulty::new(p.tx, None, "b"),
        rx: p.rx,
        _keep: p._keep,
    }
}

fn paced_tcp_pair() -> Pair<Paced<StreamTx>, StreamRx> {
    let p = tcp_pair();
    Pair {
        tx: Paced::new(p.tx, 0.0),
        rx: p.rx,
        _keep: p._keep,
    }
}

fn faulty_paced_shm_pair() -> Pair<Faulty<Paced<ShmTx>>, ShmRx> {
    let p = shm_pair();
    Pair {
        tx: Faulty::new(Paced::new(p.tx, 0.0), None, "b"),
        rx: p.rx,
        _keep: p._keep,
    }
}

// ---- helpers ----

/// Frame `seq` from A to B (direct, or as if relayed when `seq` is odd), `len` bytes.
fn frame(seq: u64, len: usize) -> (Header, Vec<u8>) {
    let mut h = Header::new(FrameKind::Data);
    (h.src, h.dst, h.transfer_id, h.offset) = (A, B, seq, seq * 7);
    h.hops = (seq % 2) as u8;
    if h.hops == 1 {
        h.src = 0x0C0C;
    }
    let payload = (0..len)
        .map(|i| (i as u64 ^ seq.wrapping_mul(131)) as u8)
        .collect();
    (h, payload)
}

fn send<T: LinkTx>(tx: &mut T, h: &Header, payload: &[u8]) {
    let raw = h.encode(payload).expect("encodes");
    assert_eq!(tx.send(&raw, payload).expect("send"), Sent::Written);
}

/// The next frame (copied out), waiting for it up to [`PATIENCE`].
fn recv<R: LinkRx>(rx: &mut R) -> Result<(Header, Vec<u8>), RecvError> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(got) = rx.poll_recv(|f| (f.header, f.payload.to_vec()))? {
            return Ok(got);
        }
        assert!(Instant::now() < deadline, "no frame within {PATIENCE:?}");
        std::thread::sleep(Duration::from_micros(50));
    }
}

fn expect_frame<R: LinkRx>(rx: &mut R, seq: u64, len: usize) {
    let (want_h, want_p) = frame(seq, len);
    let (h, p) = recv(rx).unwrap_or_else(|e| panic!("frame {seq}: {e}"));
    assert_eq!(
        (h.kind, h.src, h.dst, h.hops, h.transfer_id, h.offset),
        (
            want_h.kind,
            want_h.src,
            want_h.dst,
            want_h.hops,
            want_h.transfer_id,
            want_h.offset
        ),
        "frame {seq}"
    );
    assert!(p == want_p, "frame {seq}: payload differs");
}

// ---- the properties ----

fn in_order_and_intact<T: LinkTx, R: LinkRx>(mut p: Pair<T, R>) {
    let sizes = [0usize, 1, 63, 64, 65, 1000, 1024, 1025, 4096, 60_000];
    for seq in 0..300u64 {
        let (h, payload) = frame(seq, sizes[seq as usize % sizes.len()]);
        send(&mut p.tx, &h, &payload);
        if seq % 3 == 2 {
            for s in seq - 2..=seq {
                expect_frame(&mut p.rx, s, sizes[s as usize % sizes.len()]);
            }
        }
    }
}

fn large_frames<T: LinkTx + 'static, R: LinkRx>(p: Pair<T, R>) {
    let max = limits().max_payload as usize;
    let Pair {
        mut tx,
        mut rx,
        _keep,
    } = p;
    // More than any of the links holds at once: the writer waits for the reader.
    let writer = std::thread::spawn(move || {
        for seq in 0..12u64 {
            let (h, payload) = frame(seq, max);
            send(&mut tx, &h, &payload);
        }
        tx
    });
    for seq in 0..12u64 {
        expect_frame(&mut rx, seq, max);
    }
    writer.join().expect("writer");
}

fn close_is_seen<T: LinkTx, R: LinkRx>(mut p: Pair<T, R>) {
    let (h, payload) = frame(0, 100);
    send(&mut p.tx, &h, &payload);
    let mut bye = Header::new(FrameKind::Close);
    (bye.src, bye.dst) = (A, B);
    let raw = bye.encode(b"done here").expect("encodes");
    p.tx.close(Some((&raw, b"done here")));
    expect_frame(&mut p.rx, 0, 100);
    let (h, reason) = recv(&mut p.rx).expect("the goodbye");
    assert_eq!((h.kind, &reason[..]), (FrameKind::Close, &b"done here"[..]));
    // After the goodbye: the end of the link, or (shared memory) nothing more.
    match p.rx.poll_recv(|f| f.header.kind) {
        Err(RecvError::Closed) | Ok(None) => {}
        other => panic!("after the goodbye: {other:?}"),
    }
}

fn corrupt_frames_are_detected<T: LinkTx, R: LinkRx>(mut p: Pair<T, R>) {
    for (seq, len) in [(0u64, 64usize), (2, 2000)] {
        let (h, payload) = frame(seq, len);
        let raw = h.encode(&payload).expect("encodes");
        // A flipped payload byte, then a flipped header byte (a field the CRC covers).
        let mut bad = payload.clone();
        bad[len / 2] ^= 0x10;
        assert_eq!(p.tx.send(&raw, &bad).expect("send"), Sent::Written);
        let mut bad_raw = raw;
        bad_raw[40] ^= 0x01;
        send(&mut p.tx, &h, &payload);
        assert_eq!(p.tx.send(&bad_raw, &payload).expect("send"), Sent::Written);
        send(&mut p.tx, &h, &payload);
        for round in 0..2 {
            match recv(&mut p.rx) {
                Err(RecvError::Corrupt(_)) => {}
                other => panic!("round {round}: corrupt frame not detected: {other:?}"),
            }
            expect_frame(&mut p.rx, seq, len);
        }
    }
}

fn backpressure_holds_the_writer<T: LinkTx + 'static, R: LinkRx>(p: Pair<T, R>) {
    const FRAMES: u64 = 512;
    const LEN: usize = 64 << 10;
    let Pair {
        mut tx,
        mut rx,
        _keep,
    } = p;
    let sent = Arc::new(AtomicUsize::new(0));
    let progress = Arc::clone(&sent);
    let writer = std::thread::spawn(move || {
        for seq in 0..FRAMES {
            let (h, payload) = frame(seq, LEN);
            send(&mut tx, &h, &payload);
            progress.fetch_add(1, Ordering::Release);
        }
        tx
    });
    // Nobody reads for a while: the writer must be held back, not buffered without end.
    // (A one-sided check: a slow writer passes it too; only unbounded buffering fails it.)
    std::thread::sleep(Duration::from_millis(300));
    let early = sent.load(Ordering::Acquire) as u64;
    assert!(
        early < FRAMES,
        "all {FRAMES} frames of {LEN} bytes went in while nobody read"
    );
    for seq in 0..FRAMES {
        expect_frame(&mut rx, seq, LEN);
    }
    writer.join().expect("writer");
}

macro_rules! conformance {
    ($name:ident, $make:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn frames_arrive_in_order_and_intact() {
                in_order_and_intact($make());
            }

            #[test]
            fn large_frames_arrive() {
                large_frames($make());
            }

            #[test]
            fn close_is_seen_by_the_other_side() {
                close_is_seen($make());
            }

            #[test]
            fn a_corrupt_frame_is_detected_and_the_link_goes_on() {
                corrupt_frames_are_detected($make());
            }

            #[test]
            fn backpressure_loses_nothing_and_buffers_a_bound() {
                backpressure_holds_the_writer($make());
            }
        }
    };
}

conformance!(tcp, tcp_pair);
conformance!(tls, tls_pair);
conformance!(shm, shm_pair);
conformance!(in_memory, mem_pair);
conformance!(faulty_mem, faulty_pair);
conformance!(paced_tcp, paced_tcp_pair);
conformance!(faulty_paced_shm, faulty_paced_shm_pair);

/// The in-memory link refuses a frame larger than it can ever hold, instead of waiting.
#[test]
fn mem_refuses_a_frame_larger_than_the_link() {
    let (mut tx, _rx) = mem::channel(1024, limits());
    let (h, payload) = frame(0, 2000);
    let raw = h.encode(&payload).expect("encodes");
    let err = tx.send(&raw, &payload).expect_err("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

/// A writer to an in-memory link whose reader is gone fails instead of waiting for room.
#[test]
fn mem_writer_fails_once_the_reader_is_gone() {
    let (mut tx, rx) = mem::channel(LINK_BYTES, limits());
    drop(rx);
    let (h, payload) = frame(0, 10);
    let raw = h.encode(&payload).expect("encodes");
    let err = tx.send(&raw, &payload).expect_err("no reader");
    assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);
}

/// With faults on, `Faulty` drops what the rules say and reports it as dropped.
#[test]
fn faulty_with_a_drop_rule_drops_and_says_so() {
    use hyperfabric::transport::fault::{FaultInjector, FaultRule};
    let rule = FaultRule {
        drop: 1.0,
        seed: Some(1),
        ..FaultRule::default()
    };
    let injector = FaultInjector::new("a", vec![(rule, "test".into())], None).expect("a rule");
    let p = mem_pair();
    let mut tx = Faulty::new(p.tx, Some(&injector), "b");
    let mut rx = p.rx;
    let (h, payload) = frame(0, 10);
    let raw = h.encode(&payload).expect("encodes");
    assert_eq!(tx.send(&raw, &payload).expect("send"), Sent::Dropped);
    // Link control frames are never touched.
    let mut bye = Header::new(FrameKind::Close);
    (bye.src, bye.dst) = (A, B);
    let raw = bye.encode(&[]).expect("encodes");
    assert_eq!(tx.send(&raw, &[]).expect("send"), Sent::Written);
    let (h, _) = recv(&mut rx).expect("the close");
    assert_eq!(h.kind, FrameKind::Close);
    assert_eq!(injector.counters.dropped.load(Ordering::Relaxed), 1);
}

/// A `Faulty` cut fails the write (the connection above ends the link), and a corrupt rule's
/// frames never reach the receiver as frames: each is caught as corrupt or undecodable.
#[test]
fn faulty_cut_fails_the_write_and_corruption_is_caught() {
    use hyperfabric::transport::fault::{FaultInjector, FaultRule};
    let injector = |rule: FaultRule| {
        FaultInjector::new("a", vec![(rule, "test".into())], None).expect("a rule")
    };
    let cut = injector(FaultRule {
        cut: 1.0,
        seed: Some(2),
        ..FaultRule::default()
    });
    let p = mem_pair();
    let mut tx = Faulty::new(p.tx, Some(&cut), "b");
    let (h, payload) = frame(0, 10);
    let raw = h.encode(&payload).expect("encodes");
    let err = tx.send(&raw, &payload).expect_err("cut");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionAborted);

    let corrupt = injector(FaultRule {
        corrupt: 1.0,
        seed: Some(3),
        ..FaultRule::default()
    });
    let p = mem_pair();
    let (mut tx, mut rx) = (Faulty::new(p.tx, Some(&corrupt), "b"), p.rx);
    for seq in 0..200 {
        let (h, payload) = frame(seq, 100);
        send(&mut tx, &h, &payload);
        match recv(&mut rx) {
            Err(RecvError::Corrupt(_) | RecvError::Protocol(_)) => {}
            other => panic!("frame {seq}: a corrupted frame got through: {other:?}"),
        }
    }
    assert_eq!(corrupt.counters.corrupted.load(Ordering::Relaxed), 200);
}

/// Both ends write 8 MiB at once (more than the socket buffers hold) from two threads
/// each while their readers drain: no deadlock, every byte in order.
#[test]
fn tls_session_concurrent_writers_both_ways_arrive_intact() {
    let [(s1, r1, _c1), (s2, r2, _c2)] = tls_sessions();
    let ends = [(s1, r1), (s2, r2)];
    const PER_WRITER: usize = 4 << 20;
    let mut threads = Vec::new();
    for (session, mut reader) in ends {
        for tag in [1u8, 2] {
            let s = Arc::clone(&session);
            threads.push(std::thread::spawn(move || {
                for _ in 0..PER_WRITER / 4096 {
                    s.write_all(&[std::io::IoSlice::new(&[tag; 4096])]).unwrap();
                }
            }));
        }
        threads.push(std::thread::spawn(move || {
            let mut counts = [0usize; 3];
            let mut buf = [0u8; 4096];
            while counts[1] + counts[2] < 2 * PER_WRITER {
                // Each 4096-byte write is sealed whole, so reads see runs of one tag.
                let n = reader.read(&mut buf).unwrap();
                assert!(n > 0, "early end of stream");
                for &b in &buf[..n] {
                    counts[usize::from(b.min(2))] += 1;
                }
            }
            assert_eq!(counts, [0, PER_WRITER, PER_WRITER]);
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
}
