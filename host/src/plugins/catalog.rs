//! What the host knows of its plugins without running their code: each plugin file, each
//! factory (name, description, example, defaults, owning file), the files rejected with the
//! reason, and factory names that two files provide. Whoever loaded the plugins builds it
//! (this process with `isolation = "none"`, a worker process otherwise, which sends it over the
//! worker protocol), so validation, `/v1/factories` and `/v1/plugins` need no plugin code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A loaded plugin, as reported to operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub sdk_version: String,
    pub path: PathBuf,
    /// The factories it registered (a name another file keeps is not among them).
    pub factories: Vec<String>,
}

/// A factory's declared defaults; `None` means "use the host's".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactoryDefaults {
    pub max_attempts: Option<u32>,
    pub timeout: Option<Duration>,
    pub retry_delay: Option<Duration>,
}

/// A registered factory's description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactoryInfo {
    pub name: String,
    pub description: String,
    pub example: Option<String>,
    pub plugin: String,
    pub plugin_version: String,
    /// The plugin file it comes from.
    pub path: PathBuf,
    pub defaults: FactoryDefaults,
    /// The JSON Schema of its input, as JSON text (`None`: a plugin built before SDK schemas,
    /// which takes any JSON).
    pub input_schema: Option<String>,
    /// The JSON Schema of its result, likewise.
    pub output_schema: Option<String>,
}

/// A plugin file (or directory) that was not loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    pub path: PathBuf,
    pub reason: String,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

/// Two plugin files provide the same factory name: `owner` has it, `other` does not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    pub factory: String,
    pub owner: PathBuf,
    pub other: PathBuf,
    pub resolution: Resolution,
}

/// How a conflict was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Resolution {
    /// The config's `[factories]` table names the owner.
    Pinned,
    /// A reload found a second file for a factory already loaded: the loaded owner keeps it.
    KeptLoaded,
    /// Nobody decided: a service refuses to start until the operator does.
    Unresolved,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (factory, owner, other) = (&self.factory, self.owner.display(), self.other.display());
        match self.resolution {
            Resolution::Pinned => {
                write!(f, "factory `{factory}` is provided by both {owner} and {other}; {owner} has it ([factories] pins it)")
            }
            Resolution::KeptLoaded => write!(
                f,
                "factory `{factory}` is provided by both {owner} and {other}; {owner} keeps it (it was loaded first); pin the owner in the config's [factories] table to choose"
            ),
            Resolution::Unresolved => write!(
                f,
                "factory `{factory}` is provided by both {owner} and {other}; remove one, or pin the owner in the config's [factories] table (e.g. {factory} = \"{}\")",
                file_name(&self.owner)
            ),
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// Every plugin, factory, rejection and conflict of one scan of the plugin directories.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    pub plugins: Vec<PluginInfo>,
    /// By name.
    pub factories: BTreeMap<String, FactoryInfo>,
    pub rejected: Vec<Rejected>,
    pub conflicts: Vec<Conflict>,
}

impl Catalog {
    pub fn factory(&self, name: &str) -> Option<&FactoryInfo> {
        self.factories.get(name)
    }

    pub fn factory_names(&self) -> Vec<&str> {
        self.factories.keys().map(String::as_str).collect()
    }

    /// Conflicts nobody decided: a service refuses to start with any.
    pub fn unresolved(&self) -> impl Iterator<Item = &Conflict> {
        self.conflicts.iter().filter(|c| c.resolution == Resolution::Unresolved)
    }

    /// Which file owns each factory: what a reload keeps (`LoadOptions::keep`).
    pub fn owners(&self) -> BTreeMap<String, PathBuf> {
        self.factories.values().map(|f| (f.name.clone(), f.path.clone())).collect()
    }

    /// What a reload changed compared with `self`: factories that appeared and that are gone.
    pub fn changes_to(&self, next: &Catalog) -> (Vec<String>, Vec<String>) {
        let added = next.factories.keys().filter(|n| !self.factories.contains_key(*n)).cloned().collect();
        let removed = self.factories.keys().filter(|n| !next.factories.contains_key(*n)).cloned().collect();
        (added, removed)
    }
}

/// Whether `pin` (a file name, or a path) names the plugin file at `path` (canonical).
pub fn pin_matches(pin: &str, path: &Path) -> bool {
    let pin_path = Path::new(pin);
    if pin_path.is_absolute() {
        pin_path.canonicalize().map_or(pin_path == path, |p| p == path)
    } else {
        path.file_name().is_some_and(|name| name == pin_path.as_os_str())
    }
}
