//! The table of resource-specification cases, `proto/spec-cases.json`,
//! checked against [`protocol::validate`].
//!
//! The Python validator (`python/src/rhtex/spec.py`) is checked against the
//! same table (`python/tests/test_spec_table.py`), so the two cannot drift:
//! one source of truth, two readers. Each case gives a request and either
//! the validated resources (every field) or the exact error message.

use protocol::{validate, ResourceRequest, SpecValue};
use serde_json::Value;
use std::path::Path;

fn table() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto/spec-cases.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("{} is not JSON: {error}", path.display()))
}

/// A JSON value of the table as the value a msgpack peer would send:
/// numbers with a decimal point are floats, `{"$float": "nan"}` (or
/// `"inf"`, `"-inf"`) the float that JSON cannot write.
fn spec_value(value: &Value) -> SpecValue {
    match value {
        Value::Null => SpecValue::Null,
        Value::Bool(flag) => SpecValue::Bool(*flag),
        Value::Number(number) => match number.as_i64() {
            Some(integer) if !number.is_f64() => SpecValue::Int(integer),
            _ => SpecValue::Float(number.as_f64().expect("a number the table can hold")),
        },
        Value::String(text) => SpecValue::Text(text.clone()),
        Value::Object(map) => match map.get("$float").and_then(Value::as_str) {
            Some(text) => SpecValue::Float(text.parse().expect("nan, inf or -inf")),
            None => panic!("unexpected map value {value}"),
        },
        Value::Array(_) => panic!("unexpected list value {value}"),
    }
}

#[test]
fn every_case_of_the_table() {
    let table = table();
    let cases = table["cases"].as_array().expect("a list of cases");
    assert!(cases.len() >= 50, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().expect("a name");
        let mut request = ResourceRequest::new();
        for (key, value) in case["request"].as_object().expect("a request map") {
            request.insert(key, spec_value(value));
        }
        let actual = validate(&request);
        match (&actual, case.get("valid"), case.get("error")) {
            (Ok(resources), Some(expected), None) => {
                let actual_json = serde_json::to_value(resources).expect("serializable");
                if &actual_json != expected {
                    failures.push(format!("{name}: got {actual_json}, expected {expected}"));
                }
            }
            (Err(error), None, Some(expected)) => {
                if Some(error.to_string().as_str()) != expected.as_str() {
                    failures.push(format!("{name}: got error {error:?}, expected {expected}"));
                }
            }
            _ => failures.push(format!(
                "{name}: got {actual:?}, expected valid {:?} / error {:?}",
                case.get("valid"),
                case.get("error")
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
