//! A plugin file's bytes sealed in memory (a `memfd` that nothing can change once sealed),
//! made once per start or reload by the host: what the probe tries and what every worker
//! process loads are then the same bytes, whatever happens to the file afterwards, and every
//! worker maps the one copy (the kernel shares its pages) instead of a private copy each.
//!
//! **Invariant:** an image holds exactly the bytes of a file that passed the trust check
//! (`security`) when it was read, and can never change.

use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use super::error::LoadError;
use super::security;

/// A sealed in-memory copy of one plugin file.
#[derive(Debug)]
pub struct Image {
    /// The file it was read from (canonical): what the catalog, pins and errors name.
    pub path: PathBuf,
    fd: OwnedFd,
    /// Its size in bytes.
    pub len: u64,
}

impl Image {
    /// Reads `path` (once it passes the trust check, unless `allow_insecure`) into a sealed
    /// memory file.
    pub fn seal(path: &Path, allow_insecure: bool) -> Result<Image, LoadError> {
        let path = path.canonicalize()?;
        if !allow_insecure {
            security::check_trusted(&path)?;
        }
        let bytes = fs::read(&path)?;
        let name = format!("jobhost-plugin:{}", path.file_name().unwrap_or_default().to_string_lossy());
        let name = std::ffi::CString::new(name.replace('\0', "?")).unwrap_or_default();
        // SAFETY: a NUL-terminated name and valid flags; the result is checked.
        let raw = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        // SAFETY: `raw` was just created and is owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut file = fs::File::from(fd);
        file.write_all(&bytes)?;
        let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;
        // SAFETY: fcntl on the memory file we own.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok(Image { path, fd: file.into(), len: bytes.len() as u64 })
    }

    /// Its descriptor (close-on-exec: a child gets it only by being handed it).
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_keeps_the_bytes_it_read_and_refuses_every_write() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.so");
        fs::write(&file, b"first").unwrap();
        let image = Image::seal(&file, false).unwrap();
        fs::write(&file, b"second, longer").unwrap();
        let read = fs::read(format!("/proc/self/fd/{}", image.fd())).unwrap();
        assert_eq!((read.as_slice(), image.len), (&b"first"[..], 5));
        let mut writable =
            fs::OpenOptions::new().write(true).open(format!("/proc/self/fd/{}", image.fd())).unwrap();
        assert!(writable.write_all(b"x").is_err(), "a sealed image took a write");
    }

    #[test]
    fn an_untrusted_file_is_refused_before_it_is_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.so");
        fs::write(&file, b"x").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).unwrap();
        let error = Image::seal(&file, false).unwrap_err().to_string();
        assert!(error.contains("world-writable"), "{error}");
        assert!(Image::seal(&file, true).is_ok());
    }
}
