//! One rustls crypto provider (ring) for every TLS client of the process.

/// Installs ring as the process's default provider; a second call is a no-op.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
