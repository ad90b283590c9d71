//! The JWT bearer assertion of `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`: reading the RS256 token, the public key of the certificate uploaded to the app, and Salesforce's check of `iss`, `sub`, `aud` and `exp`.

use base64::Engine;

/// Why an assertion is refused, in the token endpoint's words (`error`, `error_description`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtRefusal {
    /// Not a signed RS256 JWT with the claims Salesforce needs, or a bad signature.
    InvalidAssertion,
    /// `iss` names no connected app.
    UnknownClient,
    /// `aud` is not the login host the request came to.
    BadAudience,
    /// `exp` has passed.
    Expired,
    /// `sub` is unknown, or the user has not approved the app and it does not pre-authorize.
    NotApproved,
}

impl JwtRefusal {
    /// `(error, error_description)` as Salesforce sends them.
    pub fn words(self) -> (&'static str, &'static str) {
        match self {
            JwtRefusal::InvalidAssertion => ("invalid_grant", "invalid assertion"),
            JwtRefusal::UnknownClient => ("invalid_client_id", "client identifier invalid"),
            JwtRefusal::BadAudience => ("invalid_grant", "audience is invalid"),
            JwtRefusal::Expired => ("invalid_grant", "expired authorization code"),
            JwtRefusal::NotApproved => ("invalid_grant", "user hasn't approved this consumer"),
        }
    }
}

/// The claims Salesforce reads from an assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The connected app's consumer key.
    pub iss: String,
    /// The username.
    pub sub: String,
    /// The login host (`https://login.salesforce.com`, `https://test.salesforce.com`, a site).
    pub aud: String,
    /// Expiry, epoch seconds.
    pub exp: i64,
}

/// An assertion split into its signed text, signature and claims (not yet verified).
#[derive(Debug, Clone)]
pub struct Assertion {
    signed: String,
    signature: Vec<u8>,
    /// The claims.
    pub claims: Claims,
}

fn b64url(part: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()
}

/// Reads `header.payload.signature`; the header must say RS256.
pub fn parse(token: &str) -> Result<Assertion, JwtRefusal> {
    let bad = JwtRefusal::InvalidAssertion;
    let mut parts = token.trim().split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad);
    };
    let header: serde_json::Value =
        serde_json::from_slice(&b64url(h).ok_or(bad)?).map_err(|_| bad)?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("RS256") {
        return Err(bad);
    }
    let payload: serde_json::Value =
        serde_json::from_slice(&b64url(p).ok_or(bad)?).map_err(|_| bad)?;
    let text = |k: &str| payload.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let aud = match payload.get("aud") {
        Some(serde_json::Value::String(a)) => a.clone(),
        Some(serde_json::Value::Array(list)) if list.len() == 1 => {
            list[0].as_str().ok_or(bad)?.to_string()
        }
        _ => return Err(bad),
    };
    let claims = Claims {
        iss: text("iss").ok_or(bad)?,
        sub: text("sub").ok_or(bad)?,
        aud,
        exp: payload.get("exp").and_then(|e| e.as_i64()).ok_or(bad)?,
    };
    Ok(Assertion {
        signed: format!("{h}.{p}"),
        signature: b64url(s).ok_or(bad)?,
        claims,
    })
}

impl Assertion {
    /// Whether the signature verifies with an RSA public key (PKCS#1 `RSAPublicKey` DER).
    pub fn verifies_with(&self, rsa_public_key: &[u8]) -> bool {
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            rsa_public_key,
        )
        .verify(self.signed.as_bytes(), &self.signature)
        .is_ok()
    }
}

/// One DER element: its tag, its contents and what follows it.
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The RSA key inside a `SubjectPublicKeyInfo`.
fn key_of_spki(spki: &[u8]) -> Option<Vec<u8>> {
    let (_, _algorithm, rest) = der(spki)?;
    let (tag, bits, _) = der(rest)?;
    if tag != 0x03 {
        return None;
    }
    let (&unused, key) = bits.split_first()?;
    (unused == 0).then(|| key.to_vec())
}

/// The RSA public key (PKCS#1 DER) of a PEM certificate (`BEGIN CERTIFICATE`) or public key
/// (`BEGIN PUBLIC KEY`).
pub fn rsa_public_key(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    let (_, outer, _) = der(&bytes)?;
    if pem.contains("BEGIN PUBLIC KEY") {
        return key_of_spki(outer);
    }
    // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
    let (_, mut tbs, _) = der(outer)?;
    // tbsCertificate: [0] version?, serial, signature, issuer, validity, subject, spki, …
    let (tag, _, rest) = der(tbs)?;
    if tag == 0xa0 {
        tbs = rest;
    }
    for _ in 0..5 {
        let (_, _, rest) = der(tbs)?;
        tbs = rest;
    }
    let (tag, spki, _) = der(tbs)?;
    (tag == 0x30).then_some(())?;
    key_of_spki(spki)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_tokens_are_invalid_assertions() {
        for token in [
            "",
            "a.b",
            "a.b.c.d",
            "e30.e30.",
            "eyJhbGciOiJIUzI1NiJ9.e30.AA",
        ] {
            assert_eq!(
                parse(token).err(),
                Some(JwtRefusal::InvalidAssertion),
                "{token}"
            );
        }
        assert_eq!(
            rsa_public_key("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"),
            None
        );
    }
}
