//! A certificate for the TLS tests, made by the `openssl` CLI the way an operator would: an
//! ECDSA P-256 key and a self-signed certificate for `localhost` and 127.0.0.1.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// A TLS client connection as a blocking stream.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// A certificate and its key, in a directory of their own (removed with it).
pub struct TestCert {
    pub dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCert {
    /// A fresh certificate for `names` (DNS names; 127.0.0.1 is always in it), under a
    /// directory named after `label` and the process.
    pub fn new(label: &str, names: &[&str]) -> TestCert {
        let dir = std::env::temp_dir().join(format!("smoke-tls-{label}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let mut san: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
        san.push("IP:127.0.0.1".into());
        let status = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
            .args(["-subj", &format!("/CN={}", names[0]), "-addext", &format!("subjectAltName={}", san.join(","))])
            // A server's certificate, not a CA's (webpki refuses a CA as the end entity).
            .args(["-addext", "basicConstraints=critical,CA:FALSE", "-addext", "extendedKeyUsage=serverAuth"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("the openssl CLI runs");
        assert!(status.success(), "openssl made the certificate");
        TestCert { dir, cert, key }
    }
}

impl TestCert {
    /// A rustls client that trusts this certificate, connected to `addr` as `name`, with the
    /// handshake done.
    pub fn connect(&self, addr: SocketAddr, name: &str) -> TlsStream {
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(&self.cert).unwrap()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from(name.to_owned()).unwrap();
        let mut connection = ClientConnection::new(Arc::new(config), name).unwrap();
        let mut socket = super::connect(addr);
        while connection.is_handshaking() {
            connection.complete_io(&mut socket).expect("the TLS handshake completes");
        }
        StreamOwned::new(connection, socket)
    }
}

impl Drop for TestCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
