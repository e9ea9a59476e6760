//! The seed corpus of the `handshake` fuzz target (`fuzz/seeds/handshake/`): what a dialer
//! sends an acceptor, as frames back to back. `HF_WRITE_SEEDS=1` rewrites the files; without
//! it the test fails when they no longer match the encoder.

use hyperfabric::auth::handshake::Acceptor;
use hyperfabric::auth::Secret;
use hyperfabric::wire::{self, encode_frame, FrameKind, Header, Hello, HelloAuth};
use std::path::PathBuf;

mod common;

fn frame(kind: FrameKind, body: &[u8]) -> Vec<u8> {
    let mut h = Header::new(kind);
    h.src = wire::node_key("gpu-01");
    h.dst = wire::node_key("gpu-02");
    encode_frame(&h, body).unwrap()
}

fn hello(challenge: Option<[u8; 32]>) -> Vec<u8> {
    let body = wire::encode_hello(&Hello {
        fabric: "lab".into(),
        node: "gpu-01".into(),
        nonce: 5,
        auth: challenge.map(|challenge| HelloAuth {
            challenge,
            proof: None,
        }),
        identity: None,
    });
    frame(FrameKind::Hello, &body)
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let with_proof = [hello(Some([1; 32])), frame(FrameKind::Auth, &[9; 32])].concat();
    let rejected = [hello(Some([1; 32])), frame(FrameKind::Reject, b"no")].concat();
    vec![
        ("hello_auth.bin", hello(Some([1; 32]))),
        ("hello_then_proof.bin", with_proof),
        ("hello_then_reject.bin", rejected),
        ("hello_plain.bin", hello(None)),
    ]
}

#[test]
fn handshake_seeds_are_current_and_refused_without_the_key() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/handshake");
    let write = std::env::var_os("HF_WRITE_SEEDS").is_some();
    if write {
        std::fs::create_dir_all(&dir).unwrap();
    }
    let key = Secret::new(&[0x42; 32]).unwrap();
    let acceptor = Acceptor {
        fabric: "lab",
        me: "gpu-02",
        secret: Some(&key),
        keys: None,
        challenge: [7; 32],
    };
    let known = |id: &str, src: u64| id == "gpu-01" && src == wire::node_key(id);
    for (name, bytes) in seeds() {
        // Each seed reaches as far as it should: a hello with a challenge is greeted, and
        // the proof that follows (made without the key) is refused.
        let (h, body, used) = wire::decode_frame(&bytes, Default::default()).unwrap();
        let greeted = acceptor.on_hello(&h, body, known);
        assert_eq!(greeted.is_ok(), name != "hello_plain.bin", "{name}");
        if let (Ok(g), Ok((h, body, _))) = (
            &greeted,
            wire::decode_frame(&bytes[used..], Default::default()),
        ) {
            let theirs = g.awaiting_proof.unwrap();
            assert!(acceptor
                .on_proof((&g.peer, g.observer), &theirs, &h, body)
                .is_err());
        }
        let path = dir.join(name);
        common::seed_file(&path, &bytes, write);
    }
}
