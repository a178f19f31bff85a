//! `jobhost serve`: the service. Loads the plugins (a worker process's scan, or in this
//! process), opens the store, starts the configured queues and serves the HTTP API until
//! SIGTERM/SIGINT; SIGHUP reloads the plugin directories (rolling the worker processes).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tokio::signal::unix::{signal, SignalKind};

use super::local::PluginSetup;
use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::config::{Config, Isolation, Role};
use crate::runtime::{self, Backend};
use crate::server::Token;
use crate::service::Host;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML config file (see host/jobhost.example.toml); flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The data directory (the embedded store). Default: ./jobhost-data.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// A PostgreSQL store shared with other hosts (`postgres://user@host/db`) instead of the
    /// embedded one.
    #[arg(long, value_name = "URL", env = "JOBHOST_STORE_URL", hide_env_values = true)]
    pub store_url: Option<String>,
    /// A plugin directory (repeatable). Default: ./plugins and the binary's own directory.
    #[arg(long = "plugin-dir", value_name = "DIR")]
    pub plugin_dirs: Vec<PathBuf>,
    /// Address to listen on, or host name and port. Default: 127.0.0.1:7878. Port 0 picks a
    /// free port.
    #[arg(long, value_name = "ADDR", value_parser = crate::config::parse_listen)]
    pub listen: Option<SocketAddr>,
    /// File holding the bearer token clients must send.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Listen on a non-loopback address without a token (anyone who can connect can run jobs).
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// Start no queue processors (start them with `jobhost queue start NAME`).
    #[arg(long)]
    pub paused: bool,
    /// What this process runs: workers and scheduler (`all`), or one of them.
    #[arg(long, value_enum)]
    pub role: Option<Role>,
    /// How long a shutdown waits for running jobs before releasing them, e.g. `30s`.
    #[arg(long, value_name = "DURATION", value_parser = crate::durations::parse_duration)]
    pub shutdown_timeout: Option<Duration>,
    /// Where plugin code runs: `process` (worker processes) or `none` (this process).
    #[arg(long, value_enum)]
    pub isolation: Option<Isolation>,
    /// How long a job asked to stop may take before its worker process is killed, e.g. `5s`.
    #[arg(long, value_name = "DURATION", value_parser = crate::durations::parse_duration)]
    pub kill_grace: Option<Duration>,
    /// Start on a store that lost data (it is behind its state file: a truncated or replaced
    /// `db` file), going on with what is left; ids continue after the highest ever issued.
    #[arg(long)]
    pub accept_data_loss: bool,
    /// Check the configuration, print the effective settings, and exit.
    #[arg(long)]
    pub check_config: bool,
}

/// The config file (or the defaults) with the flags applied.
fn effective_config(args: &ServeArgs, allow_insecure_plugins: bool) -> Result<Config, String> {
    let mut config = match &args.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(url) = &args.store_url {
        config.store.url = Some(crate::config::StoreUrl(url.clone()));
    }
    if !args.plugin_dirs.is_empty() {
        config.plugin_dirs = args.plugin_dirs.clone();
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(file) = &args.token_file {
        config.token_file = Some(file.clone());
    }
    if let Some(timeout) = args.shutdown_timeout {
        config.shutdown_timeout = timeout;
    }
    if let Some(isolation) = args.isolation {
        config.isolation = isolation;
    }
    if let Some(grace) = args.kill_grace.filter(|g| !g.is_zero()) {
        config.kill_grace = grace;
    }
    config.allow_insecure_plugins |= allow_insecure_plugins;
    if let Some(role) = args.role {
        config.role = role;
    }
    // Flags pass the same rules as the file (`--shutdown-timeout 0s`, say).
    config.check()?;
    // The URL and the password file are checked here, so `--check-config` refuses what
    // `serve` would.
    Backend::from_config(&config).check()?;
    if args.paused || !config.role.runs_workers() {
        // No queue starts by itself, not even one first named by a job after start.
        config.default_queue.autostart = false;
        config.queues.values_mut().for_each(|q| q.autostart = false);
    }
    Ok(config)
}

pub fn run(args: &ServeArgs, allow_insecure_plugins: bool) -> u8 {
    let config = match effective_config(args, allow_insecure_plugins) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    super::logs::init("info", config.log_format);
    raise_open_files_limit();
    // Not dumpable: its memory and /proc/PID/environ (the store's password, the token) are
    // then readable only with CAP_SYS_PTRACE, which workers never have. No core dumps either.
    // SAFETY: prctl on this process's own attribute.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if config.isolation == Isolation::Process {
        // What a worker that dies leaves behind comes to this process, which kills it.
        if let Err(e) = crate::workers::adopt_orphans() {
            log::warn!("cannot collect what dead worker processes leave behind: {e}");
        }
    }
    let token = match config.token_file.as_deref().map(Token::from_file).transpose() {
        Ok(token) => token,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    if token.is_none() && !config.listen.ip().is_loopback() && !args.insecure_no_auth {
        eprintln!(
            "error: refusing to listen on {} without a token: set token_file (or --token-file), or pass --insecure-no-auth",
            config.listen
        );
        return EXIT_USAGE;
    }
    if args.check_config {
        println!("{config:#?}");
        return EXIT_OK;
    }
    // Bound before the slow part (probing plugins, opening a large store): meanwhile every
    // request gets 503 and health says "opening", instead of a closed port.
    let listener = match std::net::TcpListener::bind(config.listen) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", config.listen);
            return EXIT_FAILED;
        }
    };
    let opening_since = std::time::Instant::now();
    let opening =
        match crate::server::Opening::start(listener, "loading plugins and opening the store".to_owned()) {
            Ok(opening) => opening,
            Err(e) => {
                eprintln!("error: cannot listen on {}: {e}", config.listen);
                return EXIT_FAILED;
            }
        };
    log::info!("starting: loading plugins and opening the store (the API answers 503 meanwhile)");
    let plugin_dirs = config.plugin_dirs();
    let setup = PluginSetup {
        dirs: plugin_dirs.clone(),
        isolation: config.isolation,
        allow_insecure: config.allow_insecure_plugins,
        pins: config.factories.clone(),
        limits: config.worker_limits(),
        load_timeout: config.plugin_load_timeout,
        env: config.worker_env.clone(),
        fs: config.worker_fs(),
    };
    let mut backend = Backend::from_config(&config);
    if args.accept_data_loss {
        backend = backend.accept_data_loss();
    }
    let opened = setup.open().and_then(|plugins| {
        let host = runtime::open_host(&backend, plugins, config.processor())?;
        Ok((host, super::local::runtime()?))
    });
    let (host, runtime) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    log::info!("plugins loaded and store open in {:.1} s", opening_since.elapsed().as_secs_f64());
    let listener = opening.finish();
    let served = runtime.block_on(serve(host, config, token, plugin_dirs, listener));
    // Not `drop(runtime)`: that waits for every blocking thread, and a plugin running in this
    // process (isolation "none") may never return. What the shutdown released is on disk.
    runtime.shutdown_background();
    // Workers still winding down (a slot between jobs) end now, and leave no scratch files.
    crate::workers::end_all_workers();
    match served {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILED
        }
    }
}

/// Raises this process's open-files limit to its hard limit: every connection, worker socket
/// and store file is a descriptor, and the usual soft limit (1024) is far below what a server
/// facing many clients needs. (The systemd unit sets the hard limit: `LimitNOFILE`.)
fn raise_open_files_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                log::warn!("cannot raise the open-files limit from {}", limit.rlim_cur);
            }
        }
    }
}

/// Listens, then runs the service until SIGTERM or SIGINT, rescanning the plugin directories
/// on SIGHUP; a second stop signal exits at once.
async fn serve(
    host: Host,
    config: Config,
    token: Option<Token>,
    plugin_dirs: Vec<PathBuf>,
    listener: std::net::TcpListener,
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| format!("cannot read the listening address: {e}"))?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| format!("cannot handle SIGHUP: {e}"))?;

    let factories = host.catalog().factory_names().join(", ");
    let auth = if token.is_some() { "bearer token" } else { "none" };
    log::info!(
        "jobhost {} listening on http://{addr} (role {:?}, isolation {:?}, auth {auth}); factories: {factories}",
        env!("CARGO_PKG_VERSION"),
        config.role,
        config.isolation
    );
    if token.is_none() && !addr.ip().is_loopback() {
        log::warn!(
            "--insecure-no-auth: anyone who can reach {addr} can add, cancel and remove jobs; set token_file"
        );
    }
    // The line scripts (and the tests) read to learn the address, e.g. with `--listen ...:0`.
    println!("jobhost listening on http://{addr}");

    let rescan_host = host.clone();
    let shutdown = async move {
        let signal_name = loop {
            tokio::select! {
                _ = term.recv() => break "SIGTERM",
                _ = int.recv() => break "SIGINT",
                _ = hup.recv() => {
                    let (host, dirs) = (rescan_host.clone(), plugin_dirs.clone());
                    match tokio::task::spawn_blocking(move || host.reload_plugins(&dirs)).await {
                        Ok(Ok((added, removed))) => log::info!(
                            "SIGHUP: plugins reloaded; factories added: [{}], removed: [{}]",
                            added.join(", "),
                            removed.join(", ")
                        ),
                        Ok(Err(e)) => log::error!("SIGHUP: plugin reload failed, the loaded plugins stay: {e}"),
                        Err(e) => log::error!("SIGHUP: plugin reload failed: {e}"),
                    }
                }
            }
        };
        log::info!("{signal_name}: shutting down");
        // An impatient operator's second signal ends the process at once; acknowledged data
        // is already on disk, and jobs still running are recovered at the next start.
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            log::warn!("second stop signal: exiting now");
            #[allow(clippy::disallowed_methods)] // skipping the graceful stop is the point
            std::process::exit(i32::from(EXIT_FAILED));
        });
    };
    let settings = runtime::Settings {
        role: config.role,
        limits: config.limits,
        token,
        allowed_hosts: config.allowed_hosts.clone(),
        shutdown_timeout: config.shutdown_timeout,
        poll_interval: config.poll_interval,
    };
    runtime::run(listener, host, settings, shutdown).await.map(|_| ())
}
