//! Properties of the wire format (`docs/wire.md`): round trips, refusal of corruption and
//! truncation, no panic on any input, and the doc's worked example kept honest.

use hyperfabric::wire::{
    self, decode_frame, decode_hello, encode_frame, encode_hello, flags, node_key, DecodeError,
    FrameKind, Header, Hello, Limits, HEADER_LEN, MAX_PAYLOAD_HARD,
};
use hyperfabric::{DataType, Priority};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use std::path::{Path, PathBuf};

mod common;

/// `wire::body::MAX_NAME_LEN` (not re-exported): the longest name a hello carries.
const MAX_NAME_LEN: usize = 256;

fn arb_header() -> impl Strategy<Value = Header> {
    (
        (
            select(FrameKind::ALL.to_vec()),
            any::<u16>().prop_map(|f| f & flags::KNOWN),
            select(Priority::ALL.to_vec()),
            select(DataType::ALL.to_vec()),
            any::<u8>(),
            0..=hyperfabric::wire::STRATEGY_CODE_MAX,
        ),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
        ),
    )
        .prop_map(
            |(
                (kind, flags, priority, data_type, hops, strategy),
                (src, dst, transfer_id, offset, aux),
            )| {
                Header {
                    kind,
                    flags,
                    priority,
                    data_type,
                    hops,
                    strategy,
                    payload_len: 0,
                    src,
                    dst,
                    transfer_id,
                    offset,
                    aux,
                }
            },
        )
}

fn arb_payload(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=max)
}

/// A frame whose header starts validly, so random bytes reach the deeper checks.
fn arb_plausible_bytes() -> impl Strategy<Value = Vec<u8>> {
    (arb_payload(200), any::<u8>(), any::<u8>()).prop_map(|(mut v, kind, len)| {
        let mut head = wire::MAGIC.to_le_bytes().to_vec();
        head.extend_from_slice(&[wire::VERSION, kind % 12]);
        head.extend_from_slice(&v);
        if head.len() >= 16 {
            head[12..16].copy_from_slice(&u32::from(len).to_le_bytes());
        }
        v = head;
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn frame_round_trip(h in arb_header(), payload in arb_payload(4096)) {
        let frame = encode_frame(&h, &payload).unwrap();
        prop_assert_eq!(frame.len(), HEADER_LEN + payload.len());
        let (got, p, used) = decode_frame(&frame, Limits::default()).unwrap();
        prop_assert_eq!(got, Header { payload_len: payload.len() as u32, ..h });
        prop_assert_eq!(p, &payload[..]);
        prop_assert_eq!(used, frame.len());
    }

    #[test]
    fn decode_never_panics(bytes in arb_payload(300)) {
        let _ = decode_frame(&bytes, Limits::default());
        let _ = Header::decode(&bytes, Limits { max_payload: 0 });
        let _ = decode_hello(FrameKind::Hello, &bytes);
    }

    #[test]
    fn decode_never_panics_past_magic(bytes in arb_plausible_bytes()) {
        let _ = decode_frame(&bytes, Limits::default());
        let _ = decode_frame(&bytes, Limits { max_payload: u32::MAX });
    }

    #[test]
    fn any_single_bit_flip_is_refused(
        h in arb_header(),
        payload in arb_payload(512),
        bit in any::<Index>(),
    ) {
        let mut frame = encode_frame(&h, &payload).unwrap();
        let bit = bit.index(frame.len() * 8);
        frame[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(
            decode_frame(&frame, Limits::default()).is_err(),
            "bit {} flipped and accepted", bit
        );
    }

    #[test]
    fn truncation_is_incomplete(h in arb_header(), payload in arb_payload(1024), cut in any::<Index>()) {
        let frame = encode_frame(&h, &payload).unwrap();
        let cut = cut.index(frame.len());
        prop_assert_eq!(
            decode_frame(&frame[..cut], Limits::default()),
            Err(DecodeError::Incomplete { needed: expected_needed(frame.len(), cut) })
        );
    }

    #[test]
    fn concatenated_frames_decode_in_order(
        frames in prop::collection::vec((arb_header(), arb_payload(300)), 1..8),
    ) {
        let mut buf = Vec::new();
        for (h, p) in &frames {
            buf.extend_from_slice(&encode_frame(h, p).unwrap());
        }
        let mut rest = &buf[..];
        for (h, p) in &frames {
            let (got, payload, used) = decode_frame(rest, Limits::default()).unwrap();
            prop_assert_eq!(got, Header { payload_len: p.len() as u32, ..*h });
            prop_assert_eq!(payload, &p[..]);
            rest = &rest[used..];
        }
        prop_assert!(rest.is_empty());
        prop_assert_eq!(decode_frame(rest, Limits::default()), Err(DecodeError::Incomplete { needed: HEADER_LEN }));
    }

    #[test]
    fn hello_round_trip(
        fabric in "\\PC{0,64}",
        node in "\\PC{0,64}",
        nonce in any::<u64>(),
        kind in select(vec![FrameKind::Hello, FrameKind::Welcome]),
    ) {
        prop_assume!(fabric.len() <= 256 && node.len() <= 256);
        let h = Hello { fabric, node, nonce, auth: None, identity: None };
        let body = encode_hello(&h);
        prop_assert_eq!(decode_hello(kind, &body), Ok(h.clone()));
        // The body also survives a trip through a whole frame.
        let frame = encode_frame(&Header::new(kind), &body).unwrap();
        let (_, p, _) = decode_frame(&frame, Limits::default()).unwrap();
        prop_assert_eq!(decode_hello(kind, p), Ok(h));
    }

    #[test]
    fn long_hello_names_are_cut_to_valid_utf8(name in "\\PC{200,400}", nonce in any::<u64>()) {
        let h = Hello { fabric: name.clone(), node: name.clone(), nonce, auth: None, identity: None };
        let got = decode_hello(FrameKind::Hello, &encode_hello(&h)).unwrap();
        prop_assert!(got.node.len() <= MAX_NAME_LEN);
        prop_assert!(name.starts_with(&got.node));
        prop_assert_eq!(got.nonce, nonce);
    }

    #[test]
    fn oversize_refused_before_payload(h in arb_header(), len in any::<u32>(), max in 0u32..=(1 << 21)) {
        let mut raw = h.encode(&[]).unwrap();
        raw[12..16].copy_from_slice(&len.to_le_bytes());
        let got = Header::decode(&raw, Limits { max_payload: max });
        if len > max {
            prop_assert_eq!(got, Err(DecodeError::Oversize { len, max }));
        } else {
            prop_assert_eq!(got.map(|g| g.payload_len), Ok(len));
        }
    }
}

#[test]
fn every_truncation_of_one_frame_is_incomplete() {
    let frame = encode_frame(&ping_example(), PING_PAYLOAD).unwrap();
    for cut in 0..frame.len() {
        assert_eq!(
            decode_frame(&frame[..cut], Limits::default()),
            Err(DecodeError::Incomplete {
                needed: expected_needed(frame.len(), cut)
            })
        );
    }
}

/// `Incomplete::needed` for a frame of `len` bytes cut at `cut`: while the header is short it
/// counts the header bytes missing (the payload length is not known yet), then the exact rest.
fn expected_needed(len: usize, cut: usize) -> usize {
    if cut < HEADER_LEN {
        HEADER_LEN - cut
    } else {
        len - cut
    }
}

#[test]
fn hard_limit_caps_configured_limit() {
    let mut raw = Header::new(FrameKind::Data).encode(&[]).unwrap();
    raw[12..16].copy_from_slice(&(MAX_PAYLOAD_HARD + 1).to_le_bytes());
    assert_eq!(
        Header::decode(
            &raw,
            Limits {
                max_payload: u32::MAX
            }
        ),
        Err(DecodeError::Oversize {
            len: MAX_PAYLOAD_HARD + 1,
            max: MAX_PAYLOAD_HARD
        })
    );
}

#[test]
fn unknown_codes_are_typed_errors() {
    let raw = Header::new(FrameKind::Ping).encode(&[]).unwrap();
    let with = |i: usize, v: u8| {
        let mut r = raw;
        r[i] = v;
        Header::decode(&r, Limits::default())
    };
    assert_eq!(with(5, 0), Err(DecodeError::UnknownKind { found: 0 }));
    assert_eq!(with(5, 16), Err(DecodeError::UnknownKind { found: 16 }));
    assert_eq!(
        with(7, 0x10),
        Err(DecodeError::UnknownFlags { found: 0x1000 })
    );
    assert_eq!(
        with(7, 0x80),
        Err(DecodeError::UnknownFlags { found: 0x8000 })
    );
    assert_eq!(with(8, 5), Err(DecodeError::UnknownPriority { found: 5 }));
    assert_eq!(with(9, 0), Err(DecodeError::UnknownDataType { found: 0 }));
    // Byte 11 is the sender's route strategy: 1..=6, or 0 for none.
    assert_eq!(with(11, 7), Err(DecodeError::UnknownStrategy { found: 7 }));
    assert_eq!(
        with(11, 0xff),
        Err(DecodeError::UnknownStrategy { found: 0xff })
    );
    assert!(with(11, 6).is_ok());
    assert_eq!(with(63, 1), Err(DecodeError::ReservedNotZero));
    assert_eq!(
        with(4, 1),
        Err(DecodeError::UnsupportedVersion { found: 1 })
    );
    assert_eq!(
        with(4, 3),
        Err(DecodeError::UnsupportedVersion { found: 3 })
    );
}

// ---- the worked example in docs/wire.md -------------------------------------------------

const PING_PAYLOAD: &[u8] = b"hf-ping!";

/// The Ping frame shown in `docs/wire.md`.
fn ping_example() -> Header {
    Header {
        kind: FrameKind::Ping,
        flags: 0,
        priority: Priority::UltraHigh,
        data_type: DataType::Heartbeat,
        hops: 0,
        strategy: 0,
        payload_len: 0,
        src: node_key("gpu-01"),
        dst: node_key("gpu-02"),
        transfer_id: 7,
        offset: 0,
        aux: 1_000_000,
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The bytes of the hex dump between the `ping-hex` markers of `docs/wire.md`.
fn doc_ping_bytes() -> Vec<u8> {
    let doc = std::fs::read_to_string(repo_root().join("docs/wire.md")).expect("docs/wire.md");
    let start = doc.find("<!-- ping-hex:begin -->").expect("begin marker");
    let end = doc.find("<!-- ping-hex:end -->").expect("end marker");
    let mut bytes = Vec::new();
    for line in doc[start..end].lines() {
        // Dump lines look like `0010  a1 b2 ...  |ascii|`.
        let Some((addr, rest)) = line.split_once("  ") else {
            continue;
        };
        if addr.len() != 4 || !addr.chars().all(|c| c.is_ascii_hexdigit()) {
            continue;
        }
        assert_eq!(
            usize::from_str_radix(addr, 16).unwrap(),
            bytes.len(),
            "dump offset"
        );
        let hex = rest.split('|').next().unwrap();
        for tok in hex.split_whitespace() {
            bytes.push(u8::from_str_radix(tok, 16).expect("hex byte"));
        }
    }
    bytes
}

/// Formats `bytes` as the doc shows them (run with `--nocapture` to print).
fn hex_dump(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, row) in bytes.chunks(16).enumerate() {
        let hex: Vec<String> = row.iter().map(|b| format!("{b:02x}")).collect();
        let ascii: String = row
            .iter()
            .map(|&b| if b.is_ascii_graphic() { b as char } else { '.' })
            .collect();
        out.push_str(&format!(
            "{:04x}  {:<47}  |{}|\n",
            i * 16,
            hex.join(" "),
            ascii
        ));
    }
    out
}

#[test]
fn doc_ping_example_matches_encoder() {
    let frame = encode_frame(&ping_example(), PING_PAYLOAD).unwrap();
    println!("{}", hex_dump(&frame));
    assert_eq!(
        doc_ping_bytes(),
        frame,
        "docs/wire.md ping example drifted:\n{}",
        hex_dump(&frame)
    );
    let (h, p, _) = decode_frame(&frame, Limits::default()).unwrap();
    assert_eq!(
        h,
        Header {
            payload_len: 8,
            ..ping_example()
        }
    );
    assert_eq!(p, PING_PAYLOAD);
}

// ---- the fuzz seed corpus ---------------------------------------------------------------

/// Valid frames of several kinds, as `fuzz/seeds/decode_frame/` holds them.
fn seed_frames() -> Vec<(&'static str, Vec<u8>)> {
    let hello = Hello {
        fabric: "lab".into(),
        node: "gpu-01".into(),
        nonce: 0x1234_5678,
        auth: None,
        identity: None,
    };
    let frame = |h: Header, p: &[u8]| encode_frame(&h, p).unwrap();
    let data = Header {
        flags: flags::with_compression(0, 1),
        priority: Priority::High,
        data_type: DataType::Tensor,
        hops: 1,
        src: node_key("gpu-01"),
        dst: node_key("storage-01"),
        transfer_id: 42,
        offset: 4096,
        aux: 8192,
        ..Header::new(FrameKind::Data)
    };
    let ack = Header {
        flags: flags::FINAL,
        transfer_id: 42,
        offset: 8192,
        aux: 8192,
        ..Header::new(FrameKind::Ack)
    };
    let nack = Header {
        flags: flags::FATAL,
        transfer_id: 42,
        aux: hyperfabric::wire::RefusalCode::StoreFailed.wire_code(),
        ..Header::new(FrameKind::Nack)
    };
    let resend = Header {
        transfer_id: 42,
        offset: 0,
        aux: 4096,
        ..Header::new(FrameKind::Nack)
    };
    let mut two = frame(Header::new(FrameKind::Close), b"bye");
    two.extend(frame(ping_example(), PING_PAYLOAD));
    vec![
        (
            "hello.bin",
            frame(Header::new(FrameKind::Hello), &encode_hello(&hello)),
        ),
        (
            "welcome.bin",
            frame(Header::new(FrameKind::Welcome), &encode_hello(&hello)),
        ),
        (
            "reject.bin",
            frame(Header::new(FrameKind::Reject), b"fabric name differs"),
        ),
        ("data.bin", frame(data, &[0xab; 64])),
        (
            "meta.bin",
            frame(
                Header {
                    aux: 8192,
                    ..Header::new(FrameKind::Meta)
                },
                b"weights.bin",
            ),
        ),
        ("ack_final.bin", frame(ack, &[])),
        ("nack_resend.bin", frame(resend, &[])),
        ("nack_fatal.bin", frame(nack, b"disk full")),
        ("ping.bin", frame(ping_example(), PING_PAYLOAD)),
        (
            "pong.bin",
            frame(
                Header {
                    kind: FrameKind::Pong,
                    ..ping_example()
                },
                PING_PAYLOAD,
            ),
        ),
        ("close_then_ping.bin", two),
    ]
}

/// Checks the committed seeds; `HF_WRITE_SEEDS=1 cargo test --test wire_props seeds` rewrites them.
#[test]
fn fuzz_seeds_are_current() {
    let dir = repo_root().join("fuzz/seeds/decode_frame");
    let write = std::env::var_os("HF_WRITE_SEEDS").is_some();
    let hello_dir = repo_root().join("fuzz/seeds/decode_hello");
    if write {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&hello_dir).unwrap();
    }
    let hellos = [
        Hello {
            fabric: "lab".into(),
            node: "gpu-01".into(),
            nonce: 7,
            auth: None,
            identity: None,
        },
        Hello {
            fabric: String::new(),
            node: "ノード".into(),
            nonce: u64::MAX,
            auth: None,
            identity: None,
        },
        Hello {
            fabric: "lab".into(),
            node: "gpu-02".into(),
            nonce: 9,
            auth: Some(hyperfabric::wire::HelloAuth {
                challenge: [0xa5; 32],
                proof: Some([0x5a; 32]),
            }),
            identity: None,
        },
        Hello {
            fabric: "lab".into(),
            node: "gpu-02".into(),
            nonce: 10,
            auth: None,
            identity: Some(hyperfabric::wire::HelloIdentity {
                challenge: [0xa5; 32],
                signature: Some([0x5b; 64]),
            }),
        },
    ];
    for (name, bytes) in seed_frames() {
        decode_frame(&bytes, Limits::default()).unwrap_or_else(|e| panic!("seed {name}: {e}"));
    }
    let frames = seed_frames().into_iter().map(|(n, b)| (dir.join(n), b));
    let bodies = hellos
        .iter()
        .enumerate()
        .map(|(i, h)| (hello_dir.join(format!("hello{i}.bin")), encode_hello(h)));
    for (path, bytes) in frames.chain(bodies) {
        common::seed_file(&path, &bytes, write);
    }
}
