//! `export_plugin!`: the one macro a plugin author writes, and the private items it expands to.
//!
//! abi_stable's own `#[export_root_module]` expands to `::abi_stable::...` paths, which would
//! force every plugin to depend on abi_stable directly. This macro produces the same exported
//! header through `$crate` paths instead, so a plugin depends on this SDK alone.

use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::std_types::{RResult, RString, RVec};

use crate::ffi::FfiFactory;
use crate::Factory;

/// The symbol abi_stable looks up in a plugin library. abi_stable computes it with a mangling
/// function at build time; `#[no_mangle]` needs it as a literal, so it is written out here and a
/// unit test checks it against `abi_stable::library::ROOT_MODULE_LOADER_NAME`.
#[doc(hidden)]
pub const ROOT_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

/// Exports a plugin: its name and its factories.
///
/// ```
/// use jobhost_plugin_api::prelude::*;
///
/// fn greet(name: String, _ctx: &Context) -> JobResult<String> {
///     Ok(format!("Hello, {name}!"))
/// }
///
/// jobhost_plugin_api::export_plugin! {
///     name: "hello",
///     version: "1.2.0",
///     factories: [Factory::new("greet", greet).description("Says hello.")],
/// }
/// ```
///
/// `version:` may follow `name:`; it defaults to the plugin's Cargo package version.
/// The factory list is built when the host loads the plugin; a panic while building it is
/// reported as the plugin's load failure.
#[macro_export]
macro_rules! export_plugin {
    (name: $name:expr, factories: [$($factory:expr),* $(,)?] $(,)?) => {
        $crate::export_plugin! {
            name: $name,
            version: ::core::env!("CARGO_PKG_VERSION"),
            factories: [$($factory),*],
        }
    };
    (name: $name:expr, version: $version:expr, factories: [$($factory:expr),* $(,)?] $(,)?) => {
        const _: () = {
            use $crate::__private as __p;

            fn __jobhost_module() -> __p::PluginModule_Ref {
                __p::PrefixTypeTrait::leak_into_prefix(__p::PluginModule {
                    name: __p::RStr::from_str($name),
                    version: __p::RStr::from_str($version),
                    sdk_version: __p::RStr::from_str($crate::SDK_VERSION),
                    init: __jobhost_init,
                    factories: __jobhost_factories,
                })
            }

            extern "C" fn __jobhost_init(log: __p::HostLogger, max_level: __p::LevelFilter) {
                __p::init_logging($name, log, max_level)
            }

            extern "C" fn __jobhost_factories(
            ) -> __p::RResult<__p::RVec<__p::FfiFactory>, __p::RString> {
                __p::build_factories(|| ::std::vec![$($factory),*])
            }

            // Looked up by name beside the root module (see `ffi::SCHEMAS_SYMBOL`).
            #[no_mangle]
            pub extern "C" fn jobhost_plugin_schemas() -> __p::RString {
                __p::schemas_json(|| ::std::vec![$($factory),*])
            }

            // Looked up by name beside the root module (see `ffi::PANIC_SYMBOL`).
            #[no_mangle]
            pub extern "C" fn jobhost_plugin_panic() -> __p::RString {
                __p::take_panic()
            }

            // Looked up by name beside the root module (see `ffi::PARENTS_SYMBOL`).
            #[no_mangle]
            pub extern "C" fn jobhost_plugin_parents(parents: __p::RStr<'_>) {
                __p::set_parents(parents.as_str())
            }

            extern "C" fn __jobhost_erased_module() -> __p::RootModuleResult {
                __p::__call_root_module_loader(__jobhost_module)
            }

            // The one exported symbol; every plugin has it, and they do not clash because the
            // host opens libraries RTLD_LOCAL.
            #[no_mangle]
            pub static _1as_0lib_1header_0root_bmodule_bloader: __p::LibHeader = unsafe {
                // SAFETY: the constructor returns the module type named here, as
                // `#[export_root_module]` guarantees for its own expansion.
                __p::LibHeader::from_constructor::<__p::PluginModule_Ref>(
                    __jobhost_erased_module,
                    __p::CheckTypeLayout::Yes,
                )
            };
        };
    };
}

/// The factories' schemas as [`SCHEMAS_SYMBOL`](crate::ffi::SCHEMAS_SYMBOL) returns them; `{}` if
/// building the list panics (the root module's call reports that).
#[doc(hidden)]
pub fn schemas_json(build: impl FnOnce() -> Vec<Factory>) -> RString {
    let Ok(factories) = catch_unwind(AssertUnwindSafe(build)) else { return RString::from("{}") };
    let mut all = serde_json::Map::new();
    for factory in factories {
        let parse = |text: &str| {
            serde_json::from_str::<serde_json::Value>(text).unwrap_or(serde_json::Value::Bool(true))
        };
        let schemas = serde_json::json!({"input": parse(factory.input_schema()), "output": parse(factory.output_schema())});
        all.insert(factory.name().to_owned(), schemas);
    }
    serde_json::Value::Object(all).to_string().into()
}

/// Builds the factory list without letting a panic cross the ABI.
#[doc(hidden)]
pub fn build_factories(build: impl FnOnce() -> Vec<Factory>) -> RResult<RVec<FfiFactory>, RString> {
    match catch_unwind(AssertUnwindSafe(build)) {
        Ok(factories) => RResult::ROk(factories.into_iter().map(Factory::into_ffi).collect()),
        Err(payload) => {
            let message = crate::failure::panic_message(payload.as_ref());
            RResult::RErr(format!("building the factory list panicked: {message}").into())
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn root_symbol_matches_abi_stable() {
        assert_eq!(super::ROOT_SYMBOL, abi_stable::library::ROOT_MODULE_LOADER_NAME);
    }
}
