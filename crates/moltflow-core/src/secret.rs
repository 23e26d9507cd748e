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
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut digits = [0u8; 64];
        // A table and a fixed length: a third of the instructions of the generic encoder, which
        // the API-key path runs on every request.
        for (pair, byte) in digits.as_chunks_mut::<2>().0.iter_mut().zip(Sha256::digest(secret.as_bytes())) {
            *pair = [DIGITS[usize::from(byte >> 4)], DIGITS[usize::from(byte & 0xf)]];
        }
        Sha256Hex(digits)
    }

    pub fn as_str(&self) -> &str {
        // Hex digits are ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Compares two secrets (or digests) in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    // Eight bytes at a time: byte by byte, each behind its own optimisation barrier, is slower
    // than hashing the key (measured in BENCHMARKS.md, "the API-key path").
    let ((a_words, a_rest), (b_words, b_rest)) = (a.as_chunks::<8>(), b.as_chunks::<8>());
    let words = a_words
        .iter()
        .zip(b_words)
        .fold(subtle::Choice::from(1), |same, (x, y)| same & u64::from_ne_bytes(*x).ct_eq(&u64::from_ne_bytes(*y)));
    bool::from(words & a_rest.ct_eq(b_rest))
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
        // Whole words and the bytes after them are both compared.
        let digest = sha256_hex("a secret");
        assert!(constant_time_eq(digest.as_bytes(), sha256_hex("a secret").as_bytes()));
        for at in [0, 7, 8, 31, 63] {
            let mut other = digest.clone().into_bytes();
            other[at] ^= 1;
            assert!(!constant_time_eq(digest.as_bytes(), &other), "a difference at {at}");
        }
        assert!(constant_time_eq(b"0123456789", b"0123456789"));
        assert!(!constant_time_eq(b"0123456789", b"0123456788"));
    }
}
