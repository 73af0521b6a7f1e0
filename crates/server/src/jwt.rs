//! JWT auth tokens (etcd's `--auth-token jwt,pub-key=...,priv-key=...,sign-method=...,ttl=...`).
//!
//! A token is a signed JWT with etcd's claims: `username`, `revision` (the auth revision when it
//! was issued) and `exp`. Unlike simple tokens, nothing about it is stored: any member holding
//! the public key (or the shared secret, for HS*) verifies it, so tokens survive restarts and
//! work on every member. As etcd, a token issued before the latest auth change is refused with
//! `etcdserver: revision of auth store is old` (clients then authenticate again), which is how
//! a password change or a revoked role takes effect on tokens already handed out.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use quorum_mvcc::MvccError;
use serde::{Deserialize, Serialize};

/// etcd's default JWT lifetime.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5 * 60);

/// The parsed `--auth-token jwt,...` options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtOptions {
    /// `pub-key`: PEM public key (RS*, PS*, ES*); verifies tokens.
    pub pub_key: Option<PathBuf>,
    /// `priv-key`: PEM private key (RS*, PS*, ES*) or the shared secret (HS*); signs tokens.
    pub priv_key: Option<PathBuf>,
    /// `sign-method`, e.g. `RS256`.
    pub sign_method: String,
    /// `ttl`: lifetime of a token.
    pub ttl: Duration,
}

impl JwtOptions {
    /// Parses the fields after `jwt,` (etcd's syntax: `key=value` pairs separated by commas).
    pub fn parse(fields: &str) -> Result<JwtOptions, String> {
        let mut o = JwtOptions {
            pub_key: None,
            priv_key: None,
            sign_method: String::new(),
            ttl: DEFAULT_TTL,
        };
        for field in fields.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| format!("--auth-token jwt: {field:?} is not key=value"))?;
            match k {
                "pub-key" => o.pub_key = Some(PathBuf::from(v)),
                "priv-key" => o.priv_key = Some(PathBuf::from(v)),
                "sign-method" => o.sign_method = v.to_string(),
                "ttl" => {
                    o.ttl = crate::config::parse_duration(v).ok_or_else(|| {
                        format!("--auth-token jwt: ttl={v:?} is not a duration (e.g. ttl=5m)")
                    })?
                }
                _ => {
                    return Err(format!(
                    "--auth-token jwt: unknown option {k:?} (pub-key, priv-key, sign-method, ttl)"
                ))
                }
            }
        }
        if o.sign_method.is_empty() {
            return Err("--auth-token jwt needs sign-method=... (e.g. RS256)".into());
        }
        Ok(o)
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    username: String,
    revision: u64,
    exp: u64,
}

/// Issues and verifies JWT tokens with one key pair (or secret).
pub struct JwtTokens {
    alg: Algorithm,
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
    ttl: Duration,
}

fn read(what: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("--auth-token jwt: {what} {}: {e}", path.display()))
}

impl JwtTokens {
    /// Loads the keys `o` names; errors say which file or option is wrong.
    pub fn load(o: &JwtOptions) -> Result<JwtTokens, String> {
        let alg: Algorithm = o.sign_method.parse().map_err(|_| {
            format!(
                "--auth-token jwt: sign-method {:?} is not supported (RS256/384/512, PS256/384/512, \
                 ES256/384, HS256/384/512, EdDSA)",
                o.sign_method
            )
        })?;
        let bad = |what: &str, path: &Path, e: jsonwebtoken::errors::Error| {
            format!("--auth-token jwt: {what} {}: {e}", path.display())
        };
        let (encoding, decoding) = match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                let path = o
                    .priv_key
                    .as_ref()
                    .ok_or("--auth-token jwt: HS* sign methods need priv-key=<secret file>")?;
                let secret = read("priv-key", path)?;
                if secret.is_empty() {
                    // Anyone could sign tokens with an empty secret (etcd: ErrMissingKey).
                    return Err(format!(
                        "--auth-token jwt: priv-key {} is empty; give the shared secret",
                        path.display()
                    ));
                }
                (
                    Some(EncodingKey::from_secret(&secret)),
                    DecodingKey::from_secret(&secret),
                )
            }
            _ => {
                let path = o
                    .pub_key
                    .as_ref()
                    .ok_or("--auth-token jwt: this sign method needs pub-key=<PEM file>")?;
                let pem = read("pub-key", path)?;
                let decoding = match alg {
                    Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(&pem),
                    Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
                    _ => DecodingKey::from_rsa_pem(&pem),
                }
                .map_err(|e| bad("pub-key", path, e))?;
                let encoding = match &o.priv_key {
                    None => None,
                    Some(path) => {
                        let pem = read("priv-key", path)?;
                        Some(
                            match alg {
                                Algorithm::ES256 | Algorithm::ES384 => {
                                    EncodingKey::from_ec_pem(&pem)
                                }
                                Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
                                _ => EncodingKey::from_rsa_pem(&pem),
                            }
                            .map_err(|e| bad("priv-key", path, e))?,
                        )
                    }
                };
                (encoding, decoding)
            }
        };
        let tokens = JwtTokens {
            alg,
            encoding,
            decoding,
            ttl: o.ttl,
        };
        // Keys that are not a pair (or do not suit the method) would issue tokens no member
        // accepts: check with a probe token now (etcd: ErrKeyMismatch).
        if tokens.encoding.is_some() {
            let probe = tokens
                .issue("probe", 0)
                .map_err(|e| format!("--auth-token jwt: the keys cannot sign: {e}"))?;
            tokens.verify(&probe).map_err(|_| {
                "--auth-token jwt: pub-key does not verify what priv-key signs (not a key pair?)"
                    .to_string()
            })?;
        }
        Ok(tokens)
    }

    /// A token for `user` at auth revision `revision`. Fails on a member without the private
    /// key (it can verify tokens, not issue them), as etcd.
    pub fn issue(&self, user: &str, revision: u64) -> Result<String, MvccError> {
        let Some(key) = &self.encoding else {
            return Err(MvccError::Storage(
                "this member has no JWT priv-key: it verifies tokens but cannot issue them".into(),
            ));
        };
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(self.ttl)
            .as_secs();
        let claims = Claims {
            username: user.to_string(),
            revision,
            exp,
        };
        jsonwebtoken::encode(&Header::new(self.alg), &claims, key)
            .map_err(|e| MvccError::Storage(format!("signing a JWT failed: {e}")))
    }

    /// The user and auth revision of a valid, unexpired token; `InvalidAuthToken` otherwise.
    pub fn verify(&self, token: &str) -> Result<(String, u64), MvccError> {
        let mut v = Validation::new(self.alg);
        v.leeway = 0;
        v.required_spec_claims = ["exp".to_string()].into_iter().collect();
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .map_err(|_| MvccError::InvalidAuthToken)?;
        Ok((data.claims.username, data.claims.revision))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs(dir: &Path, ttl: &str) -> JwtTokens {
        let secret = dir.join("secret");
        std::fs::write(&secret, b"a shared secret of enough length").unwrap();
        let o = JwtOptions::parse(&format!(
            "priv-key={},sign-method=HS256,ttl={ttl}",
            secret.display()
        ))
        .unwrap();
        JwtTokens::load(&o).unwrap()
    }

    #[test]
    fn options_parse_like_etcd() {
        let o = JwtOptions::parse("pub-key=a.pub,priv-key=a,sign-method=RS256,ttl=10m").unwrap();
        assert_eq!(o.pub_key, Some(PathBuf::from("a.pub")));
        assert_eq!(o.priv_key, Some(PathBuf::from("a")));
        assert_eq!(o.ttl, Duration::from_secs(600));
        assert!(
            JwtOptions::parse("pub-key=a.pub").is_err(),
            "no sign-method"
        );
        assert!(JwtOptions::parse("sign-method=RS256,colour=blue").is_err());
        assert!(JwtOptions::parse("sign-method=RS256,ttl=soon").is_err());
        let o = JwtOptions::parse("sign-method=XX999").unwrap();
        assert!(JwtTokens::load(&o).is_err(), "unknown method");
        let o = JwtOptions::parse("sign-method=RS256").unwrap();
        assert!(JwtTokens::load(&o).is_err(), "RS256 without pub-key");
    }

    #[test]
    fn empty_secrets_and_mismatched_keys_are_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        let o =
            JwtOptions::parse(&format!("priv-key={},sign-method=HS256", empty.display())).unwrap();
        let e = JwtTokens::load(&o).err().expect("an empty secret");
        assert!(e.contains("empty"), "{e}");
        let write = |name: &str, pem: String| {
            let p = dir.path().join(name);
            std::fs::write(&p, pem).unwrap();
            p
        };
        let (a, b) = (
            rcgen::KeyPair::generate().unwrap(),
            rcgen::KeyPair::generate().unwrap(),
        );
        let (a_pub, a_priv, b_priv) = (
            write("a.pub", a.public_key_pem()),
            write("a.key", a.serialize_pem()),
            write("b.key", b.serialize_pem()),
        );
        let load = |private: &Path| {
            let o = JwtOptions::parse(&format!(
                "pub-key={},priv-key={},sign-method=ES256",
                a_pub.display(),
                private.display()
            ))
            .unwrap();
            JwtTokens::load(&o)
        };
        assert!(load(&a_priv).is_ok(), "a pair");
        let e = load(&b_priv).err().expect("not a pair");
        assert!(e.contains("not a key pair"), "{e}");
    }

    #[test]
    fn tokens_carry_user_and_revision_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let t = hs(dir.path(), "5m");
        let token = t.issue("alice", 7).unwrap();
        assert_eq!(t.verify(&token).unwrap(), ("alice".to_string(), 7));
        // Tampered, foreign and expired tokens are refused.
        let mut bad = token.clone();
        bad.push('x');
        assert!(t.verify(&bad).is_err());
        assert!(t.verify("alice.7").is_err());
        let other = {
            let d = tempfile::tempdir().unwrap();
            let secret = d.path().join("secret");
            std::fs::write(&secret, b"another secret entirely, as long").unwrap();
            let o = JwtOptions::parse(&format!("priv-key={},sign-method=HS256", secret.display()))
                .unwrap();
            JwtTokens::load(&o).unwrap()
        };
        assert!(other.verify(&token).is_err(), "signed with another key");
        let expired = hs(dir.path(), "0s").issue("alice", 7).unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        assert!(t.verify(&expired).is_err(), "expired");
    }
}
