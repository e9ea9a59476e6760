//! Any bytes fed to the hello/welcome body decoder: no panic, and an accepted body
//! re-encodes to the same bytes (the format has exactly one encoding per value).
#![no_main]

use hyperfabric::wire::{decode_hello, encode_hello, FrameKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(hello) = decode_hello(FrameKind::Hello, data) {
        assert_eq!(
            encode_hello(&hello),
            data,
            "hello body does not re-encode identically"
        );
        assert_eq!(decode_hello(FrameKind::Welcome, data), Ok(hello));
    }
});
