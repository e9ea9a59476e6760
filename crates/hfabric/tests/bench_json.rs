//! `hfabric bench --json` emits a report that validates against docs/bench.schema.json and
//! whose figures are consistent with each other.

mod support;

use serde_json::Value;
use support::*;

/// A validator for the JSON Schema subset the report schema uses: type, const, enum,
/// required, properties, additionalProperties = false, items.
fn validate(schema: &Value, v: &Value, path: &str) -> Result<(), String> {
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        let ok = match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "boolean" => v.is_boolean(),
            "integer" => v.is_u64() || v.is_i64(),
            "number" => v.is_number(),
            other => return Err(format!("{path}: schema uses unsupported type {other}")),
        };
        if !ok {
            return Err(format!("{path}: expected {t}, got {v}"));
        }
    }
    if let Some(c) = schema.get("const") {
        if c != v {
            return Err(format!("{path}: expected {c}, got {v}"));
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            return Err(format!("{path}: {v} is not one of {e:?}"));
        }
    }
    if let Some(req) = schema.get("required").and_then(Value::as_array) {
        for r in req.iter().filter_map(Value::as_str) {
            if v.get(r).is_none() {
                return Err(format!("{path}: missing required `{r}`"));
            }
        }
    }
    if let (Some(props), Some(obj)) = (
        schema.get("properties").and_then(Value::as_object),
        v.as_object(),
    ) {
        for (k, val) in obj {
            match props.get(k) {
                Some(s) => validate(s, val, &format!("{path}.{k}"))?,
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return Err(format!("{path}: unexpected property `{k}`"))
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, item) in arr.iter().enumerate() {
            validate(items, item, &format!("{path}[{i}]"))?;
        }
    }
    Ok(())
}

fn schema() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/bench.schema.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The report of a bench run that must have succeeded, checked against the schema.
fn valid_report(out: &std::process::Output) -> Value {
    let r = report_of(out);
    validate(&schema(), &r, "$").unwrap();
    r
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn validator_catches_schema_violations() {
    let s = schema();
    let bad = serde_json::json!({"schema": "hyperfabric.bench.v1"});
    assert!(validate(&s, &bad, "$")
        .unwrap_err()
        .contains("missing required"));
    let s2 = serde_json::json!({"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": false});
    assert!(validate(&s2, &serde_json::json!({"a": 1.5}), "$").is_err());
    assert!(validate(&s2, &serde_json::json!({"b": 1}), "$").is_err());
    assert!(validate(&s2, &serde_json::json!({"a": 3}), "$").is_ok());
}

#[test]
fn bench_all_json_validates_and_is_consistent() {
    let out = hfabric(&[
        "bench",
        "all",
        "--json",
        "--iterations",
        "2000",
        "--warmup",
        "100",
        "--sizes",
        "1024,1048576",
        "--seconds-per-size",
        "0.5",
        "--streams",
        "3",
        "--duration",
        "1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout, nothing else");
    validate(&schema(), &r, "$").unwrap();
    assert_eq!(r["started_local_fabric"], true);

    let l = &r["tests"]["latency"]["figures"];
    assert_eq!((u(&l["sent"]), u(&l["received"])), (2000, 2000));
    assert!(u(&l["min_ns"]) > 0);
    assert!(u(&l["min_ns"]) <= u(&l["median_ns"]) && u(&l["median_ns"]) <= u(&l["p99_ns"]));
    assert!(u(&l["p99_ns"]) <= u(&l["p999_ns"]) && u(&l["p999_ns"]) <= u(&l["max_ns"]));

    for t in r["tests"]["throughput"]["results"].as_array().unwrap() {
        assert_eq!(u(&t["bytes"]), u(&t["messages"]) * u(&t["message_bytes"]));
        let rate = u(&t["bytes"]) as f64 * 8.0 / f(&t["seconds"]) / 1e9;
        assert!(
            (rate - f(&t["gbit_per_s"])).abs() <= 1e-6 * rate.max(1.0),
            "{t}"
        );
        assert!(u(&t["messages"]) > 0 && u(&t["median_transfer_ns"]) <= u(&t["p99_transfer_ns"]));
    }

    let c = &r["tests"]["concurrent"];
    let per: Vec<&Value> = c["per_stream"].as_array().unwrap().iter().collect();
    assert_eq!(per.len(), 3);
    assert_eq!(
        per.iter().map(|s| u(&s["bytes"])).sum::<u64>(),
        u(&c["aggregate"]["bytes"])
    );
    let agg = u(&c["aggregate"]["bytes"]) as f64 * 8.0 / f(&c["aggregate"]["seconds"]) / 1e9;
    assert!((agg - f(&c["aggregate"]["gbit_per_s"])).abs() <= 1e-6 * agg.max(1.0));
}

#[test]
fn single_tests_and_bad_options() {
    let out = hfabric(&[
        "bench",
        "latency",
        "--json",
        "--iterations",
        "300",
        "--warmup",
        "10",
    ]);
    let r = valid_report(&out);
    assert!(r["tests"].get("throughput").is_none() && r["tests"].get("concurrent").is_none());
    let out = hfabric(&["bench", "--transport", "carrier-pigeon"]);
    assert_eq!(out.status.code(), Some(2));
    // Both transports really carry the latency test between the two local processes.
    for t in ["tcp", "shm"] {
        let out = hfabric(&[
            "bench",
            "latency",
            "--json",
            "--transport",
            t,
            "--iterations",
            "200",
            "--warmup",
            "10",
        ]);
        assert!(
            out.status.success(),
            "{t}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["tests"]["latency"]["transport"], t);
    }
    let out = hfabric(&["bench", "--duration", "-1"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bench_qos_json_validates() {
    let out = hfabric(&[
        "bench",
        "qos",
        "--json",
        "--iterations",
        "300",
        "--warmup",
        "20",
    ]);
    let r = valid_report(&out);
    let q = &r["tests"]["qos"];
    for k in ["idle", "loaded_qos_on", "loaded_qos_off"] {
        assert_eq!(u(&q[k]["received"]), 300, "{k}");
        assert!(u(&q[k]["median_ns"]) <= u(&q[k]["p99_ns"]));
    }
    assert!(f(&q["bulk_gbit_per_s_qos_on"]) > 0.0 && f(&q["bulk_gbit_per_s_qos_off"]) > 0.0);
    assert!(
        r["tests"].get("latency").is_none(),
        "qos alone runs only qos"
    );
}

#[test]
fn bench_loan_api_moves_messages_through_the_pool() {
    let out = hfabric(&[
        "bench",
        "throughput",
        "--json",
        "--api",
        "loan",
        "--sizes",
        "1048576,4096",
        "--seconds-per-size",
        "0.3",
    ]);
    let r = valid_report(&out);
    let t = &r["tests"]["throughput"];
    assert_eq!(
        (t["api"].as_str(), t["transport"].as_str()),
        (Some("loan"), Some("shm"))
    );
    for res in t["results"].as_array().unwrap() {
        assert!(u(&res["messages"]) > 0, "{res}");
        assert_eq!(
            u(&res["bytes"]),
            u(&res["messages"]) * u(&res["message_bytes"])
        );
    }
}

#[test]
fn bench_verify_payload_is_reported() {
    let out = hfabric(&[
        "bench",
        "throughput",
        "--json",
        "--verify-payload",
        "--sizes",
        "1048576",
        "--seconds-per-size",
        "0.3",
    ]);
    let r = valid_report(&out);
    let t = &r["tests"]["throughput"];
    assert_eq!(t["verify_payload"].as_bool(), Some(true), "{t}");
    assert!(u(&t["results"][0]["messages"]) > 0, "{t}");
}
