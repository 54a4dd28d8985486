//! A certificate for the TLS tests, made by the `openssl` CLI the way an operator would: an
//! ECDSA P-256 key and a self-signed certificate for `localhost` and 127.0.0.1.

use std::path::PathBuf;
use std::process::Command;

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

impl Drop for TestCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
