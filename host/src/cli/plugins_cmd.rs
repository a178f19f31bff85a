//! `jobhost plugins check` and `jobhost plugins run`: the plugin author's and operator's tools.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::plugins::{LoadOptions, Registry};
use crate::workers::{Limits, Prober, DEFAULT_LOAD_TIMEOUT};

pub fn check(options: LoadOptions, paths: &[PathBuf], json: bool) -> u8 {
    // Each file is tried in a process of its own first, so one that crashes or hangs while
    // loading is reported, not fatal to the check.
    let exe = super::local::worker_exe();
    let prober = Prober {
        exe: &exe,
        allow_insecure: options.allow_insecure,
        limits: Limits::default(),
        timeout: DEFAULT_LOAD_TIMEOUT,
        env: &std::collections::BTreeMap::new(),
        fs: &crate::workers::Sandbox::default(),
    };
    let registry = super::local::probed_registry(options, &prober.probe_dirs(paths));
    let conflicts = registry.conflicts();
    let ok = registry.rejected().is_empty() && conflicts.is_empty() && !registry.plugins().is_empty();
    if json {
        let plugins: Vec<_> = registry
            .plugins()
            .iter()
            .map(|p| {
                let factories: Vec<_> = p
                    .factories
                    .iter()
                    .filter_map(|name| registry.get(name))
                    .map(|f| {
                        let info = f.info();
                        let schema = |text: &Option<String>| {
                            text.as_deref().and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
                        };
                        json!({"name": info.name, "description": info.description, "example": info.example,
                               "input_schema": schema(&info.input_schema), "output_schema": schema(&info.output_schema)})
                    })
                    .collect();
                json!({"name": p.name, "version": p.version, "sdk_version": p.sdk_version,
                       "path": p.path, "factories": factories})
            })
            .collect();
        let rejected: Vec<_> = registry
            .rejected()
            .iter()
            .map(|r| json!({"path": r.path, "reason": r.reason.to_string()}))
            .collect();
        let conflicts: Vec<_> = conflicts
            .iter()
            .map(|c| json!({"factory": c.factory, "owner": c.owner, "other": c.other, "message": c.to_string()}))
            .collect();
        println!("{}", json!({"ok": ok, "plugins": plugins, "rejected": rejected, "conflicts": conflicts}));
    } else {
        for plugin in registry.plugins() {
            println!(
                "{}: plugin {} {} (SDK {})",
                plugin.path.display(),
                plugin.name,
                plugin.version,
                plugin.sdk_version
            );
            for factory in plugin.factories.iter().filter_map(|name| registry.get(name)) {
                println!("    {:<16} {}", factory.name(), factory.info().description);
                let schema = factory.info().input_schema.as_deref().unwrap_or("(none: any JSON)");
                println!("    {:<16} input schema: {schema}", "");
            }
        }
        for rejection in registry.rejected() {
            println!("{}: rejected: {}", rejection.path.display(), rejection.reason);
        }
        for conflict in conflicts {
            println!("conflict: {conflict}");
        }
        if registry.plugins().is_empty() && registry.rejected().is_empty() {
            println!("no plugin files (*.{}) found", crate::plugins::LIBRARY_SUFFIX);
        }
    }
    if ok {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}

pub fn run(options: LoadOptions, plugin: &Path, factory: &str, input: Option<&str>) -> u8 {
    let input = input.unwrap_or("null");
    if let Err(e) = serde_json::from_str::<serde_json::Value>(input) {
        eprintln!("error: INPUT_JSON is not valid JSON: {e}");
        return EXIT_USAGE;
    }
    let mut registry = Registry::new(options);
    if !registry.add_file(plugin) {
        match registry.rejected().first() {
            Some(rejection) => eprintln!("error: {rejection}"),
            None => eprintln!("error: {}: already loaded", plugin.display()),
        }
        return EXIT_USAGE;
    }
    let Some(factory) = registry.get(factory) else {
        eprintln!(
            "error: {} has no factory named `{factory}`; it has: {}",
            plugin.display(),
            registry.factory_names().join(", ")
        );
        return EXIT_USAGE;
    };
    // Checked as the server checks a submission, so what runs here would be accepted there.
    let input = match crate::plugins::Schemas::default().admit(factory.info(), input.to_owned()) {
        Ok(input) => input,
        Err(errors) => {
            eprintln!(
                "error: invalid input for `{}` (the server would refuse it: invalid_input): {}",
                factory.name(),
                crate::plugins::describe_fields(&errors)
            );
            return EXIT_FAILED;
        }
    };
    match factory.run_once(&input) {
        Ok(result) => {
            println!("{result}");
            EXIT_OK
        }
        Err(failure) => {
            eprintln!("{failure}");
            EXIT_FAILED
        }
    }
}
