//! The StrictModes-style check run before a library is opened: loading a library runs its
//! code, so a file (or its directory) that someone other than us or root can change is refused.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::error::LoadError;

/// Group- or world-writable.
const WRITABLE_BY_OTHERS: u32 = 0o022;

/// Refuses `file` if it or the directory holding it is writable by group/others or owned by
/// someone other than root or the current user.
pub fn check_trusted(file: &Path) -> Result<(), LoadError> {
    check_one(file, "file")?;
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    check_one(dir, "directory")
}

fn check_one(path: &Path, what: &str) -> Result<(), LoadError> {
    let meta = fs::metadata(path)?;
    let mode = meta.mode() & 0o7777;
    if mode & WRITABLE_BY_OTHERS != 0 {
        let who = if mode & 0o002 != 0 { "world" } else { "group" };
        return Err(LoadError::Insecure(format!(
            "the plugin {what} {} is {who}-writable (mode {mode:04o})",
            path.display()
        )));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != 0 && meta.uid() != me {
        return Err(LoadError::Insecure(format!(
            "the plugin {what} {} is owned by uid {}, not by root or the service user (uid {me})",
            path.display(),
            meta.uid()
        )));
    }
    Ok(())
}
