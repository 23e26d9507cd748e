//! `Stripe-Signature` verification: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.payload">,…`.
//! Every `v1` is tried (Stripe sends several while a secret is being rolled), in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use moltflow_core::secret::constant_time_eq;

pub const TOLERANCE_SECONDS: i64 = 300;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing Stripe-Signature header")]
    Missing,
    #[error("malformed Stripe-Signature header")]
    Malformed,
    #[error("signature timestamp outside the tolerance")]
    Stale,
    #[error("no signature matches")]
    Mismatch,
}

pub fn sign(secret: &str, timestamp: i64, payload: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    hex::encode(mac.finalize().into_bytes())
}

pub fn verify(header: Option<&str>, payload: &[u8], secret: &str, now_seconds: i64) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", sig)) => signatures.push(sig),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now_seconds - timestamp).abs() > TOLERANCE_SECONDS {
        return Err(SignatureError::Stale);
    }
    let expected = sign(secret, timestamp, payload);
    let mut matched = false;
    for sig in signatures {
        matched |= constant_time_eq(sig.as_bytes(), expected.as_bytes());
    }
    if matched { Ok(()) } else { Err(SignatureError::Mismatch) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test";

    #[test]
    fn accepts_any_matching_v1_within_tolerance() {
        let body = br#"{"id":"evt_1"}"#;
        let good = sign(SECRET, 1000, body);
        let header = format!("t=1000,v1=deadbeef,v1={good},v0=old");
        assert_eq!(verify(Some(&header), body, SECRET, 1000 + 299), Ok(()));
    }

    #[test]
    fn refuses_missing_stale_tampered_and_foreign() {
        let body = br#"{"id":"evt_1"}"#;
        let good = format!("t=1000,v1={}", sign(SECRET, 1000, body));
        assert_eq!(verify(None, body, SECRET, 1000), Err(SignatureError::Missing));
        assert_eq!(verify(Some("garbage"), body, SECRET, 1000), Err(SignatureError::Malformed));
        assert_eq!(verify(Some("t=1000"), body, SECRET, 1000), Err(SignatureError::Malformed));
        assert_eq!(verify(Some(&good), body, SECRET, 1000 + 360), Err(SignatureError::Stale));
        assert_eq!(verify(Some(&good), br#"{"id":"evt_2"}"#, SECRET, 1000), Err(SignatureError::Mismatch));
        assert_eq!(verify(Some(&good), body, "whsec_other", 1000), Err(SignatureError::Mismatch));
    }
}
