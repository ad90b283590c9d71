//! What every sealed value is bound to: each ciphertext's associated data names its kind, its
//! environment and its row, so a blob copied onto another row (another connection, another
//! environment) no longer opens; environment secret keys kept as a lookup hash plus a sealed
//! copy; and the start-up pass that re-binds values sealed by earlier versions.

use ferry_core::secret::SecretString;
use ferry_core::vault::Vault;
use ferry_store::{CipherRef, EnvironmentId, Store, StoreError};
use sha2::{Digest, Sha256};

/// Marks a database whose sealed values are all bound to their rows.
pub const BOUND_MARK: &str = "sealed_values_bound";

/// The associated data of a sealed value at `target`, in `environment`.
pub fn aad(target: &CipherRef, environment: EnvironmentId) -> Vec<u8> {
    let env = environment.0;
    match target {
        CipherRef::IntegrationClientSecret(id) => {
            format!("integration-client-secret:env={env}:integration={}", id.0)
        }
        CipherRef::ConnectionCredentials(id) => {
            format!("connection-credentials:env={env}:connection={}", id.0)
        }
        CipherRef::OAuthStatePkceVerifier(state) => {
            format!("oauth-state-pkce-verifier:env={env}:state={state}")
        }
        CipherRef::EnvironmentSecretKey(id) => format!("environment-secret-key:env={}", id.0),
    }
    .into_bytes()
}

/// The constant associated data earlier versions sealed with (read once, by [`bind_all`]).
fn legacy_aad(target: &CipherRef) -> Option<Vec<u8>> {
    match target {
        CipherRef::IntegrationClientSecret(_) => Some(b"integration-client-secret".to_vec()),
        CipherRef::ConnectionCredentials(_) => Some(b"connection-credentials".to_vec()),
        CipherRef::OAuthStatePkceVerifier(state) => {
            Some(format!("oauth-state:{state}:pkce-verifier").into_bytes())
        }
        CipherRef::EnvironmentSecretKey(_) => None,
    }
}

/// The stored lookup form of an API secret key.
pub fn secret_key_hash(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// An environment's secret key, opened from its sealed copy (or, on a row an earlier version
/// wrote and no server has converted yet, the plaintext it still holds).
pub fn open_secret_key(
    vault: &Vault,
    environment: &ferry_store::Environment,
) -> Option<SecretString> {
    if !environment.secret_key_hash.starts_with("sha256:") {
        return Some(SecretString::from(environment.secret_key_hash.as_str()));
    }
    let sealed = environment.secret_key_sealed.as_ref()?;
    vault
        .decrypt_string(
            sealed,
            &aad(
                &CipherRef::EnvironmentSecretKey(environment.id),
                environment.id,
            ),
        )
        .ok()
}

/// Creates the environment `name` if absent (with a fresh secret key) and makes sure its key is
/// stored only as a hash plus a sealed copy, converting a plaintext key an earlier version
/// wrote. Safe with several processes starting at once: every write is a compare-and-swap.
pub async fn ensure_environment(
    store: &dyn Store,
    vault: &Vault,
    name: &str,
    now: i64,
) -> anyhow::Result<ferry_store::Environment> {
    let fresh = uuid::Uuid::new_v4().to_string();
    let env = store
        .ensure_environment(
            name,
            &secret_key_hash(&fresh),
            &crate::state::random_hex(32),
            now,
        )
        .await?;
    let plaintext = if env.secret_key_hash == secret_key_hash(&fresh) {
        // This process created the row: seal the key it chose.
        (env.secret_key_sealed.is_none()).then_some(fresh)
    } else if !env.secret_key_hash.starts_with("sha256:") {
        // A key stored in the clear by an earlier version.
        Some(env.secret_key_hash.clone())
    } else {
        None
    };
    let Some(plaintext) = plaintext else {
        return Ok(env);
    };
    let sealed = vault.encrypt(
        plaintext.as_bytes(),
        &aad(&CipherRef::EnvironmentSecretKey(env.id), env.id),
    )?;
    store
        .seal_secret_key(
            env.id,
            &env.secret_key_hash,
            &secret_key_hash(&plaintext),
            &sealed,
        )
        .await?;
    let sealed_env = store
        .list_environments()
        .await?
        .into_iter()
        .find(|e| e.id == env.id)
        .ok_or_else(|| anyhow::anyhow!("environment {name} vanished while its key was sealed"))?;
    Ok(sealed_env)
}

/// Names a ciphertext for messages and logs without revealing anything secret (an OAuth state
/// is a bearer value, so it is not printed).
pub fn describe(target: &CipherRef) -> String {
    match target {
        CipherRef::IntegrationClientSecret(id) => {
            format!("the client secret of integration #{}", id.0)
        }
        CipherRef::ConnectionCredentials(id) => {
            format!("the credentials of connection #{}", id.0)
        }
        CipherRef::OAuthStatePkceVerifier(_) => {
            "the PKCE verifier of a pending OAuth flow".to_string()
        }
        CipherRef::EnvironmentSecretKey(id) => {
            format!("the secret key of environment #{}", id.0)
        }
    }
}

/// What [`bind_all`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BindReport {
    /// Values re-sealed with their row-bound associated data.
    pub rebound: u64,
    /// Values already bound.
    pub already_bound: u64,
}

/// Re-seals every value still sealed with an earlier version's constant associated data so it
/// is bound to its row, each by compare-and-swap (servers keep running; a value rewritten
/// meanwhile is already bound), then marks the database. Runs at start-up until the mark is set.
pub async fn bind_all(store: &dyn Store, vault: &Vault) -> Result<BindReport, StoreError> {
    let mut report = BindReport::default();
    if store.get_meta(BOUND_MARK).await?.as_deref() == Some("1") {
        return Ok(report);
    }
    for (target, environment, blob) in store.list_ciphertexts().await? {
        let bound = aad(&target, environment);
        if vault.decrypt(&blob, &bound).is_ok() {
            report.already_bound += 1;
            continue;
        }
        let Some(legacy) = legacy_aad(&target) else {
            continue;
        };
        let Ok(plain) = vault.decrypt(&blob, &legacy) else {
            // Neither form opens (a foreign key, or damage): left as it is; using it will fail
            // as it would have.
            tracing::warn!(target = %describe(&target), "a sealed value opens neither bound nor legacy");
            continue;
        };
        let resealed = vault
            .encrypt(plain.expose_secret(), &bound)
            .map_err(|e| StoreError::Seal(e.to_string()))?;
        if store.replace_ciphertext(&target, &blob, &resealed).await? {
            report.rebound += 1;
        }
    }
    store.set_meta(BOUND_MARK, "1").await?;
    if report.rebound > 0 {
        tracing::info!(
            rebound = report.rebound,
            "sealed values bound to their rows"
        );
    }
    Ok(report)
}
