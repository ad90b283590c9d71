//! Conformance of the operation log and the org usage record on both backends (SQLite temp file,
//! a fresh PostgreSQL database).

use std::sync::Arc;

use ferry_store::testing::TestPostgres;
use ferry_store::{
    connect, EnvironmentId, NewOperation, OperationKind, OperationQuery, OrgUsageRow, Store,
};

async fn sqlite() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = connect(&dir.path().join("ops.db").to_string_lossy())
        .await
        .expect("open sqlite");
    store.migrate().await.expect("migrate");
    (store, dir)
}

async fn postgres() -> (Arc<dyn Store>, TestPostgres) {
    let pg = TestPostgres::create().await.expect("postgres database");
    let store = connect(&pg.url).await.expect("open postgres");
    store.migrate().await.expect("migrate");
    (store, pg)
}

macro_rules! on_both {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    let (store, _dir) = super::sqlite().await;
                    super::$test(store.clone()).await;
                    store.close().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    let (store, _pg) = super::postgres().await;
                    super::$test(store.clone()).await;
                    store.close().await;
                }
            )*
        }
    };
}

on_both!(
    operations_are_listed_newest_first_by_keyset_and_filtered,
    a_batch_larger_than_one_statement_is_written_whole,
    org_usage_keeps_the_newest_observation,
);

async fn env(store: &Arc<dyn Store>, name: &str) -> EnvironmentId {
    store
        .ensure_environment(name, &format!("secret-{name}"), "signing", 1)
        .await
        .expect("environment")
        .id
}

fn entry(env: EnvironmentId, connection: &str, n: i64) -> NewOperation {
    NewOperation {
        environment_id: env,
        kind: if n % 2 == 0 {
            OperationKind::Proxy
        } else {
            OperationKind::Sync
        },
        connection_id: Some(connection.to_string()),
        integration_key: Some("salesforce".into()),
        org_id: Some("00D000000000001AAA".into()),
        method: "GET".into(),
        path: format!("/services/data/v59.0/sobjects/Account/{n}"),
        status: Some(200),
        duration_ms: n,
        retries: n % 3,
        bytes_in: 0,
        bytes_out: 10 * n,
        error_code: (n == 3).then(|| "upstream_timeout".to_string()),
        started_at: 1000 + n,
    }
}

async fn operations_are_listed_newest_first_by_keyset_and_filtered(store: Arc<dyn Store>) {
    let dev = env(&store, "dev").await;
    let prod = env(&store, "prod").await;
    let mut batch: Vec<_> = (0..10).map(|n| entry(dev, "a", n)).collect();
    batch.extend((10..15).map(|n| entry(dev, "b", n)));
    batch.push(entry(prod, "a", 99));
    assert_eq!(store.insert_operations(&batch).await.expect("insert"), 16);

    let first = store
        .list_operations(
            dev,
            &OperationQuery {
                connection_id: Some("a".into()),
                limit: 4,
                ..Default::default()
            },
        )
        .await
        .expect("list");
    let durations: Vec<i64> = first.iter().map(|o| o.entry.duration_ms).collect();
    assert_eq!(durations, vec![9, 8, 7, 6]);
    assert_eq!(first[0].entry, entry(dev, "a", 9));

    let next = store
        .list_operations(
            dev,
            &OperationQuery {
                connection_id: Some("a".into()),
                before: Some(first[3].id),
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .expect("next page");
    let durations: Vec<i64> = next.iter().map(|o| o.entry.duration_ms).collect();
    assert_eq!(durations, vec![5, 4, 3, 2, 1, 0]);
    assert_eq!(
        next[2].entry.error_code.as_deref(),
        Some("upstream_timeout")
    );

    let syncs = store
        .list_operations(
            dev,
            &OperationQuery {
                kind: Some(OperationKind::Sync),
                integration_key: Some("salesforce".into()),
                ..Default::default()
            },
        )
        .await
        .expect("by kind");
    assert_eq!(syncs.len(), 7);
    assert!(syncs.iter().all(|o| o.entry.kind == OperationKind::Sync));

    let other_env = store
        .list_operations(prod, &OperationQuery::default())
        .await
        .expect("prod");
    assert_eq!(other_env.len(), 1);

    assert_eq!(store.prune_operations(1005).await.expect("prune"), 5);
    let left = store
        .list_operations(dev, &OperationQuery::default())
        .await
        .expect("after prune");
    assert_eq!(left.len(), 10);
}

async fn a_batch_larger_than_one_statement_is_written_whole(store: Arc<dyn Store>) {
    let dev = env(&store, "dev").await;
    let batch: Vec<_> = (0..1234).map(|n| entry(dev, "bulk", n)).collect();
    assert_eq!(store.insert_operations(&batch).await.expect("insert"), 1234);
    let all = store
        .list_operations(
            dev,
            &OperationQuery {
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .expect("list");
    assert_eq!(all.len(), 1000);
    assert_eq!(all[0].entry.duration_ms, 1233);
}

async fn org_usage_keeps_the_newest_observation(store: Arc<dyn Store>) {
    assert_eq!(store.get_org_usage("00D1").await.expect("get"), None);
    let usage = |used: i64, spent: bool, at: i64| OrgUsageRow {
        org_id: "00D1".into(),
        used: Some(used),
        max: Some(100),
        budget_spent: spent,
        updated_at: at,
    };
    store
        .put_org_usage(&usage(10, false, 5))
        .await
        .expect("put");
    store
        .put_org_usage(&usage(100, true, 9))
        .await
        .expect("put");
    // An older observation arriving late is ignored.
    store
        .put_org_usage(&usage(20, false, 7))
        .await
        .expect("put");
    assert_eq!(
        store.get_org_usage("00D1").await.expect("get"),
        Some(usage(100, true, 9))
    );
    // A record without a usage figure keeps the last known one.
    store
        .put_org_usage(&OrgUsageRow {
            used: None,
            max: None,
            ..usage(0, false, 11)
        })
        .await
        .expect("put");
    assert_eq!(
        store.get_org_usage("00D1").await.expect("get"),
        Some(usage(100, false, 11))
    );
}
