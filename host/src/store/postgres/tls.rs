//! TLS to the database, with rustls: used when the store URL asks for it
//! (`sslmode=require`), verifying the server's certificate and name against the system's
//! roots and, when given, `[store] ca_file` (a private CA, or a self-signed server
//! certificate). Without `sslmode=require` the connection is plain, as before.

use std::path::Path;
use std::sync::Arc;

use postgres::config::SslMode;
use postgres::{Client, Config, NoTls};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::error::{StoreError, StoreResult};

/// How connections are made: plain, or with TLS.
#[derive(Clone)]
pub enum Tls {
    Plain,
    Rustls(MakeRustlsConnect),
}

impl Tls {
    /// What the URL asks for; `ca_file` adds a trusted certificate (PEM).
    pub fn for_config(config: &Config, ca_file: Option<&Path>) -> StoreResult<Tls> {
        if config.get_ssl_mode() != SslMode::Require {
            return Ok(Tls::Plain);
        }
        let mut roots = rustls::RootCertStore::empty();
        // The system's roots, where it has them; those it cannot parse are skipped.
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        if let Some(path) = ca_file {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<_, _>>())
                .map_err(|e| StoreError::Unusable(format!("store.ca_file {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(StoreError::Unusable(format!(
                    "store.ca_file {}: no PEM certificate in it",
                    path.display()
                )));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| {
                    StoreError::Unusable(format!(
                        "store.ca_file {}: unusable certificate: {e}",
                        path.display()
                    ))
                })?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Unusable(format!("TLS to the database: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Tls::Rustls(MakeRustlsConnect::new(tls)))
    }

    pub fn connect(&self, config: &Config) -> Result<Client, postgres::Error> {
        match self {
            Tls::Plain => config.connect(NoTls),
            Tls::Rustls(tls) => config.connect(tls.clone()),
        }
    }
}
