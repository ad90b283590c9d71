//! Salesforce's OAuth 2.0 endpoints as Ferry uses them: code exchange, refresh, revoke and introspection, with the token response checked and failures classified.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::fmt;
use std::time::Duration;

/// A token response from `/services/oauth2/token`, as Salesforce sends it (no `expires_in`).
#[derive(Clone, Deserialize)]
pub struct TokenResponse {
    /// `{orgId15}!{opaque}`.
    pub access_token: String,
    /// Present on the code exchange when the scope allows it, and on refresh only under rotation.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// base64(HMAC-SHA256(client_secret, id + issued_at)).
    #[serde(default)]
    pub signature: Option<String>,
    /// Granted scopes, space-separated.
    #[serde(default)]
    pub scope: Option<String>,
    /// OpenID Connect token when `openid` was granted.
    #[serde(default)]
    pub id_token: Option<String>,
    /// The org's instance (My Domain) URL: where API calls go.
    pub instance_url: String,
    /// Identity URL `…/id/{orgId}/{userId}`.
    pub id: String,
    /// `Bearer`.
    #[serde(default)]
    pub token_type: Option<String>,
    /// Epoch milliseconds, as a string.
    #[serde(default)]
    pub issued_at: Option<String>,
    /// The whole JSON object, kept as `credentials.raw`.
    #[serde(skip)]
    pub raw: serde_json::Value,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[redacted]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("scope", &self.scope)
            .field("instance_url", &self.instance_url)
            .field("id", &self.id)
            .field("issued_at", &self.issued_at)
            .finish()
    }
}

impl TokenResponse {
    /// Org and user ids parsed from the identity URL.
    pub fn identity(&self) -> Result<Identity, OAuthError> {
        Identity::from_id_url(&self.id)
    }

    /// Whether a scope was granted (`api`, `refresh_token`, …).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope
            .as_deref()
            .is_some_and(|s| s.split_whitespace().any(|x| x == scope))
    }

    /// Checks `signature` against the client secret, in constant time. Salesforce signs every
    /// code-exchange and refresh answer, so one without a signature (or `issued_at`) is refused
    /// rather than waved through.
    pub fn verify_signature(&self, client_secret: &str) -> Result<(), OAuthError> {
        let (Some(signature), Some(issued_at)) = (&self.signature, &self.issued_at) else {
            return Err(OAuthError::Invalid(
                "token response carries no signature; Salesforce signs every token answer".into(),
            ));
        };
        let mismatch = || {
            OAuthError::Invalid("token response signature does not match the client secret".into())
        };
        let claimed = base64::engine::general_purpose::STANDARD
            .decode(signature)
            .map_err(|_| mismatch())?;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(client_secret.as_bytes()).map_err(|_| mismatch())?;
        mac.update(self.id.as_bytes());
        mac.update(issued_at.as_bytes());
        mac.verify_slice(&claimed).map_err(|_| mismatch())
    }
}

/// base64(HMAC-SHA256(key = client_secret, message = id + issued_at)).
pub fn sign(client_secret: &str, id: &str, issued_at: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(client_secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(id.as_bytes());
    mac.update(issued_at.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The org and user a token belongs to, from the identity URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// 18-character org id (`00D…`).
    pub org_id: String,
    /// 18-character user id (`005…`).
    pub user_id: String,
}

impl Identity {
    /// Parses `https://host/id/{orgId}/{userId}`.
    pub fn from_id_url(id: &str) -> Result<Identity, OAuthError> {
        let bad = || OAuthError::Invalid(format!("identity URL has no org and user ids: {id}"));
        let url = url::Url::parse(id).map_err(|_| bad())?;
        let segments: Vec<&str> = url.path_segments().map(|s| s.collect()).unwrap_or_default();
        match segments.as_slice() {
            [.., "id", org, user] if org.starts_with("00D") && user.starts_with("005") => {
                Ok(Identity {
                    org_id: (*org).to_string(),
                    user_id: (*user).to_string(),
                })
            }
            _ => Err(bad()),
        }
    }
}

/// Whether a failure is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The grant or client is dead: the user must reconnect (`invalid_grant`, `invalid_client_id`, `invalid_client`).
    Permanent,
    /// Try again later (5xx, timeouts, network, "already being processed").
    Transient,
}

/// A failed call to an OAuth endpoint.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// Salesforce answered with `{error, error_description}`.
    #[error("{error}: {description}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// `error`.
        error: String,
        /// `error_description`.
        description: String,
    },
    /// An unexpected status without the OAuth error shape.
    #[error("unexpected HTTP {status} from the token endpoint")]
    Status {
        /// HTTP status.
        status: u16,
    },
    /// The request did not complete (connect, timeout, body).
    #[error("network error: {0}")]
    Network(String),
    /// The response was not what Salesforce sends.
    #[error("invalid token response: {0}")]
    Invalid(String),
}

impl OAuthError {
    /// Permanent or transient, as the token lifecycle needs to know.
    pub fn kind(&self) -> FailureKind {
        match self {
            OAuthError::Rejected {
                error, description, ..
            } => {
                let transient_description = description.contains("already being processed");
                match error.as_str() {
                    "invalid_grant"
                    | "invalid_client_id"
                    | "invalid_client"
                    | "inactive_user"
                    | "inactive_org"
                    | "unsupported_grant_type"
                    | "redirect_uri_mismatch"
                    | "invalid_scope"
                        if !transient_description =>
                    {
                        FailureKind::Permanent
                    }
                    _ => FailureKind::Transient,
                }
            }
            OAuthError::Status { status } if *status >= 500 || *status == 429 => {
                FailureKind::Transient
            }
            OAuthError::Status { .. } => FailureKind::Permanent,
            OAuthError::Network(_) => FailureKind::Transient,
            OAuthError::Invalid(_) => FailureKind::Permanent,
        }
    }

    /// The OAuth `error` code, when Salesforce gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            OAuthError::Rejected { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// A client of one login host's OAuth endpoints for one connected app.
#[derive(Clone)]
pub struct OAuthClient {
    http: reqwest::Client,
    /// Base URL of the login host (`https://login.salesforce.com`, a My Domain, or the emulator).
    pub login_base: String,
    /// Consumer key.
    pub client_id: String,
    client_secret: String,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("login_base", &self.login_base)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .finish()
    }
}

/// What introspection tells about a token.
#[derive(Debug, Clone, Deserialize)]
pub struct Introspection {
    /// Whether the token is live.
    pub active: bool,
    /// Expiry, epoch seconds.
    #[serde(default)]
    pub exp: Option<i64>,
    /// Issued, epoch seconds.
    #[serde(default)]
    pub iat: Option<i64>,
}

impl OAuthClient {
    /// A client for `login_base` with the app's credentials.
    pub fn new(
        http: reqwest::Client,
        login_base: &str,
        client_id: &str,
        client_secret: &str,
    ) -> Self {
        OAuthClient {
            http,
            login_base: login_base.trim_end_matches('/').to_string(),
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
        }
    }

    /// The authorize URL for the web-server flow with PKCE S256.
    pub fn authorize_url(
        &self,
        redirect_uri: &str,
        scopes: &str,
        state: &str,
        code_challenge: &str,
        extra: &[(&str, &str)],
    ) -> String {
        let mut url = format!("{}/services/oauth2/authorize?", self.login_base);
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state)
            .append_pair("code_challenge", code_challenge)
            .append_pair("code_challenge_method", "S256");
        if !scopes.is_empty() {
            q.append_pair("scope", scopes);
        }
        for (k, v) in extra {
            q.append_pair(k, v);
        }
        url.push_str(&q.finish());
        url
    }

    async fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<reqwest::Response, OAuthError> {
        self.http
            .post(format!("{}{path}", self.login_base))
            .form(form)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| OAuthError::Network(e.without_url().to_string()))
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Result<TokenResponse, OAuthError> {
        let resp = self.post_form("/services/oauth2/token", form).await?;
        let status = resp.status().as_u16();
        let body: serde_json::Value = match resp.json().await {
            Ok(b) => b,
            Err(_) => return Err(OAuthError::Status { status }),
        };
        if status != 200 {
            return Err(rejection(status, &body));
        }
        let mut token: TokenResponse =
            serde_json::from_value(body.clone()).map_err(|e| OAuthError::Invalid(e.to_string()))?;
        token.raw = body;
        token.verify_signature(&self.client_secret)?;
        Ok(token)
    }

    /// Exchanges an authorization code (with its PKCE verifier) for tokens.
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
        code_verifier: &str,
    ) -> Result<TokenResponse, OAuthError> {
        self.token_request(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", &self.client_id),
            ("client_secret", &self.client_secret),
            ("code_verifier", code_verifier),
        ])
        .await
    }

    /// Uses a refresh token. The response has a new refresh token only under rotation.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenResponse, OAuthError> {
        self.token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", &self.client_id),
            ("client_secret", &self.client_secret),
        ])
        .await
    }

    /// Revokes a token (a refresh token revokes its whole family).
    pub async fn revoke(&self, token: &str) -> Result<(), OAuthError> {
        let resp = self
            .post_form("/services/oauth2/revoke", &[("token", token)])
            .await?;
        let status = resp.status().as_u16();
        if status == 200 {
            return Ok(());
        }
        let body: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
        Err(rejection(status, &body))
    }

    /// Asks whether a token is live and when it expires.
    pub async fn introspect(&self, token: &str, hint: &str) -> Result<Introspection, OAuthError> {
        let resp = self
            .post_form(
                "/services/oauth2/introspect",
                &[
                    ("token", token),
                    ("token_type_hint", hint),
                    ("client_id", &self.client_id),
                    ("client_secret", &self.client_secret),
                ],
            )
            .await?;
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
        if status != 200 {
            return Err(rejection(status, &body));
        }
        serde_json::from_value(body).map_err(|e| OAuthError::Invalid(e.to_string()))
    }
}

/// Asks the org who an access token belongs to: `GET {instance_url}/services/oauth2/userinfo`.
/// Salesforce answers for the token's own org and user, so the answer can be trusted where a
/// caller's claim cannot (an imported connection's `org_id`).
pub async fn userinfo(
    http: &reqwest::Client,
    instance_url: &str,
    access_token: &str,
) -> Result<Identity, OAuthError> {
    let resp = http
        .get(format!(
            "{}/services/oauth2/userinfo",
            instance_url.trim_end_matches('/')
        ))
        .bearer_auth(access_token)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| OAuthError::Network(e.without_url().to_string()))?;
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
    if status != 200 {
        return Err(rejection(status, &body));
    }
    let field = |name: &str| body.get(name).and_then(|v| v.as_str()).map(str::to_string);
    match (field("organization_id"), field("user_id")) {
        (Some(org_id), Some(user_id))
            if org_id.starts_with("00D") && user_id.starts_with("005") =>
        {
            Ok(Identity { org_id, user_id })
        }
        _ => Err(OAuthError::Invalid(
            "userinfo names no organization and user".into(),
        )),
    }
}

fn rejection(status: u16, body: &serde_json::Value) -> OAuthError {
    match (
        body.get("error").and_then(|e| e.as_str()),
        body.get("error_description").and_then(|e| e.as_str()),
    ) {
        (Some(error), description) => OAuthError::Rejected {
            status,
            error: error.to_string(),
            description: description.unwrap_or_default().to_string(),
        },
        _ => OAuthError::Status { status },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(signature: Option<&str>) -> TokenResponse {
        TokenResponse {
            access_token: "00D!x".into(),
            refresh_token: None,
            signature: signature.map(str::to_string),
            scope: None,
            id_token: None,
            instance_url: "https://acme.my.salesforce.com".into(),
            id: "https://login.salesforce.com/id/00Dd0000000dsWLEAY/005d0000000b8kWAAQ".into(),
            token_type: None,
            issued_at: Some("1332093834282".into()),
            raw: serde_json::Value::Null,
        }
    }

    #[test]
    fn a_token_answer_must_carry_the_right_signature() {
        let secret = "some consumer secret";
        let good = sign(secret, &answer(None).id, "1332093834282");
        assert!(answer(Some(&good)).verify_signature(secret).is_ok());
        assert!(answer(None).verify_signature(secret).is_err(), "absent");
        assert!(answer(Some(&good)).verify_signature("other").is_err());
        assert!(answer(Some("not base64!"))
            .verify_signature(secret)
            .is_err());
        let mut tampered = answer(Some(&good));
        tampered.id = tampered.id.replace("005d", "005e");
        assert!(tampered.verify_signature(secret).is_err());
    }

    #[test]
    fn signature_matches_the_known_answer_vector() {
        assert_eq!(
            sign(
                "some consumer secret",
                "https://login.salesforce.com/id/00Dd0000000dsWLEAY/005d0000000b8kWAAQ",
                "1332093834282"
            ),
            "tDZZRHgqtJWXw1cEjyuazDNkonKuIYT2EYnJrC7zbc8="
        );
    }

    #[test]
    fn identity_urls_give_org_and_user() {
        let id = Identity::from_id_url(
            "https://login.salesforce.com/id/00D5g000000ABCDEAW/0055g00000XYZ12AAB",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(id.org_id, "00D5g000000ABCDEAW");
        assert_eq!(id.user_id, "0055g00000XYZ12AAB");
        assert!(Identity::from_id_url("https://login.salesforce.com/services/data").is_err());
    }

    #[test]
    fn invalid_grant_is_permanent_and_busy_is_transient() {
        let rejected = |e: &str, d: &str| OAuthError::Rejected {
            status: 400,
            error: e.into(),
            description: d.into(),
        };
        assert_eq!(
            rejected("invalid_grant", "expired access/refresh token").kind(),
            FailureKind::Permanent
        );
        assert_eq!(
            rejected("invalid_client_id", "client identifier invalid").kind(),
            FailureKind::Permanent
        );
        assert_eq!(
            rejected("invalid_grant", "token request is already being processed").kind(),
            FailureKind::Transient
        );
        assert_eq!(
            OAuthError::Status { status: 503 }.kind(),
            FailureKind::Transient
        );
        assert_eq!(
            OAuthError::Network("reset".into()).kind(),
            FailureKind::Transient
        );
    }
}
