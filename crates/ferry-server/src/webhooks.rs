//! Outgoing webhooks: Nango's auth payloads, signed (`X-Nango-Hmac-Sha256` over the sorted, compact JSON body; the legacy `X-Nango-Signature` too; and the replay-resistant Standard Webhooks `webhook-id`/`webhook-timestamp`/`webhook-signature`), sent to the connection's `webhook_url_override` or the environment's URL only when the target policy allows the address, delivered by a worker whose `run_one` step tests drive, retried with backoff on 5xx and network errors.

use crate::state::AppState;
use ferry_store::{DeliveryOutcome, WebhookDelivery};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// A claimed delivery is leased for this long.
pub const LEASE_MS: i64 = 60_000;
/// Attempts before a delivery is given up.
pub const MAX_ATTEMPTS: i64 = 5;
/// Per-attempt timeout.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Sorts object keys recursively, so the signed bytes are stable.
pub fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&map[k])))
                    .collect::<Map<_, _>>(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// `hex(HMAC-SHA256(key, body))`.
pub fn hmac_signature(key: &str, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_bytes()) else {
        return String::new();
    };
    mac.update(body);
    hex(&mac.finalize().into_bytes())
}

/// The legacy `hex(SHA256(key ‖ body))`.
pub fn legacy_signature(key: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(key.as_bytes());
    hasher.update(body);
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The auth webhook template for a connection event; the store fills `connectionId` and
/// `operation` when it queues it with the connection.
pub fn auth_payload(
    environment: &str,
    integration_key: &str,
    provider: &str,
    tags: &Value,
    end_user: Option<&Value>,
) -> Value {
    let mut payload = serde_json::json!({
        "from": "nango",
        "type": "auth",
        "providerConfigKey": integration_key,
        "authMode": "OAUTH2",
        "provider": provider,
        "environment": environment,
        "success": true,
        "tags": tags,
    });
    if let (Some(Value::Object(u)), Some(map)) = (end_user, payload.as_object_mut()) {
        map.insert(
            "endUser".into(),
            serde_json::json!({
                "endUserId": u.get("id"),
                "endUserEmail": u.get("email"),
                "organizationId": u.get("organization").and_then(|o| o.get("id")),
                "tags": u.get("tags").cloned().unwrap_or_else(|| serde_json::json!({})),
            }),
        );
    }
    payload
}

/// What one worker step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing was due.
    Idle,
    /// Sent, receiver answered 2xx.
    Delivered,
    /// Failed for now; will be retried.
    Retried,
    /// Failed for good (4xx, or attempts exhausted).
    Failed,
    /// No webhook URL configured for the environment.
    Skipped,
}

/// Backoff before attempt `n + 1`: 3 s, 6 s, 12 s, … with up to 20 % jitter.
fn backoff_ms(attempts: i64) -> i64 {
    let base = 3_000i64.saturating_mul(1 << attempts.clamp(1, 10).saturating_sub(1));
    base + rand::random_range(0..=base / 5)
}

/// Where a delivery goes: the connection's `webhook_url_override` when it names a connection
/// that has one (Nango: the override replaces the environment's URLs), else the environment's URL.
async fn target_url(
    state: &AppState,
    env: &ferry_store::Environment,
    delivery: &WebhookDelivery,
) -> Result<Option<String>, ferry_store::StoreError> {
    let payload = &delivery.payload;
    if let (Some(key), Some(connection_id)) = (
        payload.get("providerConfigKey").and_then(Value::as_str),
        payload.get("connectionId").and_then(Value::as_str),
    ) {
        let connection = state
            .store
            .get_connection(env.id, key, connection_id)
            .await?;
        if let Some(url) = connection
            .and_then(|c| c.webhook_url_override)
            .filter(|u| !u.is_empty())
        {
            return Ok(Some(url));
        }
    }
    Ok(env.webhook_url.clone().filter(|u| !u.is_empty()))
}

/// Claims and attempts one due delivery.
pub async fn run_one(state: &AppState) -> Result<Outcome, ferry_store::StoreError> {
    let now = crate::api::now_ms();
    let Some(delivery) = state.store.claim_webhook(now, LEASE_MS).await? else {
        return Ok(Outcome::Idle);
    };
    let environments = state.store.list_environments().await?;
    let Some(env) = environments
        .into_iter()
        .find(|e| e.id == delivery.environment_id)
    else {
        state
            .store
            .finish_webhook(delivery.id, &DeliveryOutcome::Skipped, now)
            .await?;
        return Ok(Outcome::Skipped);
    };
    let Some(url) = target_url(state, &env, &delivery).await? else {
        state
            .store
            .finish_webhook(delivery.id, &DeliveryOutcome::Skipped, now)
            .await?;
        return Ok(Outcome::Skipped);
    };
    let (outcome, result) = attempt(state, &delivery, &url, &env.webhook_signing_key).await;
    state
        .store
        .finish_webhook(delivery.id, &outcome, crate::api::now_ms())
        .await?;
    Ok(result)
}

/// The Standard Webhooks `webhook-id` of a delivery: the same on every attempt of it, different
/// for every delivery (row ids alone could repeat after a database is recreated).
pub fn message_id(delivery: &WebhookDelivery) -> String {
    let digest = Sha256::digest(format!(
        "{}:{}:{}",
        delivery.environment_id, delivery.id, delivery.created_at
    ));
    format!("msg_{}", hex(&digest[..16]))
}

/// The Standard Webhooks `webhook-signature` value: `v1,` and the base64 HMAC-SHA256, keyed by
/// the signing key's bytes, of `{id}.{timestamp}.{body}`.
pub fn standard_signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    use base64::Engine;
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// The signing key as a Standard Webhooks secret (`whsec_` + base64 of the key's bytes), the
/// form the Standard Webhooks libraries take.
pub fn standard_secret(key: &str) -> String {
    use base64::Engine;
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key.as_bytes())
    )
}

async fn attempt(
    state: &AppState,
    delivery: &WebhookDelivery,
    url: &str,
    key: &str,
) -> (DeliveryOutcome, Outcome) {
    // Address literals never reach the resolver: check them here. Host names are checked on
    // the addresses they resolve to, when the client connects.
    if let Err(refused) = state.config.webhook_targets.check_url_text(url) {
        return refused_outcome(&refused);
    }
    let body = sorted(&delivery.payload).to_string().into_bytes();
    let id = message_id(delivery);
    let timestamp = crate::api::now_ms() / 1000;
    let response = state
        .webhook_http
        .post(url)
        .header("content-type", "application/json")
        .header(
            "user-agent",
            concat!("nango/ferry-", env!("CARGO_PKG_VERSION")),
        )
        .header("X-Nango-Hmac-Sha256", hmac_signature(key, &body))
        .header("X-Nango-Signature", legacy_signature(key, &body))
        .header(
            "webhook-signature",
            standard_signature(key.as_bytes(), &id, timestamp, &body),
        )
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .timeout(TIMEOUT)
        .body(body)
        .send()
        .await;
    let retry_or_fail = |error: String, status: Option<i64>| {
        if delivery.attempts >= MAX_ATTEMPTS {
            (DeliveryOutcome::Failed { error, status }, Outcome::Failed)
        } else {
            let next_attempt_at = crate::api::now_ms() + backoff_ms(delivery.attempts);
            (
                DeliveryOutcome::Retry {
                    next_attempt_at,
                    error,
                    status,
                },
                Outcome::Retried,
            )
        }
    };
    match response {
        Ok(r) if r.status().is_success() => (
            DeliveryOutcome::Delivered {
                status: i64::from(r.status().as_u16()),
            },
            Outcome::Delivered,
        ),
        Ok(r) if r.status().is_server_error() => retry_or_fail(
            format!("HTTP {}", r.status().as_u16()),
            Some(i64::from(r.status().as_u16())),
        ),
        Ok(r) => (
            DeliveryOutcome::Failed {
                error: format!("HTTP {}", r.status().as_u16()),
                status: Some(i64::from(r.status().as_u16())),
            },
            Outcome::Failed,
        ),
        Err(e) => match crate::webhook_targets::refusal(&e) {
            // The same answer would come on every retry: fail now, saying why.
            Some(refused) => refused_outcome(refused),
            None => retry_or_fail(format!("network error: {}", e.without_url()), None),
        },
    }
}

/// A delivery the target policy refused: failed for good, never sent.
fn refused_outcome(refused: &crate::webhook_targets::RefusedTarget) -> (DeliveryOutcome, Outcome) {
    tracing::warn!(reason = %refused, "webhook delivery refused");
    (
        DeliveryOutcome::Failed {
            error: format!("refused: {refused}"),
            status: None,
        },
        Outcome::Failed,
    )
}

/// Delivers due webhooks until cancelled; wakes when notified of a new one or every second.
pub async fn worker(
    state: std::sync::Arc<AppState>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        match run_one(&state).await {
            Ok(Outcome::Idle) => {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = state.webhook_wakeup.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            Ok(_) => {
                if shutdown.is_cancelled() {
                    return;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "webhook delivery step failed");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_sdk_test_vectors() {
        let body = br#"{"from":"nango","type":"auth"}"#;
        assert_eq!(
            hmac_signature("test-signing-key", body),
            "0eeadd2c7b5f6998df8573375ff35af0826944519da7e8a26cfbd33ec6dd75c1"
        );
        assert_eq!(
            legacy_signature("test-signing-key", body),
            "ee49e96c3c3e48c1776b1af72cf3037b8854c7cc2611fa59498b994a6f9fec8e"
        );
    }

    #[test]
    fn the_standard_signature_matches_the_specification_vector() {
        use base64::Engine;
        // From the Standard Webhooks reference libraries' tests.
        let key = base64::engine::general_purpose::STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .expect("base64");
        assert_eq!(
            standard_signature(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(standard_secret("abc"), "whsec_YWJj");
    }

    #[test]
    fn bodies_are_signed_with_sorted_keys() {
        let v = serde_json::json!({"type": "auth", "from": "nango", "nested": {"b": 1, "a": [{"z": 0, "y": 1}]}});
        assert_eq!(
            sorted(&v).to_string(),
            r#"{"from":"nango","nested":{"a":[{"y":1,"z":0}],"b":1},"type":"auth"}"#
        );
    }
}
