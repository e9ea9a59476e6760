//! Fault-injection rules (see [`crate::transport::fault`]) from their three sources: the
//! fabric file's `[[faults]]`, the inline rules of `HF_FAULTS`, and `HF_FAULTS_FILE` (a TOML
//! file with only `[[faults]]`). Every refusal names the source, the field and the reason.

use super::FabricConfig;
use crate::error::Error;
use crate::transport::fault::{FaultInjector, FaultRule, FileLoader, ENV_FILE, ENV_RULES};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

/// One `[[faults]]` entry as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFault {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default)]
    pub drop: f64,
    #[serde(default)]
    pub corrupt: f64,
    #[serde(default)]
    pub duplicate: f64,
    #[serde(default)]
    pub delay_us: u64,
    #[serde(default)]
    pub cut: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// `HF_FAULTS_FILE`: nothing but `[[faults]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsFile {
    #[serde(default)]
    faults: Vec<RawFault>,
}

/// (field path, reason)
type Problem = (String, String);

/// Checks the entries against the fabric's node ids.
pub(crate) fn build(raw: &[RawFault], nodes: &[&str]) -> Result<Vec<FaultRule>, Problem> {
    raw.iter()
        .enumerate()
        .map(|(i, r)| rule(r, nodes).map_err(|(f, why)| (format!("faults[{i}].{f}"), why)))
        .collect()
}

fn rule(r: &RawFault, nodes: &[&str]) -> Result<FaultRule, (&'static str, String)> {
    for (field, id) in [("from", &r.from), ("to", &r.to)] {
        if let Some(id) = id {
            if !nodes.contains(&id.as_str()) {
                return Err((field, format!("unknown node \"{id}\" (not in [[nodes]])")));
            }
        }
    }
    if r.from.is_some() && r.from == r.to {
        return Err((
            "to",
            "a node never writes to itself: the rule would never apply".into(),
        ));
    }
    let rule = FaultRule {
        from: r.from.clone(),
        to: r.to.clone(),
        drop: r.drop,
        corrupt: r.corrupt,
        duplicate: r.duplicate,
        delay_us: r.delay_us,
        cut: r.cut,
        seed: r.seed,
    };
    rule.check()?;
    Ok(rule)
}

/// The entry the fabric file writes for `rule` (what [`build`] reads back equal).
pub(crate) fn raw_of(rule: &FaultRule) -> RawFault {
    RawFault {
        from: rule.from.clone(),
        to: rule.to.clone(),
        drop: rule.drop,
        corrupt: rule.corrupt,
        duplicate: rule.duplicate,
        delay_us: rule.delay_us,
        cut: rule.cut,
        seed: rule.seed,
    }
}

/// The rules of a file of `[[faults]]` (`HF_FAULTS_FILE`); `origin` names it in errors.
pub fn parse_file(text: &str, origin: &str, nodes: &[&str]) -> Result<Vec<FaultRule>, Error> {
    let file: FaultsFile = super::raw::parse_as(text, origin)?;
    build(&file.faults, nodes).map_err(|(f, why)| Error::config(origin, f, why))
}

/// The rules of `HF_FAULTS`: rules separated by `;`, `key=value` fields by `,`, e.g.
/// `from=a,to=b,drop=0.01,corrupt=0.001;from=b,delay_us=2000`.
pub fn parse_inline(text: &str, nodes: &[&str]) -> Result<Vec<FaultRule>, Error> {
    let mut raws = Vec::new();
    for (i, spec) in text
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .enumerate()
    {
        let err = |field: &str, why: String| {
            Error::config(ENV_RULES, format!("faults[{i}].{field}"), why)
        };
        let mut r = RawFault::default();
        let mut seen: Vec<&str> = Vec::new();
        for field in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((key, value)) = field.split_once('=').map(|(k, v)| (k.trim(), v.trim()))
            else {
                return Err(err(field, "expected key=value".into()));
            };
            if seen.contains(&key) {
                return Err(err(key, "given twice in one rule".into()));
            }
            seen.push(key);
            let prob = |v: &str| {
                v.parse::<f64>()
                    .map_err(|e| err(key, format!("\"{v}\" is not a number: {e}")))
            };
            let int = |v: &str| {
                v.parse::<u64>()
                    .map_err(|e| err(key, format!("\"{v}\" is not a whole number: {e}")))
            };
            match key {
                "from" => r.from = Some(value.to_owned()),
                "to" => r.to = Some(value.to_owned()),
                "drop" => r.drop = prob(value)?,
                "corrupt" => r.corrupt = prob(value)?,
                "duplicate" => r.duplicate = prob(value)?,
                "cut" => r.cut = prob(value)?,
                "delay_us" => r.delay_us = int(value)?,
                "seed" => r.seed = Some(int(value)?),
                _ => {
                    return Err(err(
                        key,
                        "unknown field (expected from, to, drop, corrupt, duplicate, delay_us, cut or seed)"
                            .into(),
                    ))
                }
            }
        }
        raws.push(r);
    }
    build(&raws, nodes).map_err(|(f, why)| Error::config(ENV_RULES, f, why))
}

/// The fault injector of node `me`: the fabric file's rules, then those of `HF_FAULTS`, and
/// `HF_FAULTS_FILE` if set (`env` reads the environment). `None` when no rule can apply.
pub fn injector_for(
    cfg: &FabricConfig,
    me: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<Arc<FaultInjector>>, Error> {
    let ids: Vec<&str> = cfg.nodes.iter().map(|n| n.id()).collect();
    let mut rules: Vec<(FaultRule, String)> = cfg
        .faults
        .iter()
        .map(|r| (r.clone(), cfg.source.clone()))
        .collect();
    if let Some(text) = env(ENV_RULES) {
        rules.extend(
            parse_inline(&text, &ids)?
                .into_iter()
                .map(|r| (r, ENV_RULES.to_owned())),
        );
    }
    let file = env(ENV_FILE).filter(|p| !p.trim().is_empty()).map(|path| {
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        let origin = path.clone();
        let load: FileLoader = Box::new(move |text: &str| {
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            parse_file(text, &origin, &ids).map_err(|e| e.to_string())
        });
        (PathBuf::from(path), load)
    });
    Ok(FaultInjector::new(me, rules, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &[&str] = &["a", "b"];

    fn field_of(e: Error) -> (String, String, String) {
        match e {
            Error::Config {
                file,
                field,
                reason,
            } => (file, field, reason),
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn inline_rules_parse() {
        let rules = parse_inline(
            "from=a,to=b,drop=0.01,corrupt=0.001;from=b,delay_us=2000, seed=9,duplicate=0.5;",
            NODES,
        )
        .unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].from.as_deref(), Some("a"));
        assert_eq!(rules[0].to.as_deref(), Some("b"));
        assert_eq!(
            (rules[0].drop, rules[0].corrupt, rules[0].cut),
            (0.01, 0.001, 0.0)
        );
        assert_eq!(
            (rules[1].delay_us, rules[1].seed, rules[1].to.as_deref()),
            (2000, Some(9), None)
        );
        assert_eq!((rules[0].duplicate, rules[1].duplicate), (0.0, 0.5));
        assert!(parse_inline("", NODES).unwrap().is_empty());
    }

    #[test]
    fn inline_errors_name_hf_faults_and_the_field() {
        let cases = [
            ("drop=2", "faults[0].drop", "[0, 1]"),
            ("duplicate=1.5", "faults[0].duplicate", "[0, 1]"),
            ("drop=0.1;corrupt=x", "faults[1].corrupt", "not a number"),
            ("cut=-0.5", "faults[0].cut", "[0, 1]"),
            ("delay_us=1.5", "faults[0].delay_us", "whole number"),
            ("from=zz", "faults[0].from", "unknown node \"zz\""),
            ("to=a,from=a", "faults[0].to", "itself"),
            ("speed=3", "faults[0].speed", "unknown field"),
            ("drop", "faults[0].drop", "key=value"),
            ("drop=0.1,drop=0.2", "faults[0].drop", "twice"),
            ("drop=NaN", "faults[0].drop", "[0, 1]"),
        ];
        for (text, field, fragment) in cases {
            let (file, got, reason) = field_of(parse_inline(text, NODES).unwrap_err());
            assert_eq!(file, "HF_FAULTS");
            assert_eq!(got, field, "{text}: {reason}");
            assert!(
                reason.contains(fragment),
                "{text}: {reason:?} lacks {fragment:?}"
            );
        }
    }

    #[test]
    fn fault_files_parse_and_refuse_by_field() {
        let good =
            "[[faults]]\nfrom = \"a\"\ndrop = 0.5\n\n[[faults]]\nto = \"a\"\ndelay_us = 10\n";
        let rules = parse_file(good, "f.toml", NODES).unwrap();
        assert_eq!(rules.len(), 2);
        assert!(parse_file("", "f.toml", NODES).unwrap().is_empty());
        let cases = [
            ("[[faults]]\ndrop = 1.5\n", "faults[0].drop"),
            ("[[faults]]\nto = \"c\"\n", "faults[0].to"),
            ("[[faults]]\ndorp = 0.1\n", "faults[0].dorp"),
            ("[fabric]\nname = \"x\"\n", "fabric"),
            ("[[faults]]\ndrop = \"lots\"\n", "faults[0].drop"),
        ];
        for (text, field) in cases {
            let (file, got, reason) = field_of(parse_file(text, "f.toml", NODES).unwrap_err());
            assert_eq!((file.as_str(), got.as_str()), ("f.toml", field), "{reason}");
        }
    }

    #[test]
    fn injector_merges_file_and_environment() {
        let text = "[fabric]\nname = \"f\"\n[[nodes]]\nid = \"a\"\nhardware = \"cpu-cluster\"\n[[nodes]]\nid = \"b\"\nhardware = \"cpu-cluster\"\n[[faults]]\nfrom = \"b\"\ndrop = 0.1\n";
        let cfg = FabricConfig::from_toml_str(text, "f.toml").unwrap();
        let none = |_: &str| None;
        assert!(
            injector_for(&cfg, "a", none).unwrap().is_none(),
            "b's rule is not a's"
        );
        assert!(injector_for(&cfg, "b", none).unwrap().is_some());
        let env = |k: &str| (k == ENV_RULES).then(|| "to=b,cut=0.5".to_owned());
        let f = injector_for(&cfg, "a", env).unwrap().unwrap();
        assert!(f.may_apply_to("b"));
        let bad = |k: &str| (k == ENV_RULES).then(|| "drop=x".to_owned());
        let (file, field, _) = field_of(injector_for(&cfg, "a", bad).err().unwrap());
        assert_eq!(
            (file.as_str(), field.as_str()),
            ("HF_FAULTS", "faults[0].drop")
        );
    }
}
