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
use jobhost_plugin_api::ffi::{
    PanicFn, ParentsFn, PluginModule_Ref, SchemasFn, PANIC_SYMBOL, PARENTS_SYMBOL, SCHEMAS_SYMBOL,
};

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
/// With `private_copy`, what is opened is a copy of the file in anonymous memory: replacing or
/// rewriting the file later (even in place, as `cp` does) then never touches code this
/// process has mapped, and a reloading process opens the new file even at the same path.
pub fn open_module(path: &Path, private_copy: bool) -> Result<Opened, LoadError> {
    let library = if private_copy { open_copy(path)? } else { open_library(path, path)? };
    root_module(library)
}

/// An opened plugin library: its checked root module, and the function that describes its
/// factories' schemas if it exports one (a plugin built before typed inputs does not).
pub struct Opened {
    pub module: PluginModule_Ref,
    pub schemas: Option<SchemasFn>,
    /// How its jobs are told their parents' outcomes (a plugin built before dependencies
    /// cannot be).
    pub parents: Option<ParentsFn>,
    /// Where its jobs' panics happened (a plugin built before panic backtraces cannot say).
    pub panic: Option<PanicFn>,
}

/// The checked root module of an opened library, which stays mapped for the process's life.
fn root_module(library: libloading::Library) -> Result<Opened, LoadError> {
    // SAFETY: the symbol is the `LibHeader` static every jobhost plugin (and every abi_stable
    // root module) exports under this name; `AbiHeaderRef` is the type abi_stable itself reads
    // it as. A library exporting the name with another type fails `upgrade`'s magic-string check.
    let header: AbiHeaderRef = unsafe {
        match library.get::<AbiHeaderRef>(ROOT_MODULE_LOADER_NAME_WITH_NUL.as_bytes()) {
            Ok(symbol) => *symbol,
            Err(_) => return Err(LoadError::MissingRootModule),
        }
    };
    // SAFETY: an SDK that exports this name exports it with this type (`ffi::SchemasFn`); the
    // root module's version check below refuses an SDK this host does not speak.
    let schemas = unsafe {
        let name = format!("{SCHEMAS_SYMBOL}\0");
        library.get::<SchemasFn>(name.as_bytes()).ok().map(|symbol| *symbol)
    };
    // SAFETY: likewise, `ffi::ParentsFn`.
    let parents = unsafe {
        let name = format!("{PARENTS_SYMBOL}\0");
        library.get::<ParentsFn>(name.as_bytes()).ok().map(|symbol| *symbol)
    };
    // SAFETY: likewise, `ffi::PanicFn`.
    let panic = unsafe {
        let name = format!("{PANIC_SYMBOL}\0");
        library.get::<PanicFn>(name.as_bytes()).ok().map(|symbol| *symbol)
    };
    // Keep the library mapped forever; everything below borrows from it as `'static`.
    std::mem::forget(library);
    let header = header.upgrade()?;
    Ok(Opened { module: header.init_root_module::<PluginModule_Ref>()?, schemas, parents, panic })
}

/// Opens the sealed image of `path` the host handed this process as descriptor `fd` (see
/// `Image`), through its `/proc/self/fd` name; the descriptor must stay open for the process's
/// life (the dynamic loader matches libraries by name).
pub fn open_image(fd: i32, path: &Path) -> Result<Opened, LoadError> {
    let library = open_library(Path::new(&format!("/proc/self/fd/{fd}")), path)?;
    root_module(library)
}

/// Copies `path` into a memory file (`memfd_create`) and opens that through its
/// `/proc/self/fd` name. The descriptor stays open for the process's life, so the name is
/// never reused for another library (the dynamic loader matches libraries by name).
#[cfg(target_os = "linux")]
fn open_copy(path: &Path) -> Result<libloading::Library, LoadError> {
    use std::io::Write;
    use std::os::fd::FromRawFd;
    let bytes = fs::read(path)?;
    // SAFETY: a NUL-terminated name and a valid flag; the result is checked.
    let fd = unsafe { libc::memfd_create(c"jobhost-plugin".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        // No memfd (a kernel before 3.17): the file itself, as without the copy.
        return open_library(path, path);
    }
    // SAFETY: `fd` was just created and is owned by nothing else.
    let mut copy = unsafe { fs::File::from_raw_fd(fd) };
    copy.write_all(&bytes)?;
    let library = open_library(Path::new(&format!("/proc/self/fd/{fd}")), path)?;
    std::mem::forget(copy);
    Ok(library)
}

#[cfg(not(target_os = "linux"))]
fn open_copy(path: &Path) -> Result<libloading::Library, LoadError> {
    open_library(path, path)
}

/// Opens the library at `open`; errors name `path`, the plugin file it stands for.
fn open_library(open: &Path, path: &Path) -> Result<libloading::Library, LoadError> {
    #[cfg(unix)]
    {
        use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
        // RTLD_NOW: an unresolved symbol fails here, with the file named, instead of at the
        // first job. RTLD_LOCAL: every plugin exports the same root-module symbol.
        // SAFETY: opening a library runs its initializers; the caller has checked that only
        // root or the service user can have written the file (see `security`).
        match unsafe { Library::open(Some(open), RTLD_NOW | RTLD_LOCAL) } {
            Ok(lib) => Ok(lib.into()),
            Err(e) => Err(LoadError::NotALibrary(one_line(
                &dlerror_text(&e, open).replace(&open.display().to_string(), &path.display().to_string()),
            ))),
        }
    }
    #[cfg(not(unix))]
    {
        // SAFETY: as above.
        let _ = path;
        unsafe { libloading::Library::new(open) }
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
