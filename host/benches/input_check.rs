//! The cost of checking one job's input against its factory's JSON Schema at submission: a
//! typical typed input (an order of nested objects, an enum, an optional field and three
//! lines) against the schema schemars derives for it, validator compiled once as the host
//! does. Run with `cargo bench -p jobhost --bench input_check`.
//!
//! A plain timing loop (no benchmark framework): the median of several runs of many checks.

use std::time::Instant;

use jobhost::plugins::{FactoryDefaults, FactoryInfo, Schemas};

const SCHEMA: &str = r##"{"$schema":"https://json-schema.org/draft/2020-12/schema","title":"Order","type":"object","properties":{"customer":{"$ref":"#/$defs/Customer"},"items":{"type":"array","items":{"$ref":"#/$defs/Line"},"minItems":1},"priority":{"$ref":"#/$defs/Priority"},"note":{"type":["string","null"]}},"additionalProperties":false,"required":["customer","items","priority"],"$defs":{"Customer":{"type":"object","properties":{"name":{"type":"string"},"age":{"type":["integer","null"],"format":"uint8","minimum":18,"maximum":255}},"required":["name"]},"Line":{"type":"object","properties":{"sku":{"type":"string"},"quantity":{"type":"integer","format":"uint32","minimum":1,"maximum":100}},"required":["sku","quantity"]},"Priority":{"type":"string","enum":["low","high"]}}}"##;

const INPUT: &str = r#"{"customer":{"name":"Ada","age":36},"items":[{"sku":"A-1","quantity":2},{"sku":"B-2","quantity":1},{"sku":"C-3","quantity":5}],"priority":"high","note":null}"#;

fn main() {
    let factory = FactoryInfo {
        name: "pack".into(),
        description: String::new(),
        example: None,
        plugin: "bench".into(),
        plugin_version: "0".into(),
        path: Default::default(),
        defaults: FactoryDefaults::default(),
        input_schema: Some(SCHEMA.into()),
        output_schema: None,
    };
    let schemas = Schemas::default();
    assert!(schemas.check(&factory, INPUT).is_ok(), "the input fits the schema");
    assert!(schemas.check(&factory, r#"{"items": []}"#).is_err(), "a bad input is refused");
    const CHECKS: u32 = 100_000;
    let mut runs: Vec<f64> = (0..7)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..CHECKS {
                std::hint::black_box(schemas.check(&factory, std::hint::black_box(INPUT)).is_ok());
            }
            started.elapsed().as_secs_f64() * 1e9 / f64::from(CHECKS)
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    println!("input check ({} bytes, parse + validate): median {:.0} ns", INPUT.len(), runs[runs.len() / 2]);
}
