//! The service in this test process: a host over a real sled store in a temp dir with the real
//! example plugins, run by `jobhost::runtime::run` on a free loopback port, with a shutdown of
//! the test's own. What API tests use; tests of signals and crashes run the binary instead
//! (`server.rs`).

use std::path::Path;
use std::time::Duration;

use jobhost::config::{Config, Isolation};
use jobhost::plugins::{LoadOptions, Registry};
use jobhost::runtime::{Backend, Settings};
use jobhost::server::Token;
use jobhost::service::Plugins;
use jobhost::workers::Spec;
use tempfile::TempDir;

use crate::client::Client;
use crate::{plugin_dir, EXAMPLE_PLUGINS};

pub struct App {
    client: Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _data: TempDir,
    _plugins: TempDir,
}

impl std::ops::Deref for App {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl App {
    /// The service with default settings and every example plugin.
    pub fn start() -> App {
        App::with_config(Config::default())
    }

    /// The service with `config` (its limits, queues, lease, token file and role apply; its data
    /// and plugin directories are the test's own).
    pub fn with_config(config: Config) -> App {
        App::with(config, None)
    }

    /// The service requiring `token`; the client sends it.
    pub fn with_token(token: &str) -> App {
        App::with(Config::default(), Some(token))
    }

    fn with(config: Config, token: Option<&str>) -> App {
        let data = TempDir::new().expect("temp dir");
        let plugins = plugin_dir(&EXAMPLE_PLUGINS);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let (data_dir, plugin_path) = (data.path().join("data"), plugins.path().to_owned());
        let server_token = token.map(|t| Token::new(t).expect("a token"));
        let thread =
            std::thread::spawn(move || serve(&data_dir, &plugin_path, config, server_token, ready_tx, stop));
        let url = ready_rx.recv_timeout(Duration::from_secs(30)).expect("the in-process server starts");
        App {
            client: Client::new(&url, token),
            shutdown: Some(shutdown),
            thread: Some(thread),
            _data: data,
            _plugins: plugins,
        }
    }

    /// Stops the service as a stop signal would, and waits for it.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the in-process server stops cleanly");
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.shut_down();
    }
}

fn serve(
    data_dir: &Path,
    plugins: &Path,
    config: Config,
    token: Option<Token>,
    ready: std::sync::mpsc::Sender<String>,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    // The configured isolation: worker processes run the real `jobhost` binary.
    let plugin_set = match config.isolation {
        Isolation::Process => Plugins::isolated(Spec {
            exe: crate::artefacts().binary(),
            plugin_dirs: vec![plugins.to_owned()],
            pins: config.factories.clone(),
            limits: config.worker_limits(),
            load_timeout: config.plugin_load_timeout,
            env: config.worker_env.clone(),
            fs: config.worker_fs(),
            ..Spec::default()
        })
        .expect("a worker process starts"),
        Isolation::None => Plugins::in_process(Registry::load_dirs(LoadOptions::default(), &[plugins])),
    };
    assert!(plugin_set.catalog().rejected.is_empty(), "{:?}", plugin_set.catalog().rejected);
    let backend = Backend::Embedded { data_dir: data_dir.to_owned(), options: config.store_options() };
    let host =
        jobhost::runtime::open_host(&backend, plugin_set, config.processor()).expect("the store opens");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let settings = Settings {
            role: config.role,
            limits: config.limits,
            token,
            allowed_hosts: config.allowed_hosts.clone(),
            shutdown_timeout: config.shutdown_timeout,
            poll_interval: config.poll_interval,
        };
        let _ = ready.send(url);
        let shutdown = async move {
            let _ = stop.await;
        };
        jobhost::runtime::run(listener, host, settings, shutdown).await.expect("the service runs");
    });
}
