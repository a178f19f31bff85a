//! Finding plugin files and opening them: one library at a time through libloading, then
//! abi_stable's header, version and layout checks.
//!
//! abi_stable's cached `RootModule::load_from_*` helpers keep the first module per type for the
//! whole process (a second plugin would come back as the first), so each file is opened here
//! and handed to `AbiHeaderRef::upgrade` + `LibHeader::init_root_module`, which run the same
//! checks without the cache.

use std::fs;
use std::path::{Path, PathBuf};

use abi_stable::library::{AbiHeaderRef, ROOT_MODULE_LOADER_NAME_WITH_NUL};
use jobhost_plugin_api::ffi::PluginModule_Ref;

use super::error::one_line;
use super::error::LoadError;

/// The file suffix of a shared library on this platform (`so` on Linux).
pub const LIBRARY_SUFFIX: &str = std::env::consts::DLL_EXTENSION;

/// The plugin files directly inside `dir`, sorted by file name. Not recursive.
pub fn scan_dir(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == LIBRARY_SUFFIX) && path.is_file() {
            files.push(path);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// Opens `path` and returns its checked root module. The library is never closed: plugins
/// cannot be unloaded (their code and `'static` data stay referenced for the process's life).
pub fn open_module(path: &Path) -> Result<PluginModule_Ref, LoadError> {
    let library = open_library(path)?;
    // SAFETY: the symbol is the `LibHeader` static every jobhost plugin (and every abi_stable
    // root module) exports under this name; `AbiHeaderRef` is the type abi_stable itself reads
    // it as. A library exporting the name with another type fails `upgrade`'s magic-string check.
    let header: AbiHeaderRef = unsafe {
        match library.get::<AbiHeaderRef>(ROOT_MODULE_LOADER_NAME_WITH_NUL.as_bytes()) {
            Ok(symbol) => *symbol,
            Err(_) => return Err(LoadError::MissingRootModule),
        }
    };
    // Keep the library mapped forever; everything below borrows from it as `'static`.
    std::mem::forget(library);
    let header = header.upgrade()?;
    Ok(header.init_root_module::<PluginModule_Ref>()?)
}

fn open_library(path: &Path) -> Result<libloading::Library, LoadError> {
    #[cfg(unix)]
    {
        use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
        // RTLD_NOW: an unresolved symbol fails here, with the file named, instead of at the
        // first job. RTLD_LOCAL: every plugin exports the same root-module symbol.
        // SAFETY: opening a library runs its initializers; the caller has checked that only
        // root or the service user can have written the file (see `security`).
        match unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) } {
            Ok(lib) => Ok(lib.into()),
            Err(e) => Err(LoadError::NotALibrary(one_line(&dlerror_text(&e, path)))),
        }
    }
    #[cfg(not(unix))]
    {
        // SAFETY: as above.
        unsafe { libloading::Library::new(path) }
            .map_err(|e| LoadError::NotALibrary(one_line(&e.to_string())))
    }
}

/// libloading's message with its sources (dlerror's text is the source of "dlopen failed"),
/// without the path dlerror repeats: the rejection line names it already.
fn dlerror_text(err: &libloading::Error, path: &Path) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text.replace(&format!("{}: ", path.display()), "")
}
