//! Test support for code that runs on both backends: a PostgreSQL database created for one test and dropped after it.

/// The server tests run against when `FERRY_TEST_POSTGRES_URL` is not set (this project's machines).
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh database on the test Postgres server; dropped (with `FORCE`) when this is dropped.
#[derive(Debug)]
pub struct TestPostgres {
    /// URL of the new database.
    pub url: String,
    admin_url: String,
    name: String,
}

impl TestPostgres {
    /// Creates `ferry_test_<random>` on `FERRY_TEST_POSTGRES_URL` (or the default server).
    pub async fn create() -> Result<TestPostgres, sqlx::Error> {
        use sqlx::{Connection, Executor};
        let admin_url = std::env::var("FERRY_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
        let name = format!("ferry_test_{:016x}", rand::random::<u64>());
        let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await?;
        let mut url =
            url::Url::parse(&admin_url).map_err(|e| sqlx::Error::Configuration(Box::new(e)))?;
        url.set_path(&name);
        Ok(TestPostgres {
            url: url.to_string(),
            admin_url,
            name,
        })
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop may run inside a runtime: do the cleanup on its own thread and runtime.
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                use sqlx::{Connection, Executor};
                if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = admin.execute(sql.as_str()).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}
