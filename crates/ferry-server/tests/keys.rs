//! Encryption key rotation on both databases: secrets from a real OAuth flow re-sealed under a new key while a server keeps serving, concurrent writes kept, and `ferry keys rotate` as an operator runs it.

mod common;

use common::{Browser, Db, TestApp};
use ferry_core::vault::{EncryptionKey, Vault};
use ferry_server::app::{Application, KEY_FINGERPRINT};
use ferry_server::config::Config;
use ferry_server::keys::{self, RotationError, MAX_RETRIES_PER_ITEM};
use ferry_store::{CipherRef, CiphertextStore, MetaStore, Store, StoreError};
use reqwest::Method;
use serde_json::{json, Value};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Connects the demo org for `end_user` through the browser flow; returns the connection id and
/// its `GET /connections/{id}` body (with the refresh token).
async fn connect_acme(app: &TestApp, end_user: &str) -> (String, Value) {
    let token = app
        .connect_session(
            json!({"end_user": {"id": end_user}, "allowed_integrations": ["salesforce"]}),
        )
        .await;
    let mut browser = Browser::new();
    let login = browser
        .get(&format!(
            "{}/oauth/connect/salesforce?connect_session_token={token}",
            app.url
        ))
        .await;
    let done = browser
        .log_in_and_allow(&login, ferry_emulator::DEMO_USERNAME)
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    let list: Value = app
        .api(Method::GET, &format!("/connections?endUserId={end_user}"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let id = list["connections"][0]["connection_id"]
        .as_str()
        .expect("a connection")
        .to_string();
    let full = get_connection(app, &app.url, &id).await;
    (id, full)
}

/// `GET /connections/{id}` (with the refresh token) on the server at `base`.
async fn get_connection(app: &TestApp, base: &str, id: &str) -> Value {
    let resp = app
        .http
        .get(format!(
            "{base}/connections/{id}?provider_config_key=salesforce&refresh_token=true"
        ))
        .bearer_auth(&app.dev_key)
        .send()
        .await
        .expect("get connection");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("json")
}

/// Starts a flow without finishing it, leaving an OAuth state with a sealed PKCE verifier.
async fn start_a_flow(app: &TestApp) {
    let token = app
        .connect_session(json!({"end_user": {"id": "pending"}}))
        .await;
    let login = Browser::new()
        .get(&format!(
            "{}/oauth/connect/salesforce?connect_session_token={token}",
            app.url
        ))
        .await;
    assert!(login.body.contains("password"), "{}", login.body);
}

/// The key the test app was started with.
fn old_key(app: &TestApp) -> EncryptionKey {
    EncryptionKey::parse(app.state.config.encryption_key.expose_secret()).expect("old key")
}

/// A configuration for another server on the test app's database.
fn config(app: &TestApp, key: &EncryptionKey, previous: &[&EncryptionKey]) -> Config {
    let mut config = Config::for_tests(
        &app.database_url,
        key.to_base64(),
        app.state.config.hosts.clone(),
    );
    config.previous_keys = previous.iter().map(|k| k.to_base64()).collect();
    config
}

/// Starts a server with `config`; returns its base URL and state.
async fn serve(config: Config) -> (String, Arc<ferry_server::app::AppState>) {
    let server = Application::build(config).await.expect("server builds");
    let url = format!("http://{}", server.local_addr().expect("addr"));
    let state = server.state();
    tokio::spawn(server.run());
    (url, state)
}

/// Every ciphertext opened with `vault`, by where it lives.
async fn plaintexts(store: &dyn Store, vault: &Vault) -> Vec<(CipherRef, Vec<u8>)> {
    store
        .list_ciphertexts()
        .await
        .expect("ciphertexts")
        .into_iter()
        .map(|(target, environment, blob)| {
            let plain = vault
                .decrypt(&blob, &ferry_server::sealing::aad(&target, environment))
                .unwrap_or_else(|e| panic!("{}: {e}", keys::describe(&target)));
            (target, plain.expose_secret().clone())
        })
        .collect()
}

async fn rotation_re_encrypts_every_secret_while_servers_keep_serving(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let (id, before) = connect_acme(&app, "user-1").await;
    start_a_flow(&app).await;
    let old = old_key(&app);
    let new = EncryptionKey::generate().expect("new key");
    let before_plain = plaintexts(&*app.state.store, &Vault::new(old.clone(), vec![])).await;
    let kinds = |items: &[(CipherRef, Vec<u8>)]| {
        let count = |f: fn(&CipherRef) -> bool| items.iter().filter(|(r, _)| f(r)).count();
        (
            count(|r| matches!(r, CipherRef::IntegrationClientSecret(_))),
            count(|r| matches!(r, CipherRef::ConnectionCredentials(_))),
            count(|r| matches!(r, CipherRef::OAuthStatePkceVerifier(_))),
        )
    };
    assert_eq!(
        kinds(&before_plain),
        (2, 1, 1),
        "every kind of secret is covered"
    );

    // Step 2: a server restarted with the new key and the old one reads the old ciphertexts.
    let (during_url, during) = serve(config(&app, &new, &[&old])).await;
    let served = get_connection(&app, &during_url, &id).await;
    assert_eq!(served["credentials"], before["credentials"]);

    // Step 3: the rotation, with that server's store and vault.
    let report = keys::rotate(&*during.store, &during.vault)
        .await
        .expect("rotation");
    assert_eq!(report.rotated, 6, "with the two environment keys: {report}");
    assert_eq!(
        (report.already_current, report.retried, report.gone),
        (0, 0, 0)
    );

    // Every secret is under the new key and opens with it alone, to the same values.
    let new_only = Vault::new(new.clone(), vec![]);
    for (target, _, blob) in app.state.store.list_ciphertexts().await.expect("list") {
        assert!(
            !new_only.needs_rotation(&blob),
            "{}",
            keys::describe(&target)
        );
    }
    let after_plain = plaintexts(&*app.state.store, &new_only).await;
    assert_eq!(after_plain, before_plain);
    let secret = after_plain
        .iter()
        .find(|(r, _)| matches!(r, CipherRef::IntegrationClientSecret(_)))
        .map(|(_, p)| String::from_utf8(p.clone()).expect("utf-8"));
    assert_eq!(secret.as_deref(), Some("ferry-demo-secret"));
    assert_eq!(
        app.state
            .store
            .get_meta(KEY_FINGERPRINT)
            .await
            .expect("meta")
            .as_deref(),
        Some(new.fingerprint().as_str())
    );

    // A second run finds nothing to do.
    let again = keys::rotate(&*during.store, &during.vault)
        .await
        .expect("second rotation");
    assert_eq!(again.rotated, 0, "{again}");
    assert_eq!(again.already_current, 6, "{again}");

    // Step 4: a server with only the new key serves the connection as before.
    let (new_url, _) = serve(config(&app, &new, &[])).await;
    let served = get_connection(&app, &new_url, &id).await;
    assert_eq!(served["credentials"], before["credentials"]);
    assert_eq!(served["connection_config"], before["connection_config"]);

    // A server with only the old key refuses to start.
    let refused = Application::build(config(&app, &old, &[]))
        .await
        .err()
        .expect("the old key alone is refused");
    assert!(
        format!("{refused:#}").contains("does not match"),
        "{refused:#}"
    );
}
on_both_databases!(
    rotation_re_encrypts_every_secret_while_servers_keep_serving,
    rotation_re_encrypts_every_secret_while_servers_keep_serving
);

async fn rotation_without_the_old_key_changes_nothing(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    connect_acme(&app, "user-1").await;
    let old = old_key(&app);
    let before = app.state.store.list_ciphertexts().await.expect("list");
    let new_only = Vault::new(EncryptionKey::generate().expect("key"), vec![]);
    let err = keys::rotate(&*app.state.store, &new_only)
        .await
        .expect_err("the old ciphertexts cannot be opened");
    assert!(matches!(err, RotationError::Vault { .. }), "{err}");
    assert!(err.to_string().contains("previous keys"), "{err}");
    assert_eq!(
        app.state
            .store
            .get_meta(KEY_FINGERPRINT)
            .await
            .expect("meta")
            .as_deref(),
        Some(old.fingerprint().as_str()),
        "the database stays marked with the old key"
    );
    assert_eq!(
        app.state.store.list_ciphertexts().await.expect("list"),
        before
    );
}
on_both_databases!(
    rotation_without_the_old_key_changes_nothing,
    rotation_without_the_old_key_changes_nothing
);

type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A store where another writer (a token refresh on some server) replaces a connection's
/// credentials just before each of the rotation's first `interfere` compare-and-swaps on them.
struct RacingStore {
    inner: Arc<dyn Store>,
    /// Seals the concurrent writes (the new key: a restarted server; the old: one not yet restarted).
    writer: Vault,
    interfere: AtomicU32,
    written: AtomicU32,
}

impl RacingStore {
    fn new(inner: Arc<dyn Store>, writer: Vault, interfere: u32) -> Self {
        RacingStore {
            inner,
            writer,
            interfere: AtomicU32::new(interfere),
            written: AtomicU32::new(0),
        }
    }

    /// The credentials the concurrent writer stored the `n`th time.
    fn refreshed(n: u32) -> Vec<u8> {
        serde_json::to_vec(&json!({"access_token": format!("refreshed-{n}"), "raw": {}}))
            .expect("json")
    }
}

// Written out as `async_trait` expands it (the crate is not a dependency of these tests).
impl MetaStore for RacingStore {
    fn get_meta<'a, 'b, 'async_trait>(
        &'a self,
        key: &'b str,
    ) -> StoreFuture<'async_trait, Option<String>>
    where
        'a: 'async_trait,
        'b: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move { self.inner.get_meta(key).await })
    }

    fn set_meta<'a, 'b, 'c, 'async_trait>(
        &'a self,
        key: &'b str,
        value: &'c str,
    ) -> StoreFuture<'async_trait, ()>
    where
        'a: 'async_trait,
        'b: 'async_trait,
        'c: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move { self.inner.set_meta(key, value).await })
    }
}

impl CiphertextStore for RacingStore {
    fn list_ciphertexts<'a, 'async_trait>(
        &'a self,
    ) -> StoreFuture<'async_trait, Vec<(CipherRef, ferry_store::EnvironmentId, Vec<u8>)>>
    where
        'a: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move { self.inner.list_ciphertexts().await })
    }

    fn replace_ciphertext<'a, 'b, 'c, 'd, 'async_trait>(
        &'a self,
        target: &'b CipherRef,
        old: &'c [u8],
        new: &'d [u8],
    ) -> StoreFuture<'async_trait, bool>
    where
        'a: 'async_trait,
        'b: 'async_trait,
        'c: 'async_trait,
        'd: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let racing = matches!(target, CipherRef::ConnectionCredentials(_))
                && self
                    .interfere
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
            if racing {
                let n = self.written.fetch_add(1, Ordering::SeqCst) + 1;
                let environment = self
                    .inner
                    .list_ciphertexts()
                    .await?
                    .into_iter()
                    .find(|(r, _, _)| r == target)
                    .map(|(_, e, _)| e)
                    .expect("the racing row");
                let sealed = self
                    .writer
                    .encrypt(
                        &Self::refreshed(n),
                        &ferry_server::sealing::aad(target, environment),
                    )
                    .expect("seal");
                assert!(self.inner.replace_ciphertext(target, old, &sealed).await?);
            }
            self.inner.replace_ciphertext(target, old, new).await
        })
    }
}

/// The connection's credentials opened with `vault`.
async fn credentials(store: &dyn Store, vault: &Vault) -> Vec<u8> {
    plaintexts(store, vault)
        .await
        .into_iter()
        .find(|(r, _)| matches!(r, CipherRef::ConnectionCredentials(_)))
        .map(|(_, p)| p)
        .expect("a connection")
}

async fn a_refresh_during_the_rotation_is_kept_whichever_key_sealed_it(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    connect_acme(&app, "user-1").await;
    let old = old_key(&app);
    let new = EncryptionKey::generate().expect("new key");
    let rotating = Vault::new(new.clone(), vec![old.clone()]);
    let new_only = Vault::new(new.clone(), vec![]);

    // A restarted server (new key) refreshes first: the rotation re-reads, finds it current.
    let racing = RacingStore::new(
        app.state.store.clone(),
        Vault::new(new.clone(), vec![old.clone()]),
        1,
    );
    let report = keys::rotate(&racing, &rotating).await.expect("rotation");
    assert_eq!(report.retried, 1, "{report}");
    assert_eq!(
        report.rotated, 4,
        "the two client secrets and the two environment keys: {report}"
    );
    assert_eq!(report.already_current, 1, "{report}");
    assert_eq!(
        credentials(&*app.state.store, &new_only).await,
        RacingStore::refreshed(1)
    );

    // Back to the old key everywhere, then a server still on the old key refreshes twice.
    let restored = Vault::new(old.clone(), vec![new.clone()]);
    keys::rotate(&*app.state.store, &restored)
        .await
        .expect("rotation back");
    let racing = RacingStore::new(app.state.store.clone(), Vault::new(old.clone(), vec![]), 2);
    let report = keys::rotate(&racing, &rotating).await.expect("rotation");
    assert_eq!(report.retried, 2, "{report}");
    assert_eq!(report.rotated, 5, "{report}");
    assert_eq!(
        credentials(&*app.state.store, &new_only).await,
        RacingStore::refreshed(2),
        "the latest refresh survives, re-sealed under the new key"
    );
    assert_eq!(
        app.state
            .store
            .get_meta(KEY_FINGERPRINT)
            .await
            .expect("meta")
            .as_deref(),
        Some(new.fingerprint().as_str())
    );

    // A writer that never stops wins: the rotation gives up and leaves the mark alone.
    keys::rotate(&*app.state.store, &restored)
        .await
        .expect("rotation back");
    let racing = RacingStore::new(
        app.state.store.clone(),
        Vault::new(old.clone(), vec![]),
        u32::MAX,
    );
    let err = keys::rotate(&racing, &rotating)
        .await
        .expect_err("endless contention");
    assert!(matches!(err, RotationError::Contended { .. }), "{err}");
    assert_eq!(
        racing.written.load(Ordering::SeqCst),
        MAX_RETRIES_PER_ITEM + 1
    );
    assert_eq!(
        app.state
            .store
            .get_meta(KEY_FINGERPRINT)
            .await
            .expect("meta")
            .as_deref(),
        Some(old.fingerprint().as_str())
    );
}
on_both_databases!(
    a_refresh_during_the_rotation_is_kept_whichever_key_sealed_it,
    a_refresh_during_the_rotation_is_kept_whichever_key_sealed_it
);

/// Runs `ferry keys rotate` on the test app's database with these keys.
async fn ferry_keys_rotate(
    app: &TestApp,
    key: &EncryptionKey,
    previous: &[&EncryptionKey],
) -> std::process::Output {
    let previous = previous
        .iter()
        .map(|k| k.to_base64().expose_secret().clone())
        .collect::<Vec<_>>()
        .join(",");
    tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["keys", "rotate", "--database-url", &app.database_url])
        .env("FERRY_ENCRYPTION_KEY", key.to_base64().expose_secret())
        .env("FERRY_PREVIOUS_ENCRYPTION_KEYS", previous)
        .env_remove("FERRY_ENCRYPTION_KEY_FILE")
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("ferry runs")
}

async fn ferry_keys_rotate_needs_the_old_key_and_then_rotates(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let (id, before) = connect_acme(&app, "user-1").await;
    let old = old_key(&app);
    let new = EncryptionKey::generate().expect("new key");

    let refused = ferry_keys_rotate(&app, &new, &[]).await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("FERRY_PREVIOUS_ENCRYPTION_KEYS is empty"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(new.to_base64().expose_secret().as_str()),
        "keys are never printed"
    );

    let done = ferry_keys_rotate(&app, &new, &[&old]).await;
    let stdout = String::from_utf8_lossy(&done.stdout);
    assert!(
        done.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(
        stdout.contains("rotated 5, already current 0, retried 0"),
        "{stdout}"
    );
    assert!(stdout.contains(new.id().as_str()), "{stdout}");
    for secret in [new.to_base64(), old.to_base64()] {
        assert!(!stdout.contains(secret.expose_secret().as_str()));
    }

    let (new_url, _) = serve(config(&app, &new, &[])).await;
    let served = get_connection(&app, &new_url, &id).await;
    assert_eq!(served["credentials"], before["credentials"]);

    let again = ferry_keys_rotate(&app, &new, &[]).await;
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("rotated 0, already current 5"),
        "once rotated, the old key is no longer needed"
    );
}
on_both_databases!(
    ferry_keys_rotate_needs_the_old_key_and_then_rotates,
    ferry_keys_rotate_needs_the_old_key_and_then_rotates
);

#[test]
fn ferry_keys_rotate_help_describes_the_zero_downtime_procedure() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["keys", "rotate", "--help"])
        .output()
        .expect("ferry runs");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for step in [
        "ferry keys generate",
        "FERRY_ENCRYPTION_KEY=<new>",
        "FERRY_PREVIOUS_ENCRYPTION_KEYS=<old>",
        "Run `ferry keys rotate`",
        "Remove FERRY_PREVIOUS_ENCRYPTION_KEYS",
        "--database-url",
    ] {
        assert!(help.contains(step), "{step} missing from:\n{help}");
    }
}
