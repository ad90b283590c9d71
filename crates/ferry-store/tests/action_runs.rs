//! Conformance of the asynchronous action-run queue on both backends: queue, claim once under
//! concurrency, lease expiry, retry, results scoped by environment, removal with the connection.

use std::sync::Arc;

use ferry_store::{
    connect, testing::TestPostgres, ActionRunOutcome, Connection, Environment, NewActionRun,
    NewConnection, NewIntegration, Store,
};
use serde_json::json;

const NOW: i64 = 1_700_000_000_000;

async fn sqlite() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let store = connect(&dir.path().join("f.db").to_string_lossy())
        .await
        .expect("sqlite");
    store.migrate().await.expect("migrate");
    (store, dir)
}

async fn postgres() -> (Arc<dyn Store>, TestPostgres) {
    let pg = TestPostgres::create().await.expect("postgres");
    let store = connect(&pg.url).await.expect("connect");
    store.migrate().await.expect("migrate");
    (store, pg)
}

async fn connection(store: &Arc<dyn Store>, env_name: &str) -> (Environment, Connection) {
    let env = store
        .ensure_environment(env_name, &format!("k-{env_name}"), "s", NOW)
        .await
        .expect("env");
    let integration = store
        .create_integration(
            env.id,
            &NewIntegration {
                unique_key: "sf".into(),
                provider: "salesforce".into(),
                display_name: "Salesforce".into(),
                client_id: None,
                scopes: None,
            },
            None,
            NOW,
        )
        .await
        .expect("integration");
    let (connection, _) = store
        .upsert_connection(
            env.id,
            &NewConnection {
                integration_id: integration.id,
                connection_id: "c1".into(),
                provider: "salesforce".into(),
                connection_config: json!({}),
                metadata: None,
                tags: json!({}),
                end_user: None,
                end_user_id: None,
                expires_at: None,
                sf_org_id: None,
                sf_user_id: None,
                reconnect: None,
                existing: Default::default(),
                webhook_url_override: None,
                auth_webhook: None,
            },
            &|_| Ok(b"creds".to_vec()),
            NOW,
        )
        .await
        .expect("connection");
    (env, connection)
}

fn run<'a>(
    id: &'a str,
    env: &Environment,
    c: &Connection,
    input: &'a serde_json::Value,
) -> NewActionRun<'a> {
    NewActionRun {
        id,
        environment_id: env.id,
        connection_row_id: c.id,
        action_name: "whoami",
        input,
        max_retries: 1,
    }
}

async fn a_run_is_claimed_once_finished_and_read_back(store: Arc<dyn Store>) {
    let (env, c) = connection(&store, "dev").await;
    let input = json!({"a": 1});
    store
        .create_action_run(&run("r1", &env, &c, &input), NOW)
        .await
        .expect("create");
    let pending = store
        .get_action_run(env.id, "r1")
        .await
        .expect("get")
        .expect("run");
    assert_eq!(pending.status, "pending");
    assert_eq!(pending.input, input);
    let claims = futures::future::join_all((0..8).map(|i| {
        let store = store.clone();
        async move {
            store
                .claim_action_run(&format!("w{i}"), NOW, 60_000)
                .await
                .expect("claim")
        }
    }))
    .await;
    let held: Vec<_> = claims.into_iter().flatten().collect();
    assert_eq!(held.len(), 1, "exactly one claimer");
    let claimed = &held[0];
    assert_eq!(claimed.attempts, 1);
    assert_eq!(claimed.status, "running");
    // Another owner cannot finish it.
    assert!(!store
        .finish_action_run(
            "r1",
            "intruder",
            &ActionRunOutcome::Succeeded { output: json!(1) },
            None,
            NOW
        )
        .await
        .expect("finish"));
    let mut finished = false;
    for i in 0..8 {
        finished |= store
            .finish_action_run(
                "r1",
                &format!("w{i}"),
                &ActionRunOutcome::Succeeded {
                    output: json!({"ok": true}),
                },
                Some(&json!({"type": "async_action", "payload": {"id": "r1"}})),
                NOW + 1,
            )
            .await
            .expect("finish");
    }
    assert!(finished);
    let hooks = store.list_webhooks(env.id, 10).await.expect("webhooks");
    assert_eq!(
        hooks.len(),
        1,
        "the completion webhook is queued once, with the result"
    );
    assert_eq!(hooks[0].payload["payload"]["id"], "r1");
    let done = store
        .get_action_run(env.id, "r1")
        .await
        .expect("get")
        .expect("run");
    assert_eq!(done.status, "success");
    assert_eq!(done.output, Some(json!({"ok": true})));
    assert!(store
        .claim_action_run("w", NOW + 2, 60_000)
        .await
        .expect("claim")
        .is_none());
}

async fn an_expired_lease_is_claimed_again_and_a_retry_waits(store: Arc<dyn Store>) {
    let (env, c) = connection(&store, "dev").await;
    let input = json!({});
    store
        .create_action_run(&run("r2", &env, &c, &input), NOW)
        .await
        .expect("create");
    let first = store
        .claim_action_run("a", NOW, 1_000)
        .await
        .expect("claim")
        .expect("run");
    assert_eq!(first.attempts, 1);
    assert!(store
        .claim_action_run("b", NOW + 500, 1_000)
        .await
        .expect("claim")
        .is_none());
    let again = store
        .claim_action_run("b", NOW + 1_000, 1_000)
        .await
        .expect("claim")
        .expect("run");
    assert_eq!(again.attempts, 2);
    assert!(!store
        .finish_action_run(
            "r2",
            "a",
            &ActionRunOutcome::Retry {
                next_attempt_at: NOW
            },
            None,
            NOW
        )
        .await
        .expect("stale owner"));
    assert!(store
        .finish_action_run(
            "r2",
            "b",
            &ActionRunOutcome::Retry {
                next_attempt_at: NOW + 5_000
            },
            Some(&json!({"type": "async_action"})),
            NOW + 1_000
        )
        .await
        .expect("retry"));
    assert!(
        store
            .list_webhooks(env.id, 10)
            .await
            .expect("hooks")
            .is_empty(),
        "no completion webhook for a retry"
    );
    assert!(store
        .claim_action_run("c", NOW + 4_999, 1_000)
        .await
        .expect("claim")
        .is_none());
    let third = store
        .claim_action_run("c", NOW + 5_000, 1_000)
        .await
        .expect("claim")
        .expect("run");
    assert_eq!(third.attempts, 3);
    assert!(store
        .finish_action_run(
            "r2",
            "c",
            &ActionRunOutcome::Failed {
                status: 424,
                error: json!({"error": {"code": "x"}})
            },
            None,
            NOW + 5_001,
        )
        .await
        .expect("fail"));
    let failed = store
        .get_action_run(env.id, "r2")
        .await
        .expect("get")
        .expect("run");
    assert_eq!(failed.status, "error");
    assert_eq!(failed.error_status, Some(424));
    assert_eq!(failed.output, Some(json!({"error": {"code": "x"}})));
}

async fn runs_are_scoped_by_environment_and_go_with_their_connection(store: Arc<dyn Store>) {
    let (dev, c) = connection(&store, "dev").await;
    let (prod, _) = connection(&store, "prod").await;
    let input = json!({});
    store
        .create_action_run(&run("r3", &dev, &c, &input), NOW)
        .await
        .expect("create");
    assert!(store
        .get_action_run(prod.id, "r3")
        .await
        .expect("get")
        .is_none());
    assert!(store
        .get_action_run(dev.id, "r3")
        .await
        .expect("get")
        .is_some());
    assert!(store
        .delete_connection(dev.id, "sf", "c1")
        .await
        .expect("delete"));
    assert!(store
        .get_action_run(dev.id, "r3")
        .await
        .expect("get")
        .is_none());
}

macro_rules! both {
    ($($test:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let (store, _dir) = super::sqlite().await;
                super::$test(store.clone()).await;
                store.close().await;
            })*
        }
        mod on_postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let (store, _pg) = super::postgres().await;
                super::$test(store.clone()).await;
                store.close().await;
            })*
        }
    };
}

both!(
    a_run_is_claimed_once_finished_and_read_back,
    an_expired_lease_is_claimed_again_and_a_retry_waits,
    runs_are_scoped_by_environment_and_go_with_their_connection,
);
