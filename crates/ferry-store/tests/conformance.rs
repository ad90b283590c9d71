//! One conformance suite for every store backend: each test is written once against
//! `Arc<dyn Store>` and instantiated for SQLite (a fresh temp file) and PostgreSQL (a fresh
//! database on `FERRY_TEST_POSTGRES_URL`).

use std::collections::HashSet;
use std::sync::Arc;

use ferry_store::{
    connect, CipherRef, ConnectionFilter, ConnectionPatch, ConnectionStatus, DeliveryOutcome,
    Environment, EnvironmentId, Integration, IntegrationPatch, MetadataMode, NewConnectSession,
    NewConnection, NewIntegration, OAuthState, Store, StoreError,
};
use rand::Rng;
use serde_json::{json, Map, Value};

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A migrated SQLite store on a temp file that lives as long as this value.
struct SqliteDb {
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

impl SqliteDb {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("nested").join("ferry.db");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let store = connect(&url).await.expect("open sqlite");
        store.migrate().await.expect("migrate sqlite");
        Self { store, _dir: dir }
    }

    async fn finish(self) {
        self.store.close().await;
    }
}

/// A migrated PostgreSQL store on a database created for one test and dropped after it.
struct PostgresDb {
    store: Arc<dyn Store>,
    admin_url: String,
    name: String,
}

impl PostgresDb {
    async fn new() -> Self {
        let admin_url = std::env::var("FERRY_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
        let name = format!("ferry_test_{:016x}", rand::rng().random::<u64>());
        let mut admin = sqlx_admin(&admin_url).await;
        sqlx_exec(&mut admin, &format!("CREATE DATABASE {name}")).await;
        let mut url = url::Url::parse(&admin_url).expect("postgres url");
        url.set_path(&name);
        let store = connect(url.as_str()).await.expect("open postgres");
        store.migrate().await.expect("migrate postgres");
        Self {
            store,
            admin_url,
            name,
        }
    }

    async fn finish(self) {
        self.store.close().await;
        // Dropping `self` removes the database.
    }
}

impl Drop for PostgresDb {
    /// Drops the test database even when the test panicked. `WITH (FORCE)` ends any
    /// connections still open, so nothing has to wait for the pool.
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            runtime.block_on(async {
                let mut admin = sqlx_admin(&admin_url).await;
                sqlx_exec(&mut admin, &sql).await;
            });
        });
        if cleanup.join().is_err() && !std::thread::panicking() {
            panic!("dropping the test database failed");
        }
    }
}

async fn sqlx_admin(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(url)
        .await
        .expect("connect to the Postgres test server (set FERRY_TEST_POSTGRES_URL)")
}

async fn sqlx_exec(connection: &mut sqlx::PgConnection, sql: &str) {
    use sqlx::Executor;
    connection.execute(sql).await.expect(sql);
}

/// Instantiates each listed test function once per backend.
macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let db = super::SqliteDb::new().await;
                    super::$test(db.store.clone()).await;
                    db.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let db = super::PostgresDb::new().await;
                    super::$test(db.store.clone()).await;
                    db.finish().await;
                }
            )*
        }
    };
}

conformance!(
    migrations_can_run_again_without_changing_anything,
    meta_values_are_replaced_on_write,
    ensuring_an_environment_twice_returns_the_first_one_even_concurrently,
    data_of_one_environment_is_invisible_and_untouchable_from_another,
    integrations_are_created_read_renamed_and_deleted_with_their_connections,
    a_connect_session_is_found_by_token_hash_until_it_expires,
    an_oauth_state_is_taken_once_even_when_many_take_it_concurrently,
    an_expired_oauth_state_cannot_be_taken,
    reconnecting_the_same_org_user_and_end_user_updates_the_existing_connection,
    concurrent_authorizations_of_the_same_org_user_create_one_connection,
    listing_connections_filters_orders_newest_first_and_pages,
    metadata_is_replaced_or_merged_on_all_connections_or_none,
    patching_a_connection_changes_only_the_given_fields,
    a_credential_write_with_a_stale_fence_is_refused,
    a_refresh_lease_is_exclusive_until_released_or_expired,
    ciphertexts_are_listed_and_replaced_only_when_unchanged,
    an_auth_webhook_is_queued_with_the_connection_and_claimed_by_one_worker,
    a_webhook_url_override_is_kept_until_replaced_or_cleared,
);

// ---------------------------------------------------------------------------------------------
// Fixtures

const NOW: i64 = 1_700_000_000_000;

async fn environment(store: &Arc<dyn Store>, name: &str) -> Environment {
    store
        .ensure_environment(
            name,
            &format!("secret-{name}"),
            &format!("sign-{name}"),
            NOW,
        )
        .await
        .expect("ensure environment")
}

fn new_integration(key: &str) -> NewIntegration {
    NewIntegration {
        unique_key: key.to_owned(),
        provider: "salesforce".to_owned(),
        display_name: "Salesforce".to_owned(),
        client_id: Some("client".to_owned()),
        scopes: Some("api refresh_token".to_owned()),
    }
}

async fn integration(store: &Arc<dyn Store>, env: EnvironmentId, key: &str) -> Integration {
    store
        .create_integration(env, &new_integration(key), Some(&secret), NOW)
        .await
        .expect("create integration")
}

/// The store's sealer for a test connection: `creds-{connection_id}` for whatever row.
fn sealed(c: &NewConnection) -> impl Fn(i64) -> Result<Vec<u8>, String> + Send + Sync {
    let id = c.connection_id.clone();
    move |_| Ok(format!("creds-{id}").into_bytes())
}

/// The sealer of a test integration's client secret.
fn secret(_: i64) -> Result<Vec<u8>, String> {
    Ok(b"secret-ciphertext".to_vec())
}

fn new_connection(integration: &Integration, connection_id: &str) -> NewConnection {
    NewConnection {
        integration_id: integration.id,
        connection_id: connection_id.to_owned(),
        provider: "salesforce".to_owned(),
        connection_config: json!({"instance_url": "https://acme.my.salesforce.com"}),
        metadata: None,
        tags: json!({}),
        end_user: None,
        end_user_id: None,
        expires_at: Some(NOW + 3_600_000),
        sf_org_id: None,
        sf_user_id: None,
        reconnect: None,
        existing: Default::default(),
        webhook_url_override: None,
        auth_webhook: None,
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn oauth_state(env: EnvironmentId, integration: &Integration, state: &str) -> OAuthState {
    OAuthState {
        state: state.to_owned(),
        environment_id: env,
        integration_id: integration.id,
        connect_session_id: None,
        connection_id: Some("c1".to_owned()),
        pkce_verifier: b"verifier-ciphertext".to_vec(),
        ws_client_id: Some("ws-1".to_owned()),
        connection_config: json!({"login_host": "login.salesforce.com"}),
        expires_at: NOW + 600_000,
        created_at: NOW,
    }
}

fn session(token_hash: &str, expires_at: i64) -> NewConnectSession {
    NewConnectSession {
        token_hash: token_hash.to_owned(),
        end_user: Some(json!({"id": "u1", "email": "a@b.co", "display_name": "Ada"})),
        organization: Some(json!({"id": "org1", "display_name": "Acme"})),
        allowed_integrations: Some(vec!["sf".to_owned()]),
        integrations_config_defaults: Some(json!({"sf": {"user_scopes": "api"}})),
        tags: json!({"end_user_id": "u1"}),
        reconnect_connection_id: None,
        webhook_url_override: None,
        expires_at,
    }
}

fn ids(connections: &[ferry_store::Connection]) -> Vec<&str> {
    connections
        .iter()
        .map(|c| c.connection_id.as_str())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tests

async fn migrations_can_run_again_without_changing_anything(store: Arc<dyn Store>) {
    store.set_meta("key_fingerprint", "abc").await.expect("set");

    store.migrate().await.expect("second migrate");
    store.migrate().await.expect("third migrate");

    assert_eq!(
        store.get_meta("key_fingerprint").await.expect("get"),
        Some("abc".to_owned())
    );
}

async fn meta_values_are_replaced_on_write(store: Arc<dyn Store>) {
    assert_eq!(store.get_meta("missing").await.expect("get"), None);

    store.set_meta("k", "one").await.expect("set");
    store.set_meta("k", "two").await.expect("set again");

    assert_eq!(
        store.get_meta("k").await.expect("get"),
        Some("two".to_owned())
    );
}

async fn ensuring_an_environment_twice_returns_the_first_one_even_concurrently(
    store: Arc<dyn Store>,
) {
    let racers = (0..4).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .ensure_environment("dev", &format!("secret-{n}"), &format!("sign-{n}"), NOW)
                .await
        })
    });
    let mut seen = HashSet::new();
    for racer in racers {
        let env = racer.await.expect("join").expect("ensure");
        seen.insert((env.id, env.secret_key_hash));
    }
    let again = store
        .ensure_environment("dev", "other-secret", "other-sign", NOW + 1)
        .await
        .expect("ensure again");
    let prod = environment(&store, "prod").await;

    assert_eq!(seen.len(), 1, "every caller got the same environment");
    assert!(seen.contains(&(again.id, again.secret_key_hash.clone())));
    let listed = store.list_environments().await.expect("list");
    assert_eq!(
        listed.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        ["dev", "prod"]
    );
    let found = store
        .environment_by_secret_key(&prod.secret_key_hash)
        .await
        .expect("by key");
    assert_eq!(found, Some(prod.clone()));
    // Sealing swaps the stored key for its hash and sealed copy, once (compare-and-swap).
    assert!(store
        .seal_secret_key(prod.id, &prod.secret_key_hash, "sha256:ab", b"sealed-key")
        .await
        .expect("seal"));
    assert!(!store
        .seal_secret_key(prod.id, &prod.secret_key_hash, "sha256:cd", b"other")
        .await
        .expect("seal again"));
    let prod = store
        .environment_by_secret_key("sha256:ab")
        .await
        .expect("by hash")
        .expect("sealed row");
    assert_eq!(prod.secret_key_sealed.as_deref(), Some(&b"sealed-key"[..]));
    assert!(store.list_ciphertexts().await.expect("list").contains(&(
        CipherRef::EnvironmentSecretKey(prod.id),
        prod.id,
        b"sealed-key".to_vec()
    )));
    assert_eq!(
        store
            .environment_by_secret_key("nope")
            .await
            .expect("by key"),
        None
    );
    assert!(store
        .set_webhook_url(prod.id, Some("https://hooks.example"))
        .await
        .expect("set url"));
    let found = store
        .environment_by_secret_key(&prod.secret_key_hash)
        .await
        .expect("by key")
        .expect("present");
    assert_eq!(found.webhook_url.as_deref(), Some("https://hooks.example"));
}

async fn data_of_one_environment_is_invisible_and_untouchable_from_another(store: Arc<dyn Store>) {
    let dev = environment(&store, "dev").await;
    let prod = environment(&store, "prod").await;
    let sf = integration(&store, dev.id, "sf").await;
    let (connection, _) = store
        .upsert_connection(
            dev.id,
            &new_connection(&sf, "c1"),
            &sealed(&new_connection(&sf, "c1")),
            NOW,
        )
        .await
        .expect("upsert");
    let dev_session = store
        .create_connect_session(dev.id, &session("hash-dev", NOW + 60_000), NOW)
        .await
        .expect("session");

    // Reads from prod see nothing.
    assert_eq!(
        store.get_integration(prod.id, "sf").await.expect("get"),
        None
    );
    assert!(store
        .list_integrations(prod.id)
        .await
        .expect("list")
        .is_empty());
    assert_eq!(
        store
            .get_connection(prod.id, "sf", "c1")
            .await
            .expect("get"),
        None
    );
    assert!(store
        .connections_with_id(prod.id, "c1")
        .await
        .expect("by id")
        .is_empty());
    assert_eq!(
        store
            .connection_by_row_id(prod.id, connection.id)
            .await
            .expect("by row id"),
        None
    );
    assert!(store
        .list_connections(prod.id, &ConnectionFilter::default())
        .await
        .expect("list")
        .is_empty());

    // Writes from prod change nothing.
    let rename = IntegrationPatch {
        unique_key: Some("hijacked".to_owned()),
        ..IntegrationPatch::default()
    };
    assert!(matches!(
        store.update_integration(prod.id, "sf", &rename, NOW).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(!store
        .delete_integration(prod.id, "sf")
        .await
        .expect("delete"));
    assert!(!store
        .delete_connection(prod.id, "sf", "c1")
        .await
        .expect("delete"));
    assert!(matches!(
        store
            .set_metadata(
                prod.id,
                "sf",
                &["c1".to_owned()],
                &object(json!({"x": 1})),
                MetadataMode::Replace,
                NOW
            )
            .await,
        Err(StoreError::NotFound { .. })
    ));
    let patch = ConnectionPatch {
        tags: Some(json!({"owned": "prod"})),
        ..ConnectionPatch::default()
    };
    assert_eq!(
        store
            .patch_connection(prod.id, "sf", "c1", &patch, NOW)
            .await
            .expect("patch"),
        None
    );
    assert!(!store
        .set_connection_status(
            prod.id,
            connection.id,
            ConnectionStatus::NeedsReauth,
            &[],
            NOW
        )
        .await
        .expect("status"));
    assert!(!store
        .touch_last_fetched(prod.id, connection.id, NOW)
        .await
        .expect("touch"));
    assert!(matches!(
        store
            .upsert_connection(
                prod.id,
                &new_connection(&sf, "c2"),
                &sealed(&new_connection(&sf, "c2")),
                NOW
            )
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store
            .create_oauth_state(&oauth_state(prod.id, &sf, "s-prod"))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    let mut reconnect = session("hash-prod", NOW + 60_000);
    reconnect.reconnect_connection_id = Some(connection.id);
    assert!(matches!(
        store.create_connect_session(prod.id, &reconnect, NOW).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(!store
        .delete_connect_session(prod.id, dev_session.id)
        .await
        .expect("delete"));

    // The same key is free in prod, and dev is untouched.
    integration(&store, prod.id, "sf").await;
    let still = store
        .get_connection(dev.id, "sf", "c1")
        .await
        .expect("get")
        .expect("dev connection survives");
    assert_eq!(still, connection);
    assert!(store
        .connect_session_by_token_hash("hash-dev", NOW)
        .await
        .expect("session")
        .is_some());
    assert_eq!(
        store.get_integration(dev.id, "sf").await.expect("get"),
        Some(sf)
    );
}

async fn integrations_are_created_read_renamed_and_deleted_with_their_connections(
    store: Arc<dyn Store>,
) {
    let dev = environment(&store, "dev").await;
    let created = integration(&store, dev.id, "sf").await;
    integration(&store, dev.id, "other").await;

    let duplicate = store
        .create_integration(dev.id, &new_integration("sf"), Some(&secret), NOW)
        .await;
    assert!(matches!(duplicate, Err(StoreError::Conflict { .. })));
    assert_eq!(
        store.get_integration(dev.id, "sf").await.expect("get"),
        Some(created.clone())
    );
    assert_eq!(
        created.client_secret.as_deref(),
        Some(&b"secret-ciphertext"[..])
    );

    store
        .upsert_connection(
            dev.id,
            &new_connection(&created, "c1"),
            &sealed(&new_connection(&created, "c1")),
            NOW,
        )
        .await
        .expect("upsert");
    let collide = IntegrationPatch {
        unique_key: Some("other".to_owned()),
        ..IntegrationPatch::default()
    };
    assert!(matches!(
        store
            .update_integration(dev.id, "sf", &collide, NOW + 1)
            .await,
        Err(StoreError::Conflict { .. })
    ));
    let rename = IntegrationPatch {
        unique_key: Some("salesforce".to_owned()),
        display_name: Some("SF".to_owned()),
        client_secret: Some(None),
        ..IntegrationPatch::default()
    };
    let renamed = store
        .update_integration(dev.id, "sf", &rename, NOW + 2)
        .await
        .expect("rename");
    assert_eq!(renamed.id, created.id);
    assert_eq!(renamed.unique_key, "salesforce");
    assert_eq!(renamed.display_name, "SF");
    assert_eq!(renamed.client_secret, None);
    assert_eq!(renamed.client_id, created.client_id);
    assert_eq!(renamed.updated_at, NOW + 2);
    assert_eq!(
        store.get_integration(dev.id, "sf").await.expect("get"),
        None
    );
    let moved = store
        .get_connection(dev.id, "salesforce", "c1")
        .await
        .expect("get")
        .expect("connection follows the rename");
    assert_eq!(moved.integration_key, "salesforce");

    assert!(store
        .delete_integration(dev.id, "salesforce")
        .await
        .expect("delete"));
    assert!(!store
        .delete_integration(dev.id, "salesforce")
        .await
        .expect("delete again"));
    assert!(store
        .connections_with_id(dev.id, "c1")
        .await
        .expect("by id")
        .is_empty());
    let keys: Vec<_> = store
        .list_integrations(dev.id)
        .await
        .expect("list")
        .into_iter()
        .map(|i| i.unique_key)
        .collect();
    assert_eq!(keys, ["other"]);
}

async fn a_connect_session_is_found_by_token_hash_until_it_expires(store: Arc<dyn Store>) {
    let dev = environment(&store, "dev").await;
    let sf = integration(&store, dev.id, "sf").await;
    let (connection, _) = store
        .upsert_connection(
            dev.id,
            &new_connection(&sf, "c1"),
            &sealed(&new_connection(&sf, "c1")),
            NOW,
        )
        .await
        .expect("upsert");
    let mut reconnect = session("hash-1", NOW + 1_800_000);
    reconnect.reconnect_connection_id = Some(connection.id);

    let created = store
        .create_connect_session(dev.id, &reconnect, NOW)
        .await
        .expect("create");

    let found = store
        .connect_session_by_token_hash("hash-1", NOW + 1_799_999)
        .await
        .expect("get")
        .expect("unexpired");
    assert_eq!(found, created);
    assert_eq!(found.reconnect_connection_id, Some(connection.id));
    assert_eq!(found.allowed_integrations, Some(vec!["sf".to_owned()]));
    assert_eq!(found.end_user, reconnect.end_user);
    assert_eq!(
        store
            .connect_session_by_token_hash("hash-1", NOW + 1_800_000)
            .await
            .expect("get"),
        None
    );
    assert!(matches!(
        store
            .create_connect_session(dev.id, &session("hash-1", NOW), NOW)
            .await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(store
        .delete_connect_session(dev.id, created.id)
        .await
        .expect("delete"));
    assert_eq!(
        store
            .connect_session_by_token_hash("hash-1", NOW)
            .await
            .expect("get"),
        None
    );
    store
        .create_connect_session(dev.id, &session("old", NOW + 10), NOW)
        .await
        .expect("create");
    store
        .create_connect_session(dev.id, &session("new", NOW + 1_000), NOW)
        .await
        .expect("create");
    assert_eq!(
        store
            .purge_expired_connect_sessions(NOW + 10)
            .await
            .expect("purge"),
        1
    );
}

async fn an_oauth_state_is_taken_once_even_when_many_take_it_concurrently(store: Arc<dyn Store>) {
    let dev = environment(&store, "dev").await;
    let sf = integration(&store, dev.id, "sf").await;
    let pending = store
        .create_connect_session(dev.id, &session("hash", NOW + 60_000), NOW)
        .await
        .expect("session");
    let mut state = oauth_state(dev.id, &sf, "state-1");
    state.connect_session_id = Some(pending.id);
    store.create_oauth_state(&state).await.expect("create");
    assert!(matches!(
        store.create_oauth_state(&state).await,
        Err(StoreError::Conflict { .. })
    ));

    let takers: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.take_oauth_state("state-1", NOW + 1).await })
        })
        .collect();
    let mut taken = Vec::new();
    for taker in takers {
        if let Some(found) = taker.await.expect("join").expect("take") {
            taken.push(found);
        }
    }

    assert_eq!(taken, vec![state]);
    assert_eq!(
        store
            .take_oauth_state("state-1", NOW + 1)
            .await
            .expect("take"),
        None
    );
    assert_eq!(
        store.take_oauth_state("unknown", NOW).await.expect("take"),
        None
    );
}

async fn an_expired_oauth_state_cannot_be_taken(store: Arc<dyn Store>) {
    let dev = environment(&store, "dev").await;
    let sf = integration(&store, dev.id, "sf").await;
    let state = oauth_state(dev.id, &sf, "state-1");
    store.create_oauth_state(&state).await.expect("create");

    assert_eq!(
        store
            .take_oauth_state("state-1", state.expires_at)
            .await
            .expect("take"),
        None
    );
    assert_eq!(
        store
            .purge_expired_oauth_states(state.expires_at)
            .await
            .expect("purge"),
        1
    );
    assert_eq!(
        store.take_oauth_state("state-1", NOW).await.expect("take"),
        None
    );
}

async fn reconnecting_the_same_org_user_and_end_user_updates_the_existing_connection(
    store: Arc<dyn Store>,
) {
    let dev = environment(&store, "dev").await;
    let sf = integration(&store, dev.id, "sf").await;
    let mut first = new_connection(&sf, "c1");
    first.sf_org_id = Some("00D1".to_owned());
    first.sf_user_id = Some("0051".to_owned());
    first.end_user_id = Some("u1".to_owned());
    first.end_user = Some(json!({"id": "u1", "display_name": "Ada"}));
    first.metadata = Some(json!({"kept": true}));
    let (original, created) = store
        .upsert_connection(dev.id, &first, &sealed(&first), NOW)
        .await
        .expect("first");
    assert!(created);
    assert_eq!(original.status, ConnectionStatus::Active);
    assert_eq!(original.errors, Vec::<Value>::new());
    store
        .set_connection_status(
            dev.id,
            original.id,
            ConnectionStatus::NeedsReauth,
            &[json!({"type": "auth", "log_id": "l1"})],
            NOW,
        )
        .await
        .expect("status");

    let mut again = new_connection(&sf, "c-new-random-id");
    again.sf_org_id = first.sf_org_id.clone();
    again.sf_user_id = first.sf_user_id.clone();
    again.end_user_id = first.end_user_id.clone();
    again.tags = json!({"t": "2"});
    let (updated, created) = store
        .upsert_connection(dev.id, &again, &|_| Ok(b"fresh".to_vec()), NOW + 5)
        .await
        .expect("again");

    assert!(!created);
    assert_eq!(updated.id, original.id);
    assert_eq!(updated.connection_id, "c1");
    assert_eq!(updated.credentials, b"fresh");
    assert_eq!(updated.tags, json!({"t": "2"}));
    assert_eq!(updated.metadata, Some(json!({"kept": true})));
    assert_eq!(updated.end_user, first.end_user);
    assert_eq!(updated.status, ConnectionStatus::Active);
    assert!(updated.errors.is_empty());
    assert_eq!(updated.refresh_fence, original.refresh_fence + 1);
    assert_eq!(updated.created_at, NOW);
    assert_eq!(updated.updated_at, NOW + 5);

    let mut other_end_user = again.clone();
    other_end_user.end_user_id = Some("u2".to_owned());
    other_end_user.connection_id = "c2".to_owned();
    let (second, created) = store
        .upsert_connection(dev.id, &other_end_user, &sealed(&other_end_user), NOW + 6)
        .await
        .expect("other end user");
    assert!(created);
    assert_ne!(second.id, original.id);

    // A reconnect onto another org is refused: records of two orgs never mix.
    let mut elsewhere = new_connection(&sf, "ignored");
    elsewhere.reconnect = Some(second.id);
    elsewhere.sf_org_id = Some("00D2".to_owned());
    elsewhere.sf_user_id = Some("0052".to_owned());
    assert!(matches!(
        store
            .upsert_connection(dev.id, &elsewhere, &sealed(&elsewhere), NOW + 7)
            .await,
        Err(StoreError::OrgMismatch { .. })
    ));
    // The same org (another user of it) reconnects; no tags given keeps the connection's tags.
    let mut explicit = elsewhere.clone();
    explicit.sf_org_id = second.sf_org_id.clone();
    explicit.tags = Value::Null;
    let (target, created) = store
        .upsert_connection(dev.id, &explicit, &sealed(&explicit), NOW + 7)
        .await
        .expect("explicit reconnect");
    assert!(!created);
    assert_eq!(target.id, second.id);
    assert_eq!(target.connection_id, "c2");
    assert_eq!(target.sf_user_id.as_deref(), Some("0052"));
    assert_eq!(target.tags, second.tags, "tags kept");
    // An import over an existing connection id is refused unless it asks to replace.
    let mut import = new_connection(&sf, "c2");
    import.existing = ferry_store::ExistingConnection::Refuse;
    assert!(matches!(
        store
            .upsert_connection(dev.id, &import, &sealed(&import), NOW + 7)
            .await,
        Err(StoreError::Conflict { .. })
    ));
    import.existing = ferry_store::ExistingConnection::Replace;
    let (replaced, created) = store
        .upsert_connection(dev.id, &import, &sealed(&import), NOW + 7)
        .await
        .expect("replace");
    assert!(!created);
    assert_eq!(replaced.id, second.id);

    let (by_id, created) = store
        .upsert_connection(
            dev.id,
            &new_connection(&sf, "c2"),
            &sealed(&new_connection(&sf, "c2")),
            NOW + 8,
        )
        .await
        .expect("same connection id");
    assert!(!created);
    assert_eq!(by_id.id, second.id);

    let mut missing = new_connection(&sf, "x");
    missing.reconnect = Some(ferry_store::ConnectionRowId(i64::MAX));
    assert!(matches!(
        store
            .upsert_connection(dev.id, &missing, &sealed(&missing), NOW)
            .await,
        Err(StoreError::NotFound { .. })
    ));
    let all = store
        .list_connections(dev.id, &ConnectionFilter::default())
        .await
        .expect("list");
    assert_eq!(all.len(), 2);
}

async fn concurrent_authorizations_of_the_same_org_user_create_one_connection(
    store: Arc<dyn Store>,
) {
    let dev = environment(&store, "dev").await;
    let sf = integration(&store, dev.id, "sf").await;

    let racers: Vec<_> = (0..4)
        .map(|n| {
            let store = store.clone();
            let mut connection = new_connection(&sf, &format!("c{n}"));
            connection.sf_org_id = Some("00D1".to_owned());
            connection.sf_user_id = Some("0051".to_owned());
            tokio::spawn(async move {
                store
                    .upsert_connection(dev.id, &connection, &sealed(&connection), NOW)
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for racer in racers {
        let (_, was_created) = racer.await.expect("join").expect("upsert");
        created += usize::from(was_created);
    }

    assert_eq!(created, 1);
    let all = store
        .list_connections(dev.id, &ConnectionFilter::default())
        .await
        .expect("list");
    assert_eq!(all.len(), 1);
}

async fn listing_connections_filters_orders_newest_first_and_pages(store: Arc<dyn Store>) {
    let dev = environment(&store, "dev").await;
    let sf = integration(&store, dev.id, "sf").await;
    let sandbox = integration(&store, dev.id, "sandbox").await;
    let fixtures = [
        (
            "alpha",
            &sf,
            NOW,
            Some(("u1", "Ada Lovelace", "ada@example.com", "org1")),
            json!({"team": "red"}),
        ),
        (
            "beta",
            &sf,
            NOW + 1,
            Some(("u2", "Grace", "grace@NAVY.mil", "org2")),
            json!({"team": "blue", "tier": "gold"}),
        ),
        (
            "gamma_100%",
            &sandbox,
            NOW + 1,
            None,
            json!({"team": "blue"}),
        ),
        (
            "delta",
            &sandbox,
            NOW + 2,
            Some(("u1", "Ada Lovelace", "ada@example.com", "org1")),
            json!({}),
        ),
    ];
    for (connection_id, integration, created_at, end_user, tags) in fixtures {
        let mut connection = new_connection(integration, connection_id);
        connection.tags = tags;
        if let Some((id, name, email, org)) = end_user {
            connection.end_user_id = Some(id.to_owned());
            connection.end_user = Some(json!({
                "id": id, "display_name": name, "email": email,
                "organization": {"id": org, "display_name": "Org"}
            }));
        }
        store
            .upsert_connection(dev.id, &connection, &sealed(&connection), created_at)
            .await
            .expect("upsert");
    }
    let list = |filter: ConnectionFilter| {
        let store = store.clone();
        async move { store.list_connections(dev.id, &filter).await.expect("list") }
    };

    // Newest first; ties on created_at broken by id descending.
    assert_eq!(
        ids(&list(ConnectionFilter::default()).await),
        ["delta", "gamma_100%", "beta", "alpha"]
    );
    assert_eq!(
        ids(&list(ConnectionFilter {
            connection_id: Some("beta".into()),
            ..Default::default()
        })
        .await),
        ["beta"]
    );
    assert_eq!(
        ids(&list(ConnectionFilter {
            search: Some("LOVELACE".into()),
            ..Default::default()
        })
        .await),
        ["delta", "alpha"]
    );
    assert_eq!(
        ids(&list(ConnectionFilter {
            search: Some("navy".into()),
            ..Default::default()
        })
        .await),
        ["beta"]
    );
    assert_eq!(
        ids(&list(ConnectionFilter {
            search: Some("MA_1".into()),
            ..Default::default()
        })
        .await),
        ["gamma_100%"]
    );
    assert!(
        ids(&list(ConnectionFilter {
            search: Some("e_".into()),
            ..Default::default()
        })
        .await)
        .is_empty(),
        "LIKE wildcards in the search are literal"
    );
    assert_eq!(
        ids(&list(ConnectionFilter {
            search: Some("0%".into()),
            ..Default::default()
        })
        .await),
        ["gamma_100%"]
    );
    assert_eq!(
        ids(&list(ConnectionFilter {
            end_user_id: Some("u1".into()),
            ..Default::default()
        })
        .await),
        ["delta", "alpha"]
    );
    assert_eq!(
        ids(&list(ConnectionFilter {
            end_user_organization_id: Some("org2".into()),
            ..Default::default()
        })
        .await),
        ["beta"]
    );
    assert_eq!(
        ids(&list(ConnectionFilter {
            integration_keys: vec!["sandbox".into()],
            ..Default::default()
        })
        .await),
        ["delta", "gamma_100%"]
    );
    assert_eq!(
        ids(&list(ConnectionFilter {
            integration_keys: vec!["sandbox".into(), "sf".into()],
            ..Default::default()
        })
        .await)
        .len(),
        4
    );
    assert_eq!(
        ids(&list(ConnectionFilter {
            tags: vec![("team".into(), "blue".into())],
            ..Default::default()
        })
        .await),
        ["gamma_100%", "beta"]
    );
    assert_eq!(
        ids(&list(ConnectionFilter {
            tags: vec![
                ("team".into(), "blue".into()),
                ("tier".into(), "gold".into())
            ],
            ..Default::default()
        })
        .await),
        ["beta"]
    );
    assert_eq!(
        ids(&list(ConnectionFilter {
            limit: Some(3),
            page: Some(0),
            ..Default::default()
        })
        .await),
        ["delta", "gamma_100%", "beta"]
    );
    assert_eq!(
        ids(&list(ConnectionFilter {
            limit: Some(3),
            page: Some(1),
            ..Default::default()
        })
        .await),
        ["alpha"]
    );
    assert!(ids(&list(ConnectionFilter {
        limit: Some(3),
        page: Some(2),
        ..Default::default()
    })
    .await)
    .is_empty());
    let both = list(ConnectionFilter {
        connection_id: Some("alpha".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(both[0].integration_key, "sf");
    assert_eq!(
        store
            .connections_with_id(dev.id, "delta")
            .await
            .expect("by id")[0]
            .integration_key,
        "sandbox"
    );
}

async fn metadata_is_replaced_or_merged_on_all_connections_or_none(store: Arc<dyn Store>) {
    let dev = environment(&store, "dev").await;
    let sf = integration(&store, dev.id, "sf").await;
    for id in ["c1", "c2"] {
        store
            .upsert_connection(
                dev.id,
                &new_connection(&sf, id),
                &sealed(&new_connection(&sf, id)),
                NOW,
            )
            .await
            .expect("upsert");
    }
    let both = ["c1".to_owned(), "c2".to_owned()];
    let metadata = |id: &'static str| {
        let store = store.clone();
        async move {
            store
                .get_connection(dev.id, "sf", id)
                .await
                .expect("get")
                .expect("exists")
                .metadata
        }
    };
    assert_eq!(metadata("c1").await, None);

    store
        .set_metadata(
            dev.id,
            "sf",
            &both,
            &object(json!({"a": 1, "b": {"x": 1}})),
            MetadataMode::Replace,
            NOW,
        )
        .await
        .expect("replace");
    store
        .set_metadata(
            dev.id,
            "sf",
            &["c1".to_owned()],
            &object(json!({"b": {"y": 2}, "c": 3})),
            MetadataMode::Merge,
            NOW,
        )
        .await
        .expect("merge");

    assert_eq!(
        metadata("c1").await,
        Some(json!({"a": 1, "b": {"y": 2}, "c": 3}))
    );
    assert_eq!(metadata("c2").await, Some(json!({"a": 1, "b": {"x": 1}})));

    let partly_missing = ["c2".to_owned(), "nope".to_owned(), "gone".to_owned()];
    let refused = store
        .set_metadata(
            dev.id,
            "sf",
            &partly_missing,
            &object(json!({"z": 0})),
            MetadataMode::Replace,
            NOW,
        )
        .await;
    match refused {
        Err(StoreError::NotFound { keys, .. }) => assert_eq!(keys, ["nope", "gone"]),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(
        metadata("c2").await,
        Some(json!({"a": 1, "b": {"x": 1}})),
        "nothing changed"
    );

    store
        .set_metadata(
            dev.id,
            "sf",
            &["c2".to_owned()],
            &object(json!({"only": true})),
            MetadataMode::Replace,
            NOW,
        )
        .await
        .expect("replace");
    assert_eq!(metadata("c2").await, Some(json!({"only": true})));
    assert!(matches!(
        store
            .set_metadata(
                dev.id,
                "other",
                &both,
                &object(json!({})),
                MetadataMode::Merge,
                NOW
            )
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn patching_a_connection_changes_only_the_given_fields(store: Arc<dyn Store>) {
    let dev = environment(&store, "dev").await;
    let sf = integration(&store, dev.id, "sf").await;
    let (original, _) = store
        .upsert_connection(
            dev.id,
            &new_connection(&sf, "c1"),
            &sealed(&new_connection(&sf, "c1")),
            NOW,
        )
        .await
        .expect("upsert");

    let patched = store
        .patch_connection(
            dev.id,
            "sf",
            "c1",
            &ConnectionPatch {
                tags: Some(json!({"k": "v"})),
                end_user: Some(Some(json!({"id": "u9"}))),
                end_user_id: Some(Some("u9".to_owned())),
                connection_config: None,
                webhook_url_override: None,
            },
            NOW + 1,
        )
        .await
        .expect("patch")
        .expect("exists");

    assert_eq!(patched.tags, json!({"k": "v"}));
    assert_eq!(patched.end_user_id.as_deref(), Some("u9"));
    assert_eq!(patched.connection_config, original.connection_config);
    assert_eq!(patched.updated_at, NOW + 1);
    assert!(store
        .touch_last_fetched(dev.id, original.id, NOW + 2)
        .await
        .expect("touch"));
    let errors = [json!({"type": "auth", "log_id": "l1"})];
    assert!(store
        .set_connection_status(
            dev.id,
            original.id,
            ConnectionStatus::NeedsReauth,
            &errors,
            NOW + 3
        )
        .await
        .expect("status"));
    let reread = store
        .connection_by_row_id(dev.id, original.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(reread.last_fetched_at, Some(NOW + 2));
    assert_eq!(reread.status, ConnectionStatus::NeedsReauth);
    assert_eq!(reread.errors, errors);
    assert!(store
        .delete_connection(dev.id, "sf", "c1")
        .await
        .expect("delete"));
    assert_eq!(
        store.get_connection(dev.id, "sf", "c1").await.expect("get"),
        None
    );
}

async fn a_webhook_url_override_is_kept_until_replaced_or_cleared(store: Arc<dyn Store>) {
    let dev = environment(&store, "dev").await;
    let sf = integration(&store, dev.id, "sf").await;
    let mut new = new_connection(&sf, "c1");
    new.webhook_url_override = Some("https://a.example/hook".to_owned());
    let (created, _) = store
        .upsert_connection(dev.id, &new, &sealed(&new), NOW)
        .await
        .expect("upsert");
    assert_eq!(
        created.webhook_url_override.as_deref(),
        Some("https://a.example/hook")
    );
    // A reconnect that names no override keeps the connection's.
    let (updated, was_created) = store
        .upsert_connection(
            dev.id,
            &new_connection(&sf, "c1"),
            &sealed(&new_connection(&sf, "c1")),
            NOW + 1,
        )
        .await
        .expect("upsert again");
    assert!(!was_created);
    assert_eq!(
        updated.webhook_url_override.as_deref(),
        Some("https://a.example/hook")
    );
    let patch = |url: Option<&str>| ConnectionPatch {
        webhook_url_override: Some(url.map(str::to_owned)),
        ..ConnectionPatch::default()
    };
    let cleared = store
        .patch_connection(dev.id, "sf", "c1", &patch(None), NOW + 2)
        .await
        .expect("patch")
        .expect("exists");
    assert_eq!(cleared.webhook_url_override, None);
    let replaced = store
        .patch_connection(
            dev.id,
            "sf",
            "c1",
            &patch(Some("https://b.example/")),
            NOW + 3,
        )
        .await
        .expect("patch")
        .expect("exists");
    assert_eq!(
        replaced.webhook_url_override.as_deref(),
        Some("https://b.example/")
    );
    let untouched = store
        .patch_connection(dev.id, "sf", "c1", &ConnectionPatch::default(), NOW + 4)
        .await
        .expect("patch")
        .expect("exists");
    assert_eq!(
        untouched.webhook_url_override.as_deref(),
        Some("https://b.example/")
    );
    // A connect session keeps the override it was opened with.
    let mut opened = session("hash-override", NOW + 60_000);
    opened.webhook_url_override = Some("https://c.example/".to_owned());
    store
        .create_connect_session(dev.id, &opened, NOW)
        .await
        .expect("session");
    let found = store
        .connect_session_by_token_hash("hash-override", NOW)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(
        found.webhook_url_override.as_deref(),
        Some("https://c.example/")
    );
}

async fn a_credential_write_with_a_stale_fence_is_refused(store: Arc<dyn Store>) {
    let dev = environment(&store, "dev").await;
    let sf = integration(&store, dev.id, "sf").await;
    let (connection, _) = store
        .upsert_connection(
            dev.id,
            &new_connection(&sf, "c1"),
            &sealed(&new_connection(&sf, "c1")),
            NOW,
        )
        .await
        .expect("upsert");
    let stale = store
        .acquire_refresh_lease(connection.id, "worker-a", NOW, 1_000)
        .await
        .expect("lease")
        .expect("free");
    // worker-a's lease lapses; worker-b refreshes and commits newer credentials.
    let current = store
        .acquire_refresh_lease(connection.id, "worker-b", NOW + 1_000, 1_000)
        .await
        .expect("lease")
        .expect("expired lease can be taken");
    let config = json!({"instance_url": "https://new.my.salesforce.com"});
    assert!(store
        .update_credentials(
            connection.id,
            b"newer",
            Some(NOW + 10),
            Some(&config),
            Some(current),
            NOW + 1_001
        )
        .await
        .expect("write"));

    let late = store
        .update_credentials(
            connection.id,
            b"older",
            Some(NOW + 5),
            None,
            Some(stale),
            NOW + 1_002,
        )
        .await
        .expect("write");

    assert!(!late, "the stale fence is refused");
    let reread = store
        .connection_by_row_id(dev.id, connection.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(reread.credentials, b"newer");
    assert_eq!(reread.expires_at, Some(NOW + 10));
    assert_eq!(reread.connection_config, config);
    assert!(store
        .update_credentials(connection.id, b"unfenced", None, None, None, NOW + 1_003)
        .await
        .expect("unfenced write"));
    let reread = store
        .connection_by_row_id(dev.id, connection.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(reread.credentials, b"unfenced");
    assert_eq!(
        reread.connection_config, config,
        "config kept when not given"
    );
}

async fn a_refresh_lease_is_exclusive_until_released_or_expired(store: Arc<dyn Store>) {
    let dev = environment(&store, "dev").await;
    let sf = integration(&store, dev.id, "sf").await;
    let (connection, _) = store
        .upsert_connection(
            dev.id,
            &new_connection(&sf, "c1"),
            &sealed(&new_connection(&sf, "c1")),
            NOW,
        )
        .await
        .expect("upsert");

    let racers: Vec<_> = (0..6)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .acquire_refresh_lease(connection.id, &format!("w{n}"), NOW, 30_000)
                    .await
            })
        })
        .collect();
    let mut fences = Vec::new();
    for racer in racers {
        if let Some(fence) = racer.await.expect("join").expect("acquire") {
            fences.push(fence);
        }
    }
    assert_eq!(fences, [connection.refresh_fence + 1], "exactly one winner");
    let fence = fences[0];
    let holder = store
        .connection_by_row_id(dev.id, connection.id)
        .await
        .expect("get")
        .expect("exists")
        .refresh_lease_owner
        .expect("held");

    assert!(!store
        .release_refresh_lease(connection.id, "intruder", fence)
        .await
        .expect("release"));
    assert!(!store
        .release_refresh_lease(connection.id, &holder, fence - 1)
        .await
        .expect("release"));
    assert_eq!(
        store
            .acquire_refresh_lease(connection.id, "w9", NOW + 29_999, 30_000)
            .await
            .expect("acquire"),
        None
    );
    assert!(store
        .release_refresh_lease(connection.id, &holder, fence)
        .await
        .expect("release"));
    let next = store
        .acquire_refresh_lease(connection.id, "w9", NOW + 1, 30_000)
        .await
        .expect("acquire")
        .expect("released lease is free");
    assert_eq!(next, fence + 1);
    let after_expiry = store
        .acquire_refresh_lease(connection.id, "w10", NOW + 30_001, 30_000)
        .await
        .expect("acquire")
        .expect("expired lease is free");
    assert_eq!(after_expiry, fence + 2);
    assert_eq!(
        store
            .acquire_refresh_lease(ferry_store::ConnectionRowId(i64::MAX), "w", NOW, 1)
            .await
            .expect("acquire"),
        None
    );
}

async fn ciphertexts_are_listed_and_replaced_only_when_unchanged(store: Arc<dyn Store>) {
    let dev = environment(&store, "dev").await;
    let sf = integration(&store, dev.id, "sf").await;
    let (connection, _) = store
        .upsert_connection(
            dev.id,
            &new_connection(&sf, "c1"),
            &sealed(&new_connection(&sf, "c1")),
            NOW,
        )
        .await
        .expect("upsert");
    store
        .create_oauth_state(&oauth_state(dev.id, &sf, "s1"))
        .await
        .expect("state");
    let no_secret = new_integration("public");
    store
        .create_integration(dev.id, &no_secret, None, NOW)
        .await
        .expect("create");

    let listed = store.list_ciphertexts().await.expect("list");

    assert_eq!(
        listed,
        vec![
            (
                CipherRef::IntegrationClientSecret(sf.id),
                dev.id,
                b"secret-ciphertext".to_vec()
            ),
            (
                CipherRef::OAuthStatePkceVerifier("s1".to_owned()),
                dev.id,
                b"verifier-ciphertext".to_vec()
            ),
            (
                CipherRef::ConnectionCredentials(connection.id),
                dev.id,
                b"creds-c1".to_vec()
            ),
        ]
    );
    for (target, _, old) in &listed {
        assert!(store
            .replace_ciphertext(target, old, b"rotated")
            .await
            .expect("replace"));
        assert!(!store
            .replace_ciphertext(target, old, b"clobbered")
            .await
            .expect("replace again"));
    }
    // A refresh that committed between list and replace is not clobbered.
    assert!(store
        .update_credentials(connection.id, b"refreshed", None, None, None, NOW)
        .await
        .expect("refresh"));
    assert!(!store
        .replace_ciphertext(
            &CipherRef::ConnectionCredentials(connection.id),
            b"rotated",
            b"x"
        )
        .await
        .expect("replace"));
    let after: Vec<_> = store
        .list_ciphertexts()
        .await
        .expect("list")
        .into_iter()
        .map(|(_, _, bytes)| bytes)
        .collect();
    assert_eq!(
        after,
        [
            b"rotated".to_vec(),
            b"rotated".to_vec(),
            b"refreshed".to_vec()
        ]
    );
    let state = store
        .take_oauth_state("s1", NOW)
        .await
        .expect("take")
        .expect("exists");
    assert_eq!(state.pkce_verifier, b"rotated");
}

// ---------------------------------------------------------------------------------------------
// Backend selection (not part of the shared suite).

#[tokio::test]
async fn connect_opens_sqlite_from_a_plain_path_creating_its_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("a").join("b").join("ferry.db");

    let store = connect(path.to_str().expect("utf-8 path"))
        .await
        .expect("open");
    store.migrate().await.expect("migrate");

    assert_eq!(store.backend(), "sqlite");
    assert!(path.exists());
    store.close().await;
}

#[tokio::test]
async fn connect_rejects_an_unknown_scheme() {
    assert!(matches!(
        connect("mysql://localhost/ferry").await,
        Err(StoreError::UnsupportedUrl)
    ));
}

#[tokio::test]
async fn the_store_upcasts_to_its_narrow_ports() {
    let db = SqliteDb::new().await;
    let connections: Arc<dyn ferry_store::ConnectionStore> = db.store.clone();
    let env = environment(&db.store, "dev").await;

    let listed = connections
        .list_connections(env.id, &ConnectionFilter::default())
        .await
        .expect("list");

    assert!(listed.is_empty());
    db.finish().await;
}

async fn an_auth_webhook_is_queued_with_the_connection_and_claimed_by_one_worker(
    store: Arc<dyn Store>,
) {
    let env = environment(&store, "dev").await;
    let other = environment(&store, "prod").await;
    let sf = integration(&store, env.id, "salesforce").await;
    let mut new = new_connection(&sf, "c-1");
    new.sf_org_id = Some("00D000000000001AAA".into());
    new.sf_user_id = Some("005000000000001AAA".into());
    new.auth_webhook = Some(json!({"from": "nango", "type": "auth", "success": true}));
    let (first, created) = store
        .upsert_connection(env.id, &new, &sealed(&new), NOW)
        .await
        .expect("upsert");
    assert!(created);
    new.connection_id = "c-2".into();
    store
        .upsert_connection(env.id, &new, &sealed(&new), NOW + 1)
        .await
        .expect("reconnect");

    let queued = store.list_webhooks(env.id, 10).await.expect("list");
    assert_eq!(queued.len(), 2);
    assert_eq!(queued[1].payload["operation"], "creation");
    assert_eq!(queued[0].payload["operation"], "override");
    assert_eq!(
        queued[0].payload["connectionId"],
        first.connection_id.as_str(),
        "the stored row's id, not the new one"
    );
    assert!(store
        .list_webhooks(other.id, 10)
        .await
        .expect("list")
        .is_empty());

    // Two claims at once never get the same delivery; a leased delivery is not claimed again.
    let a = store
        .claim_webhook(NOW + 10, 30_000)
        .await
        .expect("claim")
        .expect("one due");
    let b = store
        .claim_webhook(NOW + 10, 30_000)
        .await
        .expect("claim")
        .expect("the other");
    assert_ne!(a.id, b.id);
    assert_eq!(a.attempts, 1);
    assert!(store
        .claim_webhook(NOW + 10, 30_000)
        .await
        .expect("claim")
        .is_none());

    store
        .finish_webhook(
            a.id,
            &DeliveryOutcome::Retry {
                next_attempt_at: NOW + 5_000,
                error: "HTTP 503".into(),
                status: Some(503),
            },
            NOW + 11,
        )
        .await
        .expect("retry");
    store
        .finish_webhook(b.id, &DeliveryOutcome::Delivered { status: 200 }, NOW + 11)
        .await
        .expect("done");
    assert!(
        store
            .claim_webhook(NOW + 4_000, 30_000)
            .await
            .expect("claim")
            .is_none(),
        "not due yet"
    );
    let again = store
        .claim_webhook(NOW + 5_000, 30_000)
        .await
        .expect("claim")
        .expect("due again");
    assert_eq!(again.id, a.id);
    assert_eq!(again.attempts, 2);
    assert_eq!(again.last_error.as_deref(), Some("HTTP 503"));
    // An expired lease frees the delivery for another worker.
    let stolen = store
        .claim_webhook(NOW + 40_000, 30_000)
        .await
        .expect("claim")
        .expect("lease expired");
    assert_eq!(stolen.id, a.id);
    store
        .finish_webhook(
            a.id,
            &DeliveryOutcome::Failed {
                error: "HTTP 400".into(),
                status: Some(400),
            },
            NOW + 40_001,
        )
        .await
        .expect("fail");
    let all = store.list_webhooks(env.id, 10).await.expect("list");
    let statuses: Vec<&str> = all.iter().map(|d| d.status.as_str()).collect();
    assert_eq!(statuses, vec!["delivered", "failed"]);
}
