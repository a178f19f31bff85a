//! Checking a job's input against its factory's JSON Schema: at submission, before anything is
//! stored (the service), and at claim, against the schema loaded now (the processor: a reload
//! may have changed it). Each schema compiled once (cached by its text, so a reload that keeps
//! a schema keeps its validator), every failing field named by JSON pointer with its rule.
//!
//! **Invariant:** an input its factory's schema refuses never runs; a factory whose schema
//! admits any JSON (free-form, or a plugin built before SDK schemas) costs no check.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::catalog::FactoryInfo;
use crate::sync;

/// One field of an input that its factory's schema refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Where, as a JSON pointer into the input (`""`: the input itself).
    pub pointer: String,
    /// The rule it breaks, in words.
    pub message: String,
}

/// The most failing fields one answer names (a last entry says when there were more).
const MAX_FIELDS: usize = 20;

/// A field's message echoes the value it refuses: cut to this many characters.
struct Clip(usize);
const MESSAGE: Clip = Clip(300);

impl Clip {
    fn clip(&self, text: &str) -> String {
        match text.char_indices().nth(self.0) {
            Some((at, _)) => format!("{}…", &text[..at]),
            None => text.to_owned(),
        }
    }
}

/// Writes every whole-number float (`2.0`, `1e0`) in `value` as an integer; whether it did.
/// JSON Schema counts them as integers, and the plugin's integer fields (serde's `u8`, `i64`)
/// would refuse them at run time; a float field takes an integer as well.
fn whole_numbers_as_integers(value: &mut serde_json::Value) -> bool {
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            let whole = f.fract() == 0.0 && f.abs() < 9.0e15;
            if whole {
                *value = serde_json::Value::from(f as i64);
            }
            whole
        }
        serde_json::Value::Array(items) => {
            items.iter_mut().fold(false, |changed, v| whole_numbers_as_integers(v) | changed)
        }
        serde_json::Value::Object(map) => {
            map.values_mut().fold(false, |changed, v| whole_numbers_as_integers(v) | changed)
        }
        _ => false,
    }
}

/// `errors` in one line: `/a/b 5 is not of type "string" (type); ...`.
pub fn describe(errors: &[FieldError]) -> String {
    let field =
        |e: &FieldError| if e.pointer.is_empty() { "(the input)".to_owned() } else { e.pointer.clone() };
    errors.iter().map(|e| format!("{} {}", field(e), e.message)).collect::<Vec<_>>().join("; ")
}

/// Compiled validators by schema text.
#[derive(Default)]
pub struct Schemas {
    compiled: RwLock<HashMap<String, Option<Arc<jsonschema::Validator>>>>,
}

impl Schemas {
    /// The input as a submission stores it: checked against `factory`'s schema, and when there
    /// is one to check, with whole-number floats written as integers (parsed once for both).
    pub fn admit(&self, factory: &FactoryInfo, input: String) -> Result<String, Vec<FieldError>> {
        let Some(mut value) = self.checked(factory, &input)? else { return Ok(input) };
        Ok(if whole_numbers_as_integers(&mut value) { value.to_string() } else { input })
    }

    /// Checks `input` (JSON text) against `factory`'s input schema: every failing field.
    pub fn check(&self, factory: &FactoryInfo, input: &str) -> Result<(), Vec<FieldError>> {
        self.checked(factory, input).map(|_| ())
    }

    /// [`check`](Self::check), giving the parsed input when there was a schema to check it
    /// against (`None`: the factory takes any JSON, and the input was not parsed).
    fn checked(
        &self,
        factory: &FactoryInfo,
        input: &str,
    ) -> Result<Option<serde_json::Value>, Vec<FieldError>> {
        let Some(schema) = &factory.input_schema else { return Ok(None) };
        let Some(validator) = self.validator(&factory.name, schema) else { return Ok(None) };
        let value: serde_json::Value = serde_json::from_str(input).map_err(|e| {
            vec![FieldError { pointer: String::new(), message: format!("not valid JSON: {e}") }]
        })?;
        let mut errors = Vec::new();
        let mut more = false;
        for error in validator.iter_errors(&value) {
            if errors.len() >= MAX_FIELDS {
                more = true;
                break;
            }
            named(&error, &mut errors);
        }
        if errors.len() > MAX_FIELDS {
            more = true;
            errors.truncate(MAX_FIELDS);
        }
        if more {
            let message = format!("more fields fail; the first {MAX_FIELDS} are listed");
            errors.push(FieldError { pointer: String::new(), message });
        }
        if errors.is_empty() {
            Ok(Some(value))
        } else {
            Err(errors)
        }
    }

    /// The compiled `schema`; `None` if it admits any JSON (nothing to check), or does not
    /// compile (logged once: the factory then takes any input, as one without a schema does).
    fn validator(&self, factory: &str, schema: &str) -> Option<Arc<jsonschema::Validator>> {
        if let Some(known) = sync::read(&self.compiled).get(schema) {
            return known.clone();
        }
        let parsed = serde_json::from_str::<serde_json::Value>(schema).map_err(|e| e.to_string());
        let compiled = match parsed {
            Ok(schema) if !narrows(&schema) => Ok(None),
            Ok(schema) => jsonschema::validator_for(&schema).map(Some).map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        let compiled = match compiled {
            Ok(validator) => validator.map(Arc::new),
            Err(e) => {
                log::warn!("factory `{factory}`: its input schema does not compile ({e}); its inputs are not checked");
                None
            }
        };
        sync::write(&self.compiled).insert(schema.to_owned(), compiled.clone());
        compiled
    }
}

/// Whether `schema` admits less than any JSON: not `true`, and not an object of annotations
/// only (`$schema`, `title`, `description`).
pub fn narrows(schema: &serde_json::Value) -> bool {
    match schema {
        serde_json::Value::Bool(accepts) => !accepts,
        serde_json::Value::Object(map) => map
            .keys()
            .any(|k| !matches!(k.as_str(), "$schema" | "title" | "description" | "$id" | "$comment")),
        _ => true,
    }
}

/// The fields `error` names. "None of the alternatives matched" (`anyOf`, `oneOf`: an optional
/// value, an enum with data) says nothing of which field is wrong, so the alternative that came
/// closest speaks instead: the one whose errors reach deepest into the input, then the one with
/// fewest type mismatches (the input meant that shape), then the one with fewest errors, then
/// the first.
fn named(error: &jsonschema::ValidationError<'_>, out: &mut Vec<FieldError>) {
    use jsonschema::error::ValidationErrorKind;
    let branches = match error.kind() {
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => context,
        // A missing property is named by its own pointer, not its parent's.
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().map_or_else(|| property.to_string(), str::to_owned);
            let pointer = format!("{}/{}", error.instance_path(), name.replace('~', "~0").replace('/', "~1"));
            out.push(FieldError { pointer, message: "missing (required)".to_owned() });
            return;
        }
        _ => {
            let rule = error.kind().keyword();
            let message = format!("{} ({rule})", MESSAGE.clip(&error.to_string()));
            out.push(FieldError { pointer: error.instance_path().to_string(), message });
            return;
        }
    };
    let score = |branch: &Vec<jsonschema::ValidationError<'static>>| {
        let depth = branch.iter().map(|e| e.instance_path().as_str().matches('/').count()).max().unwrap_or(0);
        let mismatches =
            branch.iter().filter(|e| matches!(e.kind(), ValidationErrorKind::Type { .. })).count();
        (depth, std::cmp::Reverse(mismatches), std::cmp::Reverse(branch.len()))
    };
    // On a tie the first alternative speaks (schemars writes `Option<T>` as T, then null).
    match branches.iter().filter(|b| !b.is_empty()).rev().max_by_key(|b| score(b)) {
        Some(closest) => closest.iter().for_each(|e| named(e, out)),
        None => {
            out.push(FieldError { pointer: error.instance_path().to_string(), message: error.to_string() })
        }
    }
}
