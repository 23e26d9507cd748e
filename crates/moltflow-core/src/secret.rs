//! Random secrets and their stored form: a secret leaves the service once and is kept as SHA-256.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// `bytes` from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The OS generator failing is not recoverable for a service that mints credentials.
    getrandom::getrandom(&mut buf).expect("operating system random generator unavailable");
    buf
}

/// An opaque token of 256 random bits, URL-safe base64 (43 characters).
pub fn new_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// Base62 characters from the CSPRNG, without modulo bias.
pub fn random_base62(len: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in random_bytes::<64>() {
            // 248 = 62 * 4: bytes above it would favour the first characters.
            if b < 248 && out.len() < len {
                out.push(ALPHABET[(b % 62) as usize] as char);
            }
        }
    }
    out
}

/// Lower-case hex SHA-256 of a secret: what the database keeps instead of the secret.
pub fn sha256_hex(secret: &str) -> String {
    Sha256Hex::of(secret).as_str().to_owned()
}

/// The lower-case hex SHA-256 of a secret, on the stack: an API-key request looks its key up by
/// it without allocating.
#[derive(Clone, Copy)]
pub struct Sha256Hex([u8; 64]);

impl Sha256Hex {
    pub fn of(secret: &str) -> Sha256Hex {
        let mut digits = [0u8; 64];
        // 32 bytes always fill 64 digits: this cannot fail.
        let _ = hex::encode_to_slice(Sha256::digest(secret.as_bytes()), &mut digits);
        Sha256Hex(digits)
    }

    pub fn as_str(&self) -> &str {
        // Hex digits are ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Compares two secrets (or digests) in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_and_distinct() {
        let a = new_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, new_token());
    }

    #[test]
    fn base62_has_requested_length_and_alphabet() {
        let s = random_base62(44);
        assert_eq!(s.len(), 44);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn sha256_is_hex_of_digest() {
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn constant_time_eq_compares_content() {
        assert!(constant_time_eq(b"same", b"same"));
        assert!(!constant_time_eq(b"same", b"sama"));
        assert!(!constant_time_eq(b"same", b"samesame"));
    }
}
