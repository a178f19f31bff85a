//! The `jobhost` binary: all behaviour lives in the library; see `jobhost --help`.

/// The host's allocator. With glibc's malloc, 1,000,000 jobs added over HTTP left the heap
/// fragmented (RSS 395–406 MB, 266–277 MB after their drain, a `malloc_trim` every 10 s
/// included) and the allocator's locks slowed every thread: the same adds and drain took 31–36 s
/// and 158–163 s, against 19–20 s and 89–101 s with jemalloc (same sitting). Plugin libraries
/// keep the C library's allocator for what they allocate themselves.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings (read when it starts): one background thread hands freed pages back to
/// the system after about a second, whether or not anything allocates meanwhile (an idle host
/// after a burst); four arenas, as the host has a handful of busy threads.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8; 78] =
    b"background_thread:true,max_background_threads:1,dirty_decay_ms:1000,narenas:4\0";

fn main() -> std::process::ExitCode {
    jobhost::cli::main()
}
