//! The `jobhost` binary: all behaviour lives in the library; see `jobhost --help`.

fn main() -> std::process::ExitCode {
    jobhost::cli::main()
}
