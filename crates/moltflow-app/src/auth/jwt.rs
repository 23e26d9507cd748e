//! Access tokens: EdDSA (Ed25519) JWTs with a `kid`, verifiable offline through the JWKS.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use moltflow_core::clock::real_time_ms;
use moltflow_core::ids::new_id;
use moltflow_core::secret::{random_bytes, sha256_hex};
use moltflow_store::{Store, signing_keys};
use moltflow_types::Jwk;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Access tokens live 30 minutes.
pub const ACCESS_TOKEN_SECONDS: i64 = 30 * 60;
pub const AUDIENCE: &str = "moltflow";
/// Clock skew tolerated past `exp` (between this node and the one that issued the token).
const EXPIRY_LEEWAY_SECONDS: i64 = 5;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub tid: String,
    pub role: String,
    pub sid: String,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    Expired,
    Invalid,
}

pub struct JwtKeys {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    public_x: String,
}

impl JwtKeys {
    pub fn from_signing_key(key: &SigningKey, issuer: &str) -> anyhow::Result<JwtKeys> {
        let der = key.to_pkcs8_der().map_err(|e| anyhow::anyhow!("encoding signing key: {e}"))?;
        let public = key.verifying_key().to_bytes();
        let public_x = URL_SAFE_NO_PAD.encode(public);
        let kid = format!("ed25519-{}", &sha256_hex(&public_x)[..16]);
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        // Expiry is checked against the injected clock in `verify`, not the library's system time.
        validation.validate_exp = false;
        Ok(JwtKeys {
            kid,
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            decoding: DecodingKey::from_ed_der(&public),
            validation,
            issuer: issuer.to_owned(),
            public_x,
        })
    }

    /// The configured key, else the one kept in the database, else a new one stored there (the
    /// first node to store it wins; every node then reads the same key back).
    pub async fn load_or_create(
        store: &Store,
        configured: Option<&SecretString>,
        issuer: &str,
    ) -> anyhow::Result<JwtKeys> {
        if let Some(text) = configured {
            let key = parse_private_key(text.expose_secret()).ok_or_else(|| {
                anyhow::anyhow!("MOLTFLOW_JWT_PRIVATE_KEY: expected an Ed25519 PKCS#8 PEM or a base64 32-byte seed")
            })?;
            return Self::from_signing_key(&key, issuer);
        }
        let mut conn = store.conn().await?;
        if signing_keys::find_signing_key(&mut conn).await?.is_none() {
            let seed = random_bytes::<32>();
            // Only records when the key was made, before any clock is injected.
            signing_keys::insert_signing_key(&mut conn, &new_id(), &STANDARD.encode(seed), real_time_ms()).await?;
        }
        let (_, stored) = signing_keys::find_signing_key(&mut conn)
            .await?
            .ok_or_else(|| anyhow::anyhow!("signing key vanished after insert"))?;
        let key = parse_private_key(&stored).ok_or_else(|| anyhow::anyhow!("stored signing key is corrupt"))?;
        Self::from_signing_key(&key, issuer)
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn jwk(&self) -> Jwk {
        Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: self.public_x.clone(),
            kid: self.kid.clone(),
            alg: "EdDSA".into(),
            key_use: "sig".into(),
        }
    }

    /// A signed access token for a session, issued at `now` (ms); returns it with its claims.
    pub fn issue(
        &self,
        user_id: &str,
        tenant_id: &str,
        role: &str,
        session_id: &str,
        now: i64,
    ) -> anyhow::Result<(String, Claims)> {
        let iat = now / 1000;
        let claims = Claims {
            sub: user_id.to_owned(),
            tid: tenant_id.to_owned(),
            role: role.to_owned(),
            sid: session_id.to_owned(),
            jti: new_id(),
            iat,
            exp: iat + ACCESS_TOKEN_SECONDS,
            iss: self.issuer.clone(),
            aud: AUDIENCE.to_owned(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)?;
        Ok((token, claims))
    }

    /// Checks signature, `kid`, issuer, audience and expiry at `now` (ms).
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(TokenError::Invalid);
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| TokenError::Invalid)?
            .claims;
        if claims.exp + EXPIRY_LEEWAY_SECONDS < now / 1000 {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// PKCS#8 PEM, or the 32-byte seed in base64 (standard or URL-safe).
fn parse_private_key(text: &str) -> Option<SigningKey> {
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        return SigningKey::from_pkcs8_pem(text).ok();
    }
    let bytes = STANDARD.decode(text).or_else(|_| URL_SAFE_NO_PAD.decode(text)).ok()?;
    let seed: [u8; 32] = bytes.try_into().ok()?;
    Some(SigningKey::from_bytes(&seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn keys(seed: u8) -> JwtKeys {
        JwtKeys::from_signing_key(&SigningKey::from_bytes(&[seed; 32]), "http://issuer").unwrap()
    }

    #[test]
    fn issued_tokens_verify_and_carry_claims() {
        let k = keys(1);
        let (token, claims) = k.issue("u1", "t1", "owner", "s1", NOW).unwrap();
        let back = k.verify(&token, NOW).unwrap();
        assert_eq!(back.sub, "u1");
        assert_eq!(back.sid, "s1");
        assert_eq!(back.exp - back.iat, ACCESS_TOKEN_SECONDS);
        assert_eq!(claims.jti, back.jti);
    }

    #[test]
    fn foreign_and_tampered_tokens_are_invalid() {
        let (token, _) = keys(2).issue("u1", "t1", "owner", "s1", NOW).unwrap();
        assert_eq!(keys(1).verify(&token, NOW).unwrap_err(), TokenError::Invalid);
        let k = keys(1);
        let (token, _) = k.issue("u1", "t1", "owner", "s1", NOW).unwrap();
        let mut tampered = token.clone();
        tampered.insert(token.find('.').unwrap() + 3, 'x');
        assert_eq!(k.verify(&tampered, NOW).unwrap_err(), TokenError::Invalid);
        assert_eq!(k.verify("garbage", NOW).unwrap_err(), TokenError::Invalid);
    }

    #[test]
    fn tokens_expire_after_thirty_minutes_and_five_seconds_of_skew() {
        let k = keys(1);
        let (token, _) = k.issue("u1", "t1", "owner", "s1", NOW).unwrap();
        let end = NOW + ACCESS_TOKEN_SECONDS * 1000;
        assert!(k.verify(&token, end + 5_999).is_ok(), "within the leeway");
        assert_eq!(k.verify(&token, end + 6_000).unwrap_err(), TokenError::Expired);
    }

    #[test]
    fn seeds_parse_from_base64_and_pem() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let pem = key.to_pkcs8_pem(Default::default()).unwrap();
        assert_eq!(parse_private_key(&pem).unwrap().to_bytes(), [7; 32]);
        assert_eq!(parse_private_key(&STANDARD.encode([7u8; 32])).unwrap().to_bytes(), [7; 32]);
        assert!(parse_private_key("short").is_none());
    }
}
