//! The TLS listeners' certificates: PEM files read at start and again on
//! [`ServerHandle::reload_certificates`](crate::ServerHandle::reload_certificates) (SIGHUP under
//! `serve`), and the one a handshake gets, picked by the name the client asked for (SNI).
//!
//! New handshakes take the certificates loaded last; connections already open keep theirs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, version::TLS13};
use smoke_rules::Protocol;

use crate::rt::error::Error;

/// The TLS configurations a server's listeners use, and the certificates behind them.
#[derive(Clone, Debug)]
pub(crate) struct TlsConfigs {
    /// `https` and `wss`: ALPN `http/1.1`.
    http: Arc<ServerConfig>,
    /// `tls`: no ALPN.
    raw: Arc<ServerConfig>,
    pub(crate) certificates: Arc<Certificates>,
    /// The most plaintext a connection keeps for its protocol (`max_read_buffer`).
    pub(crate) max_plaintext: usize,
}

impl TlsConfigs {
    /// Reads the certificates and builds the listeners' configurations.
    pub(crate) fn load(files: &[(PathBuf, PathBuf)], max_plaintext: usize) -> Result<TlsConfigs, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certificates = Arc::new(Certificates { files: files.to_vec(), current: RwLock::default() });
        certificates.reload_with(&provider)?;
        let build = |alpn: &[&[u8]]| -> Result<Arc<ServerConfig>, Error> {
            let mut config = ServerConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&TLS13])
                .map_err(|e| Error::config(format!("TLS: {e}")))?
                .with_no_client_auth()
                .with_cert_resolver(certificates.clone());
            config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            // After the handshake the traffic keys move to smoke's own record layer.
            config.enable_secret_extraction = true;
            Ok(Arc::new(config))
        };
        Ok(TlsConfigs { http: build(&[b"http/1.1"])?, raw: build(&[])?, certificates, max_plaintext })
    }

    /// The configuration of a listener speaking `protocol`.
    pub(crate) fn config(&self, protocol: Protocol) -> Arc<ServerConfig> {
        match protocol {
            Protocol::Tls => self.raw.clone(),
            _ => self.http.clone(),
        }
    }
}

/// The certificates as files, and as last loaded.
#[derive(Debug)]
pub(crate) struct Certificates {
    /// Each certificate chain's PEM file, with its private key's.
    files: Vec<(PathBuf, PathBuf)>,
    current: RwLock<Arc<Loaded>>,
}

/// Certificates ready to serve, each with the DNS names it is valid for.
#[derive(Debug, Default)]
struct Loaded {
    keys: Vec<(Vec<String>, Arc<CertifiedKey>)>,
}

impl Certificates {
    /// Reads every file again; on any error the certificates in use stay, and the error says
    /// which file and why.
    pub(crate) fn reload(&self) -> Result<(), Error> {
        self.reload_with(&rustls::crypto::ring::default_provider())
    }

    fn reload_with(&self, provider: &CryptoProvider) -> Result<(), Error> {
        let mut keys = Vec::with_capacity(self.files.len());
        for (cert, key) in &self.files {
            keys.push(load_pair(cert, key, provider)?);
        }
        let loaded = Arc::new(Loaded { keys });
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = loaded;
        Ok(())
    }
}

impl ResolvesServerCert for Certificates {
    /// The first certificate valid for the name the client asked for; without a name, or with
    /// one that none serves, the first certificate.
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let loaded = self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let wanted = hello.server_name();
        let chosen = wanted
            .and_then(|name| loaded.keys.iter().find(|(names, _)| names.iter().any(|n| name_matches(n, name))))
            .or(loaded.keys.first());
        chosen.map(|(_, key)| key.clone())
    }
}

/// True when a certificate's DNS name `pattern` (perhaps `*.example.com`) covers `name`.
fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            name.split_once('.').is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(suffix))
        }
        None => pattern.eq_ignore_ascii_case(name),
    }
}

/// A PEM file's error in words: a file that cannot be read says so, not "I/O error".
fn pem_failure(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(e) => format!("cannot read it: {e}"),
        other => other.to_string(),
    }
}

fn load_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<(Vec<String>, Arc<CertifiedKey>), Error> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| Error::config(format!("tls_cert {}: {}", cert.display(), pem_failure(e))))?;
    let Some(leaf) = chain.first() else {
        return Err(Error::config(format!("tls_cert {}: no certificate in it", cert.display())));
    };
    let names = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| Error::config(format!("tls_cert {}: {e}", cert.display())))?
        .valid_dns_names()
        .map(str::to_owned)
        .collect();
    let private_key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| Error::config(format!("tls_key {}: {}", key.display(), pem_failure(e))))?;
    let certified = CertifiedKey::from_der(chain, private_key, provider)
        .map_err(|e| Error::config(format!("tls_key {} for tls_cert {}: {e}", key.display(), cert.display())))?;
    Ok((names, Arc::new(certified)))
}

#[cfg(test)]
mod tests {
    use super::name_matches;

    #[test]
    fn names_match_exactly_or_by_one_wildcard_label() {
        assert!(name_matches("example.com", "EXAMPLE.com"));
        assert!(name_matches("*.example.com", "chat.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("*.example.com", "a.b.example.com"));
        assert!(!name_matches("example.com", "chat.example.com"));
    }
}
