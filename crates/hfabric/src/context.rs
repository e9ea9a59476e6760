//! What every reporting command's `--json` carries besides its own figures: the effective
//! configuration (the fabric file after command-line overrides) and the machine it ran on,
//! so a report read later says what was measured where.

use crate::common::{CliError, CliResult};
use hyperfabric::config::FabricConfig;
use serde::Serialize;

/// The machine a report comes from.
#[derive(Serialize, Clone, Debug)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub kernel: String,
}

/// This machine: CPU model (`/proc/cpuinfo`), usable cores, kernel release.
pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split(':').nth(1))
        })
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    Machine {
        cpu_model,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel,
    }
}

/// `report` as a JSON object with `config` (when given) and `machine` added (keys the report
/// already has are kept as they are).
pub fn with_context(
    report: &impl Serialize,
    config: Option<&FabricConfig>,
) -> CliResult<serde_json::Value> {
    let bad = |e: serde_json::Error| CliError::failed(format!("cannot write the report: {e}"));
    let mut value = serde_json::to_value(report).map_err(bad)?;
    if let serde_json::Value::Object(map) = &mut value {
        if let Some(cfg) = config {
            if !map.contains_key("config") {
                map.insert("config".into(), serde_json::to_value(cfg).map_err(bad)?);
            }
        }
        if !map.contains_key("machine") {
            map.insert(
                "machine".into(),
                serde_json::to_value(machine()).map_err(bad)?,
            );
        }
    }
    Ok(value)
}

/// Prints `report` as pretty JSON with its context (see [`with_context`]).
pub fn print_report(report: &impl Serialize, config: Option<&FabricConfig>) -> CliResult {
    crate::common::print_json(&with_context(report, config)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_gain_config_and_machine_but_keep_their_own_keys() {
        let cfg = FabricConfig::from_toml_str(
            crate::cmd::bench::LOCAL_FABRIC,
            "<embedded examples/local.toml>",
        )
        .unwrap();
        let v = with_context(&serde_json::json!({"a": 1, "machine": "mine"}), Some(&cfg)).unwrap();
        assert_eq!(v["a"], 1);
        assert_eq!(v["machine"], "mine");
        assert_eq!(v["config"]["name"], "local");
        let v = with_context(&serde_json::json!({}), None).unwrap();
        assert!(v.get("config").is_none());
        assert!(v["machine"]["cores"].as_u64().unwrap() >= 1);
    }
}
