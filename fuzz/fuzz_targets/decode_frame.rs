//! Any bytes fed to the frame decoder: it must never panic, and whatever it accepts must
//! encode back to exactly the bytes it consumed.
#![no_main]

use hyperfabric::wire::{decode_frame, encode_frame, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    // A buffer may hold several frames; decode them one after another as a reader would.
    while let Ok((header, payload, used)) = decode_frame(rest, Limits::default()) {
        let again = encode_frame(&header, payload).expect("a decoded payload fits the hard limit");
        assert_eq!(
            &again[..],
            &rest[..used],
            "re-encoding differs from the decoded bytes"
        );
        let (h2, p2, used2) =
            decode_frame(&again, Limits::default()).expect("re-encoded frame decodes");
        assert_eq!(h2, header);
        assert_eq!(p2, payload);
        assert_eq!(used2, used);
        rest = &rest[used..];
    }
});
