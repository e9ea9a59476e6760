//! Any bytes as what a dialer sends an acceptor that holds a fabric secret: the frames are
//! decoded one after another and fed to the acceptor's handshake (Hello, then Auth). No input
//! may panic, and no input may get past the proof: the fuzzer does not know the key, so an
//! accepted Auth frame would be a forged HMAC.
#![no_main]

use hyperfabric::auth::handshake::Acceptor;
use hyperfabric::auth::Secret;
use hyperfabric::wire::{decode_frame, node_key, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(key) = Secret::new(&[0x42; 32]) else {
        return;
    };
    let acceptor = Acceptor {
        fabric: "lab",
        me: "gpu-02",
        secret: Some(&key),
        keys: None,
        challenge: [7; 32],
    };
    let known = |id: &str, src: u64| id == "gpu-01" && src == node_key(id);
    let mut rest = data;
    let Ok((header, body, used)) = decode_frame(rest, Limits::default()) else {
        return;
    };
    rest = &rest[used..];
    let Ok(greeted) = acceptor.on_hello(&header, body, known) else {
        return;
    };
    let theirs = greeted
        .awaiting_proof
        .expect("an acceptor with a secret always waits for a proof");
    let Ok((header, body, _)) = decode_frame(rest, Limits::default()) else {
        return;
    };
    assert!(
        acceptor
            .on_proof((&greeted.peer, greeted.observer), &theirs, &header, body)
            .is_err(),
        "a proof made without the key was accepted"
    );
});
