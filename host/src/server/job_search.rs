//! The text filters of the job lists (`error=`, `input=`): searched, not indexed, so a page
//! examines at most [`SEARCH_MAX`] jobs and says how many it did (`searched`): at depth a
//! search goes on page by page rather than holding a request for minutes.

use serde_json::Value;

use super::error::{ApiError, ApiResult};
use crate::job::Job;
use crate::text::clip;

/// Jobs one page of a search examines at most.
pub const SEARCH_MAX: usize = 10_000;

/// Bytes of jobs' data (input, result, errors) one page of a search examines at most: 10,000
/// jobs with 64 KiB inputs would otherwise be seconds of parsing per page.
pub const SEARCH_MAX_BYTES: usize = 32 * 1024 * 1024;

/// Jobs read from the store at a time while searching.
pub const SEARCH_CHUNK: usize = 256;

/// Longest text a filter takes.
const MAX_TEXT: usize = 200;

/// What the text filters ask for; empty when neither is given.
#[derive(Debug, Default)]
pub struct Search {
    /// Lowercased: matched against each error of the history, lowercased.
    error: Option<String>,
    /// A top-level input field and the value it must have.
    input: Option<(String, String)>,
}

impl Search {
    /// Checks `error` and `input` (`name=value`) as the list's parameters give them.
    pub fn parse(error: Option<&str>, input: Option<&str>) -> ApiResult<Search> {
        let error = match error.filter(|e| !e.is_empty()) {
            Some(e) if e.chars().count() > MAX_TEXT => {
                return Err(ApiError::invalid_request(format!("error: longer than {MAX_TEXT} characters")))
            }
            other => other.map(str::to_lowercase),
        };
        let input = match input.filter(|i| !i.is_empty()) {
            None => None,
            Some(text) => match text.split_once('=') {
                Some((name, value)) if !name.is_empty() && text.chars().count() <= MAX_TEXT => {
                    Some((name.to_owned(), value.to_owned()))
                }
                _ => {
                    return Err(ApiError::invalid_request(format!(
                        "input: `{}` is not `field=value` (a top-level field of the input and its value, at most {MAX_TEXT} characters)",
                        clip(text)
                    )))
                }
            },
        };
        Ok(Search { error, input })
    }

    pub fn is_empty(&self) -> bool {
        self.error.is_none() && self.input.is_none()
    }

    pub fn matches(&self, job: &Job) -> bool {
        let error = self
            .error
            .as_ref()
            .is_none_or(|text| job.errors.iter().any(|e| message(e).to_lowercase().contains(text.as_str())));
        error && self.input.as_ref().is_none_or(|(name, value)| input_field_is(&job.input, name, value))
    }
}

/// An error of the history without the time it was recorded (`[RFC 3339] message`): a search
/// for `2026` or `[` is about what went wrong, not when.
fn message(error: &str) -> &str {
    match error.strip_prefix('[').and_then(|rest| rest.split_once("] ")) {
        Some((_, text)) => text,
        None => error,
    }
}

/// Whether the input's top-level field `name` is `value`: a string's text, or any other
/// value's JSON (`5`, `true`, `null`), compared as JSON (`5` is not `5.0`, spaces aside).
fn input_field_is(input: &str, name: &str, value: &str) -> bool {
    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(input) else { return false };
    match fields.get(name) {
        Some(Value::String(text)) => text == value,
        Some(other) => serde_json::from_str::<Value>(value).is_ok_and(|wanted| wanted == *other),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(input: &str, errors: &[&str]) -> Job {
        let new = crate::job::NewJob { input: input.into(), ..crate::job::NewJob::default() };
        Job {
            errors: errors.iter().map(|e| e.to_string()).collect(),
            ..Job::new(crate::job::JobId(1), new, 0)
        }
    }

    #[test]
    fn errors_match_in_any_case_and_input_fields_by_their_text_or_json() {
        let search = Search::parse(Some("Timed OUT"), None).unwrap();
        assert!(search.matches(&job("{}", &["first", "[t] job timed out after 5s"])));
        let by_time = Search::parse(Some("2026-12"), None).unwrap();
        assert!(
            !by_time.matches(&job("{}", &["[2026-12-04T10:00:00+00:00] refused"])),
            "the time is not searched"
        );
        assert!(by_time.matches(&job("{}", &["[2026-12-04T10:00:00+00:00] no data for 2026-12"])));
        assert!(!search.matches(&job("{}", &["refused"])));
        let by_customer = Search::parse(None, Some("customer=acme")).unwrap();
        assert!(by_customer.matches(&job(r#"{"customer":"acme","n":5}"#, &[])));
        assert!(!by_customer.matches(&job(r#"{"customer":"acme2"}"#, &[])));
        assert!(!by_customer.matches(&job(r#""customer=acme""#, &[])));
        assert!(Search::parse(None, Some("n=5")).unwrap().matches(&job(r#"{"n":5}"#, &[])));
        assert!(Search::parse(None, Some("urgent=true")).unwrap().matches(&job(r#"{"urgent":true}"#, &[])));
        assert!(Search::parse(None, Some("=x")).is_err());
        assert!(Search::parse(None, Some("novalue")).is_err());
        assert!(Search::parse(Some(&"x".repeat(201)), None).is_err());
        assert!(Search::parse(Some(""), Some("")).unwrap().is_empty());
    }
}
