//! Encryption key rotation: `ferry keys rotate` re-seals every stored secret under the current key while servers keep running, then marks the database with the new key.
//!
//! Every ciphertext is replaced by compare-and-swap, so a value written concurrently (a token
//! refresh, a reconnect) is never overwritten by a stale re-encryption: the rotation re-reads it
//! and tries again. The database's key fingerprint changes only once every ciphertext is sealed
//! under the current key, so a failed or interrupted rotation can simply be run again.

use crate::app::KEY_FINGERPRINT;
pub use crate::sealing::describe;
use ferry_core::vault::{Vault, VaultError};
use ferry_store::{CipherRef, CiphertextStore, MetaStore, StoreError};
use std::fmt;

/// How many times one ciphertext is retried after losing its compare-and-swap to a concurrent
/// write before the rotation gives up.
pub const MAX_RETRIES_PER_ITEM: u32 = 5;

/// How many passes over the whole database are made before giving up on ciphertexts that keep
/// appearing under an old key (a server still running with only the old key writes them).
pub const MAX_PASSES: u32 = 3;

/// What a rotation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// Ciphertexts re-sealed under the current key by this run.
    pub rotated: u64,
    /// Ciphertexts found already sealed under the current key (including ones a concurrent
    /// writer re-sealed first).
    pub already_current: u64,
    /// Compare-and-swaps lost to a concurrent write and retried.
    pub retried: u64,
    /// Ciphertexts deleted while the rotation ran (a finished OAuth flow, a deleted connection).
    pub gone: u64,
}

impl fmt::Display for RotationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rotated {}, already current {}, retried {}, gone {}",
            self.rotated, self.already_current, self.retried, self.gone
        )
    }
}

/// Why a rotation stopped. The database fingerprint is left unchanged in every case, and
/// running the rotation again is safe. Never carries plaintext or key material.
#[derive(Debug)]
pub enum RotationError {
    /// The store failed.
    Store(StoreError),
    /// A ciphertext could not be opened or re-sealed (for example it was sealed with a key
    /// that is neither the current nor a previous one).
    Vault {
        /// Which ciphertext (no secret values).
        target: String,
        /// What the vault said.
        source: VaultError,
    },
    /// A ciphertext kept changing under the rotation and could not be swapped.
    Contended {
        /// Which ciphertext.
        target: String,
    },
    /// Ciphertexts under an old key kept appearing after every pass: some server still writes
    /// with the old key.
    StillOutdated {
        /// How many were left after the last pass.
        remaining: usize,
    },
}

impl fmt::Display for RotationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RotationError::Store(_) => write!(f, "the database failed during the key rotation"),
            RotationError::Vault { target, source } => {
                write!(f, "cannot re-encrypt {target}: {source}")
            }
            RotationError::Contended { target } => write!(
                f,
                "{target} kept changing during the rotation ({MAX_RETRIES_PER_ITEM} retries); run `ferry keys rotate` again"
            ),
            RotationError::StillOutdated { remaining } => write!(
                f,
                "{remaining} secret(s) are still sealed with an old key after {MAX_PASSES} passes; \
                 restart every server with the new FERRY_ENCRYPTION_KEY (and the old key in \
                 FERRY_PREVIOUS_ENCRYPTION_KEYS) before rotating"
            ),
        }
    }
}

impl std::error::Error for RotationError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RotationError::Store(e) => Some(e),
            RotationError::Vault { source, .. } => Some(source),
            RotationError::Contended { .. } | RotationError::StillOutdated { .. } => None,
        }
    }
}

impl From<StoreError> for RotationError {
    fn from(e: StoreError) -> Self {
        RotationError::Store(e)
    }
}

/// Re-seals every ciphertext not under `vault`'s current key, then marks the database with the
/// current key's fingerprint.
///
/// `vault` must hold the new key as current and the old key(s) as previous. Concurrent writers
/// are safe: each replacement is a compare-and-swap, and a lost swap re-reads the value and
/// retries (at most [`MAX_RETRIES_PER_ITEM`] times). The fingerprint is written only after a
/// full listing finds every ciphertext under the current key.
pub async fn rotate<S>(store: &S, vault: &Vault) -> Result<RotationReport, RotationError>
where
    S: CiphertextStore + MetaStore + ?Sized,
{
    let mut report = RotationReport::default();
    let mut listing = store.list_ciphertexts().await?;
    for pass in 1..=MAX_PASSES {
        for (target, environment, blob) in listing {
            if vault.needs_rotation(&blob) {
                rotate_one(store, vault, target, environment, blob, &mut report).await?;
            } else if pass == 1 {
                report.already_current += 1;
            }
        }
        listing = store.list_ciphertexts().await?;
        let remaining = listing
            .iter()
            .filter(|(_, _, blob)| vault.needs_rotation(blob))
            .count();
        if remaining == 0 {
            store.set_meta(KEY_FINGERPRINT, vault.fingerprint()).await?;
            tracing::info!(
                key_id = %vault.current_key_id(),
                rotated = report.rotated,
                already_current = report.already_current,
                retried = report.retried,
                gone = report.gone,
                "encryption key rotation finished"
            );
            return Ok(report);
        }
        if pass == MAX_PASSES {
            return Err(RotationError::StillOutdated { remaining });
        }
        tracing::warn!(
            remaining,
            "secrets under an old key appeared during the rotation; another pass"
        );
    }
    // MAX_PASSES >= 1, so the loop always returns.
    Err(RotationError::StillOutdated { remaining: 0 })
}

/// Re-seals one ciphertext, retrying when a concurrent write wins the compare-and-swap.
async fn rotate_one<S>(
    store: &S,
    vault: &Vault,
    target: CipherRef,
    environment: ferry_store::EnvironmentId,
    mut blob: Vec<u8>,
    report: &mut RotationReport,
) -> Result<(), RotationError>
where
    S: CiphertextStore + MetaStore + ?Sized,
{
    let aad = crate::sealing::aad(&target, environment);
    for attempt in 0..=MAX_RETRIES_PER_ITEM {
        let sealed = vault
            .reencrypt(&blob, &aad)
            .map_err(|source| RotationError::Vault {
                target: describe(&target),
                source,
            })?;
        if store.replace_ciphertext(&target, &blob, &sealed).await? {
            report.rotated += 1;
            return Ok(());
        }
        if attempt == MAX_RETRIES_PER_ITEM {
            break;
        }
        report.retried += 1;
        tracing::debug!(target = %describe(&target), "concurrent write; re-reading");
        match current_value(store, &target).await? {
            None => {
                report.gone += 1;
                return Ok(());
            }
            Some(now) if !vault.needs_rotation(&now) => {
                report.already_current += 1;
                return Ok(());
            }
            Some(now) => blob = now,
        }
    }
    Err(RotationError::Contended {
        target: describe(&target),
    })
}

/// The stored value of one ciphertext, if it still exists.
async fn current_value<S>(store: &S, target: &CipherRef) -> Result<Option<Vec<u8>>, StoreError>
where
    S: CiphertextStore + ?Sized,
{
    Ok(store
        .list_ciphertexts()
        .await?
        .into_iter()
        .find(|(r, _, _)| r == target)
        .map(|(_, _, blob)| blob))
}

/// `ferry keys rotate`: opens the database with the new key (`FERRY_ENCRYPTION_KEY`) and the
/// old one(s) (`FERRY_PREVIOUS_ENCRYPTION_KEYS`), rotates, and prints the report.
pub async fn run_cli(args: crate::config::ServerArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let (store, vault) = match crate::app::open_store(&config).await {
        Ok(opened) => opened,
        Err(e) if config.previous_keys.is_empty() => {
            return Err(explain_missing_previous_key(&config).await.unwrap_or(e))
        }
        Err(e) => return Err(e),
    };
    let result = rotate(&*store, &vault).await;
    store.close().await;
    let report = result?;
    println!("encryption key rotation done: {report}");
    println!(
        "the database is now marked with key {}; remove FERRY_PREVIOUS_ENCRYPTION_KEYS from every server",
        vault.current_key_id()
    );
    Ok(())
}

/// When the database is marked with a key other than `FERRY_ENCRYPTION_KEY` and no previous key
/// was given, the error to show instead of the generic key mismatch.
async fn explain_missing_previous_key(config: &crate::config::Config) -> Option<anyhow::Error> {
    let store = ferry_store::connect(&config.database_url).await.ok()?;
    let stored = store.get_meta(KEY_FINGERPRINT).await.ok().flatten();
    store.close().await;
    let key =
        ferry_core::vault::EncryptionKey::parse(config.encryption_key.expose_secret()).ok()?;
    match stored {
        Some(stored) if stored != key.fingerprint() => Some(anyhow::anyhow!(
            "FERRY_PREVIOUS_ENCRYPTION_KEYS is empty, and the database is encrypted with a key \
             other than FERRY_ENCRYPTION_KEY: set FERRY_ENCRYPTION_KEY to the new key and \
             FERRY_PREVIOUS_ENCRYPTION_KEYS to the key the database uses now (see `ferry keys rotate --help`)"
        )),
        _ => None,
    }
}
