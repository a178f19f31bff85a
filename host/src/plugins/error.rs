//! Why a plugin file was not loaded. Every variant's message names the cause in one line; the
//! path is attached by [`Rejection`](super::Rejection).

use std::path::PathBuf;

use abi_stable::library::LibraryError;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    /// Found by a probe in a throwaway process (it crashed, hung or exited while loading).
    #[error("{0}")]
    Probe(String),
    #[error("{0}; refusing to load it (loading a library runs its code; pass --allow-insecure-plugins to override)")]
    Insecure(String),
    #[error("not a loadable shared library: {0}")]
    NotALibrary(String),
    #[error("not a jobhost plugin: the library exports no jobhost root module")]
    MissingRootModule,
    #[error("built with an incompatible abi_stable ({0})")]
    IncompatibleAbiStable(String),
    #[error("built against plugin SDK {found}, but this host needs a plugin SDK compatible with {expected}")]
    IncompatibleSdk { expected: String, found: String },
    #[error("its plugin ABI layout does not match this host's SDK (built against a different SDK?): {0}")]
    LayoutMismatch(String),
    #[error("its root module failed to initialize: {0}")]
    InitFailed(String),
    #[error("its factory list could not be built: {0}")]
    FactoriesFailed(String),
    #[error("it declares no factories")]
    NoFactories,
    #[error("it declares factory `{name}` twice")]
    DuplicateFactory { name: String, first: PathBuf },
    #[error("factory name {0:?} is invalid: use 1 to 64 characters from a-z, A-Z, 0-9, `_`, `-`, `.`, not `.` or `..`")]
    InvalidFactoryName(String),
}

impl From<LibraryError> for LoadError {
    fn from(err: LibraryError) -> Self {
        match err {
            LibraryError::IncompatibleVersionNumber { expected_version, actual_version, .. } => {
                LoadError::IncompatibleSdk {
                    expected: expected_version.to_string(),
                    found: actual_version.to_string(),
                }
            }
            // The full report is several KB of layout dump; its last lines name the mismatch.
            LibraryError::AbiInstability(report) => LoadError::LayoutMismatch(tail(&report.to_string())),
            LibraryError::InvalidAbiHeader(header) => LoadError::IncompatibleAbiStable(format!("{header:?}")),
            LibraryError::InvalidCAbi { .. } => {
                LoadError::IncompatibleAbiStable("C ABI self-test failed".to_owned())
            }
            LibraryError::GetSymbolError { .. } => LoadError::MissingRootModule,
            LibraryError::OpenError { err, .. } => LoadError::NotALibrary(err.to_string()),
            other => LoadError::InitFailed(one_line(&other.to_string())),
        }
    }
}

/// The part of abi_stable's layout report that names the mismatch: from its last `Error:`
/// line to the end (the rest is a dump of both layouts), on one line, at most 400 characters.
fn tail(report: &str) -> String {
    const MAX: usize = 400;
    let lines: Vec<&str> = report.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let start = lines.iter().rposition(|l| l.starts_with("Error:")).unwrap_or(lines.len().saturating_sub(4));
    let summary = lines[start..].join(" ");
    match summary.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &summary[..cut]),
        None => summary,
    }
}

/// `LibraryError`'s Display has leading and trailing newlines; rejections are one line each.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
