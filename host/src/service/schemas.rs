//! Checking a job's input against its factory's JSON Schema before anything is stored: each
//! schema compiled once (cached by its text, so a reload that keeps a schema keeps its
//! validator), every failing field named by JSON pointer with the rule it breaks.
//!
//! **Invariant:** an input a factory's schema refuses is never stored; a factory without a
//! schema (a plugin built before SDK schemas) takes any JSON.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::error::{FieldError, HostError};
use crate::plugins::FactoryInfo;
use crate::sync;

/// The most failing fields one answer names.
const MAX_FIELDS: usize = 20;

/// Compiled validators by schema text.
#[derive(Default)]
pub(super) struct Schemas {
    compiled: RwLock<HashMap<String, Option<Arc<jsonschema::Validator>>>>,
}

impl Schemas {
    /// Checks `input` (JSON text) against `factory`'s input schema.
    pub fn check(&self, factory: &FactoryInfo, input: &str) -> Result<(), HostError> {
        let Some(schema) = &factory.input_schema else { return Ok(()) };
        let Some(validator) = self.validator(&factory.name, schema) else { return Ok(()) };
        let value: serde_json::Value = serde_json::from_str(input)
            .map_err(|e| HostError::Invalid { field: "input", message: format!("not valid JSON: {e}") })?;
        let mut errors = Vec::new();
        for error in validator.iter_errors(&value) {
            named(&error, &mut errors);
            if errors.len() >= MAX_FIELDS {
                break;
            }
        }
        errors.truncate(MAX_FIELDS);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(HostError::InvalidInput { factory: factory.name.clone(), errors })
        }
    }

    /// The compiled `schema`; `None` if it does not compile (logged once: the factory then
    /// takes any input, as one without a schema does).
    fn validator(&self, factory: &str, schema: &str) -> Option<Arc<jsonschema::Validator>> {
        if let Some(known) = sync::read(&self.compiled).get(schema) {
            return known.clone();
        }
        let compiled = serde_json::from_str::<serde_json::Value>(schema)
            .map_err(|e| e.to_string())
            .and_then(|s| jsonschema::validator_for(&s).map_err(|e| e.to_string()));
        let compiled = match compiled {
            Ok(validator) => Some(Arc::new(validator)),
            Err(e) => {
                log::warn!("factory `{factory}`: its input schema does not compile ({e}); its inputs are not checked");
                None
            }
        };
        sync::write(&self.compiled).insert(schema.to_owned(), compiled.clone());
        compiled
    }
}

/// The fields `error` names. "None of the alternatives matched" (`anyOf`, `oneOf`: an optional
/// value, an enum with data) says nothing of which field is wrong, so the alternative that came
/// closest speaks instead: the one whose errors reach deepest into the input, then the one with
/// fewest type mismatches (the input meant that shape), then the one with fewest errors.
fn named(error: &jsonschema::ValidationError<'_>, out: &mut Vec<FieldError>) {
    use jsonschema::error::ValidationErrorKind;
    let branches = match error.kind() {
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => context,
        _ => {
            let rule = error.kind().keyword();
            out.push(FieldError {
                pointer: error.instance_path().to_string(),
                message: format!("{error} ({rule})"),
            });
            return;
        }
    };
    let score = |branch: &Vec<jsonschema::ValidationError<'static>>| {
        let depth = branch.iter().map(|e| e.instance_path().as_str().matches('/').count()).max().unwrap_or(0);
        let mismatches =
            branch.iter().filter(|e| matches!(e.kind(), ValidationErrorKind::Type { .. })).count();
        (depth, std::cmp::Reverse(mismatches), std::cmp::Reverse(branch.len()))
    };
    match branches.iter().filter(|b| !b.is_empty()).max_by_key(|b| score(b)) {
        Some(closest) => closest.iter().for_each(|e| named(e, out)),
        None => {
            out.push(FieldError { pointer: error.instance_path().to_string(), message: error.to_string() })
        }
    }
}
