//! Outgoing webhooks: Nango's auth payloads, signed (`X-Nango-Hmac-Sha256` over the sorted, compact JSON body; the legacy `X-Nango-Signature` too), delivered by a worker whose `run_one` step tests drive, retried with backoff on 5xx and network errors.

use crate::app::AppState;
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
    let Some(url) = env.webhook_url.clone().filter(|u| !u.is_empty()) else {
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

async fn attempt(
    state: &AppState,
    delivery: &WebhookDelivery,
    url: &str,
    key: &str,
) -> (DeliveryOutcome, Outcome) {
    let body = sorted(&delivery.payload).to_string().into_bytes();
    let response = state
        .http
        .post(url)
        .header("content-type", "application/json")
        .header(
            "user-agent",
            concat!("nango/ferry-", env!("CARGO_PKG_VERSION")),
        )
        .header("X-Nango-Hmac-Sha256", hmac_signature(key, &body))
        .header("X-Nango-Signature", legacy_signature(key, &body))
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
        Err(e) => retry_or_fail(format!("network error: {}", e.without_url()), None),
    }
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
    fn bodies_are_signed_with_sorted_keys() {
        let v = serde_json::json!({"type": "auth", "from": "nango", "nested": {"b": 1, "a": [{"z": 0, "y": 1}]}});
        assert_eq!(
            sorted(&v).to_string(),
            r#"{"from":"nango","nested":{"a":[{"y":1,"z":0}],"b":1},"type":"auth"}"#
        );
    }
}
