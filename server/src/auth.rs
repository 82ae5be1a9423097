//! Tokens: HMAC-SHA256 signed claims with a role and an expiry, checked before a WebSocket
//! upgrade completes.
//!
//! A token is `v1.<payload>.<signature>`, both parts base64url without padding; the payload is
//! JSON `{"role":"player"|"spectator","sub":NAME,"exp":UNIX_SECONDS}` and the signature is
//! HMAC-SHA256 over `v1.<payload>`. With no configured secret the server runs in development
//! mode: a random key per process, and `POST /auth/guest` issues tokens to anyone.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::time::Duration;

type HmacSha256 = Hmac<Sha256>;

/// What a token lets its holder do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// May join matches and command their own entity.
    Player,
    /// May only watch.
    Spectator,
}

/// The signed contents of a token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub role: Role,
    /// Who the token was issued to (a display name).
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

/// Why a token was refused. The message is sent to the client, so it says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no token: pass one as `Authorization: Bearer TOKEN` or `?token=TOKEN`")]
    Missing,
    #[error("malformed token: expected v1.PAYLOAD.SIGNATURE")]
    Malformed,
    #[error("token signature does not match: it was not issued by this server")]
    BadSignature,
    #[error("token expired at {exp} (now {now}): get a new one")]
    Expired { exp: u64, now: u64 },
    #[error("a {have:?} token cannot {action}")]
    WrongRole { have: Role, action: &'static str },
}

/// Issues and checks tokens with one key.
#[derive(Clone)]
pub struct Authority {
    key: Vec<u8>,
    ttl: Duration,
    development: bool,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("development", &self.development)
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// Tokens signed with `secret`; `None` = development mode with a random key.
    pub fn new(secret: Option<&str>, ttl: Duration) -> Authority {
        match secret {
            Some(secret) => Authority {
                key: secret.as_bytes().to_vec(),
                ttl,
                development: false,
            },
            None => {
                let key: [u8; 32] = rand::random();
                Authority {
                    key: key.to_vec(),
                    ttl,
                    development: true,
                }
            }
        }
    }

    /// Whether guest tokens are handed out.
    pub fn development(&self) -> bool {
        self.development
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length.
        match HmacSha256::new_from_slice(&self.key) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts every key length"),
        }
    }

    /// Issue a token for `sub` with `role`, valid from `now` for the configured lifetime.
    pub fn issue(&self, role: Role, sub: &str, now_unix_s: u64) -> (String, Claims) {
        let claims = Claims {
            role,
            sub: sub.to_string(),
            exp: now_unix_s.saturating_add(self.ttl.as_secs()),
        };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signed = format!("v1.{payload}");
        let mut mac = self.mac();
        mac.update(signed.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        (format!("{signed}.{signature}"), claims)
    }

    /// Check a token's signature and expiry.
    pub fn verify(&self, token: &str, now_unix_s: u64) -> Result<Claims, AuthError> {
        let mut parts = token.split('.');
        let (Some("v1"), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| AuthError::Malformed)?;
        let mut mac = self.mac();
        mac.update(b"v1.");
        mac.update(payload.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| AuthError::BadSignature)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| AuthError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)?;
        if claims.exp <= now_unix_s {
            return Err(AuthError::Expired {
                exp: claims.exp,
                now: now_unix_s,
            });
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let a = Authority::new(Some("a secret of sixteen+"), Duration::from_secs(60));
        let (token, claims) = a.issue(Role::Player, "ana", 1_000);
        assert_eq!(a.verify(&token, 1_059), Ok(claims));
        assert_eq!(
            a.verify(&token, 1_060),
            Err(AuthError::Expired {
                exp: 1_060,
                now: 1_060
            })
        );
    }

    #[test]
    fn forged_and_foreign_tokens_are_refused() {
        let a = Authority::new(Some("a secret of sixteen+"), Duration::from_secs(60));
        let b = Authority::new(Some("another secret!!!!!"), Duration::from_secs(60));
        let (token, _) = b.issue(Role::Player, "eve", 0);
        assert_eq!(
            a.verify(&token, 1),
            Err(AuthError::BadSignature),
            "a token of another key"
        );
        // Swap in a spectator payload promoted to player: the signature no longer matches.
        let (real, _) = a.issue(Role::Spectator, "bo", 0);
        let forged_claims = Claims {
            role: Role::Player,
            sub: "bo".into(),
            exp: 60,
        };
        let forged_payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged_claims).expect("json"));
        let signature = real.rsplit('.').next().expect("three parts");
        assert_eq!(
            a.verify(&format!("v1.{forged_payload}.{signature}"), 1),
            Err(AuthError::BadSignature)
        );
        for junk in ["", "v1", "v1.a", "v2.a.b", "v1.a.b.c", "v1.!!.??"] {
            assert!(a.verify(junk, 1).is_err(), "{junk:?} should be refused");
        }
    }
}
