//! The descriptors a worker process is handed, and how they are put in place between fork
//! and exec.

/// The file descriptor a worker finds its data socket on: `Run` in, `Progress` and `Done` out,
/// one job at a time.
pub const DATA_FD: i32 = 3;
/// The file descriptor of its control socket: `Cancel` and `Stop` in, read by a thread of its
/// own so they land while a job runs (the job itself runs on the thread reading the data
/// socket, with no hand-off per job).
pub const CONTROL_FD: i32 = 4;

/// Puts the descriptors `fds` on `first`, `first + 1`, ... for a child about to exec, with
/// close-on-exec off. Between fork and exec: only fcntl, dup2 and close, and no allocation
/// (`fds` is overwritten in place). Each goes out of the way first (above the whole range,
/// since any may already sit on a target), then into place.
///
/// # Safety
/// Only in a forked child before exec (it closes and replaces descriptors).
pub(super) unsafe fn place_fds(fds: &mut [i32], first: i32) -> std::io::Result<()> {
    let above = first + fds.len() as i32;
    // SAFETY: the caller's: a forked child, its descriptors its own to rearrange.
    unsafe {
        for fd in fds.iter_mut() {
            *fd = libc::fcntl(*fd, libc::F_DUPFD, above);
            if *fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        for (target, high) in (first..).zip(fds.iter()) {
            if libc::dup2(*high, target) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(*high);
        }
    }
    Ok(())
}

/// The descriptor of a worker's first plugin image (the next follow it).
pub const FIRST_IMAGE_FD: i32 = CONTROL_FD + 1;
