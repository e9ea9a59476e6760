//! Any text fed to the fabric-file parser and checker: no panic, every refusal is a typed
//! configuration error, and an accepted file renders to text that reads back equal.
#![no_main]

use hyperfabric::config::FabricConfig;
use hyperfabric::Error;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match FabricConfig::from_toml_str(text, "fuzz.toml") {
        Ok(cfg) => {
            let rendered = cfg.to_toml_string();
            let again = FabricConfig::from_toml_str(&rendered, "fuzz.toml")
                .unwrap_or_else(|e| panic!("rendered file refused: {e}\n{rendered}"));
            assert_eq!(again, cfg, "rendered file reads back different\n{rendered}");
        }
        Err(Error::Config { .. }) => {}
        Err(other) => panic!("not a configuration error: {other:?}"),
    }
});
