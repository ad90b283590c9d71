//! One run of one (connection, sync) under the store lease: describe, then pages of SOQL ordered by `(SystemModstamp, Id)` (REST, or Bulk API 2.0 when `COUNT()` is large) each committed with its checkpoint, deletes from `getDeleted`, periodic id reconciliation with a refusal guard, and the Nango sync webhooks queued with the run's end.

use crate::state::AppState;
use crate::sync::definitions::{CsvPlan, SyncDefinition};
use crate::sync::SyncSettings;
use crate::upstream::ConnectionTransport;
use ferry_salesforce::bulk::{self, ValueKind};
use ferry_salesforce::data::{self, ObjectDescribe};
use ferry_salesforce::query::{self, QueryPager};
use ferry_salesforce::transport::ApiError;
use ferry_store::{
    Connection, PageCommit, PageOutcome, RecordWrite, StoreError, SyncRow, SyncRunId, SyncTrigger,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;

/// Salesforce keeps deleted-record ids this long (`getDeleted` answers no further back).
pub const DELETED_WINDOW_MS: i64 = 15 * 86_400_000;
/// Ids per `commit_page` when committing deletes.
const DELETE_CHUNK: usize = 2000;
/// Ids per `WHERE Id IN (…)` verification query (keeps the URL well under 16 KB).
const VERIFY_CHUNK: usize = 300;
/// Local ids read per `live_record_ids` page during reconciliation.
const LOCAL_ID_PAGE: u32 = 5000;

/// The sync's position, stored as the sync's checkpoint (a flat object, as Nango's are).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// `SystemModstamp` (epoch ms) of the last committed record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modstamp_ms: Option<i64>,
    /// Id of the last committed record (the keyset tie-breaker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_id: Option<String>,
    /// Whether the initial load finished.
    #[serde(default)]
    pub initial_done: bool,
    /// Deletions are known up to this instant (epoch ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletes_checked_until_ms: Option<i64>,
    /// Runs since the last id reconciliation.
    #[serde(default)]
    pub runs_since_reconcile: u32,
    /// When ids were last reconciled (epoch ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciled_at_ms: Option<i64>,
}

impl Checkpoint {
    /// Reads a stored checkpoint; anything unreadable starts over (a full, hash-deduplicated load).
    pub fn from_value(value: Option<&Value>) -> Checkpoint {
        value
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    }

    /// The JSON stored with a page.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Moves the keyset position forward (never back).
    fn advance(&mut self, modstamp_ms: i64, id: &str) {
        let newer = match (self.modstamp_ms, self.last_id.as_deref()) {
            (Some(ts), Some(last)) => (modstamp_ms, id.as_bytes()) > (ts, last.as_bytes()),
            _ => true,
        };
        if newer {
            self.modstamp_ms = Some(modstamp_ms);
            self.last_id = Some(id.to_string());
        }
    }
}

/// How the records of a run were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LoadMode {
    /// REST `query` pages.
    Rest,
    /// A Bulk API 2.0 query job.
    Bulk,
}

/// Progress reported after each committed page.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Records read so far in this run.
    pub records: u64,
    /// Pages committed so far.
    pub pages: u64,
    /// The expected total, when `COUNT()` was asked.
    pub expected: Option<u64>,
}

/// A callback told about each committed page.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Hooks and limits of one run (the scheduler uses the defaults).
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Stop without finishing the run after this many committed pages, as if the process died
    /// (the lease stays until it expires). For tests.
    pub stop_after_pages: Option<u64>,
    /// Reconcile ids in this run whatever the schedule says.
    pub force_reconcile: bool,
    /// Called after each committed page.
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("stop_after_pages", &self.stop_after_pages)
            .field("force_reconcile", &self.force_reconcile)
            .finish_non_exhaustive()
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    /// The run, once started.
    pub run: Option<i64>,
    /// Records added.
    pub added: u64,
    /// Records updated.
    pub updated: u64,
    /// Records deleted.
    pub deleted: u64,
    /// Records read from Salesforce.
    pub records_read: u64,
    /// Pages committed.
    pub pages: u64,
    /// REST or Bulk for the main read (None when nothing was read).
    pub mode: Option<LoadMode>,
    /// Whether this run was (part of) an initial load or a full refresh.
    pub initial: bool,
    /// Whether ids were reconciled.
    pub reconciled: bool,
    /// Fields dropped because the org lacks them, and similar notes.
    pub warnings: Vec<String>,
    /// Why the run failed, if it did.
    pub error: Option<String>,
    /// The run stopped early on purpose (test hook) and was not finished.
    pub abandoned: bool,
    /// The run was put off because the org's API budget is nearly spent.
    pub budget_paused: bool,
}

impl RunReport {
    fn add(&mut self, o: &PageOutcome) {
        self.added += o.added;
        self.updated += o.updated;
        self.deleted += o.deleted;
    }

    fn changed(&self) -> bool {
        self.added + self.updated + self.deleted > 0
    }
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Salesforce refused or could not be reached.
    #[error("{0}")]
    Api(#[from] ApiError),
    /// The database failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// Another owner holds the sync now (our lease expired).
    #[error("the sync's lease was lost to another worker")]
    LeaseLost,
    /// Reconciliation refused to delete (empty scan, or too many deletions).
    #[error("{0}")]
    Refused(String),
    /// The org's API usage is above the configured share.
    #[error("{0}")]
    Budget(String),
    /// Anything else that stops the run (unknown definition, bad data).
    #[error("{0}")]
    Other(String),
}

impl SyncError {
    fn from_store(e: StoreError) -> SyncError {
        match e {
            StoreError::LeaseLost => SyncError::LeaseLost,
            other => SyncError::Store(other),
        }
    }

    /// The `error.type` of the failure webhook.
    fn kind(&self) -> &'static str {
        match self {
            SyncError::Refused(_) => "reconciliation_refused",
            SyncError::Budget(_) => "api_budget",
            SyncError::Api(_) => "salesforce_error",
            _ => "sync_error",
        }
    }
}

/// Everything a run reads, resolved once.
struct Ctx<'a> {
    state: &'a Arc<AppState>,
    settings: &'a SyncSettings,
    sync: &'a SyncRow,
    def: &'a SyncDefinition,
    connection: Connection,
    owner: &'a str,
    run_id: SyncRunId,
    transport: ConnectionTransport,
    version: String,
    fields: Vec<String>,
    /// The object's describe (Bulk pages type their columns from it).
    describe: ObjectDescribe,
    options: &'a RunOptions,
}

/// What a run changes as it goes: its report and the checkpoint it commits.
struct Tally {
    report: RunReport,
    checkpoint: Checkpoint,
}

pub async fn run_sync(
    state: &Arc<AppState>,
    settings: &SyncSettings,
    sync: &SyncRow,
    owner: &str,
    options: &RunOptions,
) -> Result<RunReport, SyncError> {
    let now = state.clock.now_ms();
    let trigger = sync.pending.unwrap_or(SyncTrigger::Incremental);
    let Some(def) = state.syncs.get(&sync.name) else {
        // A sync whose definition left the catalog (syncs file changed): fail it visibly.
        let run = state
            .store
            .start_sync_run(sync.id, owner, trigger, now)
            .await
            .map_err(SyncError::from_store)?;
        let message = format!(
            "no sync definition named {} (check the syncs file)",
            sync.name
        );
        state
            .store
            .finish_sync_run(
                sync.id,
                run,
                owner,
                false,
                Some(&message),
                Some(now + settings.retry_after_error_secs * 1000),
                &[],
                now,
            )
            .await
            .map_err(SyncError::from_store)?;
        return Ok(RunReport {
            run: Some(run.0),
            error: Some(message),
            ..RunReport::default()
        });
    };
    let connection = state
        .store
        .connection_by_row_id(sync.environment_id, sync.connection_row_id)
        .await?
        .ok_or_else(|| SyncError::Other("the connection no longer exists".into()))?;
    let run_id = state
        .store
        .start_sync_run(sync.id, owner, trigger, now)
        .await
        .map_err(SyncError::from_store)?;
    let started_at = now;
    let previous = match trigger {
        SyncTrigger::Incremental => Checkpoint::from_value(sync.checkpoint.as_ref()),
        // The store reset the checkpoint; bookkeeping starts over too.
        _ => Checkpoint::default(),
    };
    let from_checkpoint = sync.checkpoint.clone();
    let outcome = execute(
        state,
        settings,
        sync,
        def,
        connection.clone(),
        owner,
        run_id,
        trigger,
        previous,
        options,
    )
    .await;
    let (mut report, error) = match outcome {
        Ok(report) => (report, None),
        Err((report, e)) => (report, Some(e)),
    };
    report.run = Some(run_id.0);
    if report.abandoned {
        return Ok(report);
    }
    if matches!(error, Some(SyncError::LeaseLost)) {
        // Another worker owns the sync; it finishes the run's story.
        return Err(SyncError::LeaseLost);
    }
    let finished_at = state.clock.now_ms();
    let sync_type = if report.initial || trigger != SyncTrigger::Incremental {
        "INITIAL"
    } else {
        "INCREMENTAL"
    };
    let base = |extra: Value| {
        let mut payload = json!({
            "from": "nango",
            "type": "sync",
            "connectionId": connection.connection_id,
            "providerConfigKey": connection.integration_key,
            "syncName": sync.name,
            "syncVariant": "base",
            "model": sync.model,
            "syncType": sync_type,
        });
        if let (Some(map), Value::Object(extra)) = (payload.as_object_mut(), extra) {
            map.extend(extra);
        }
        payload
    };
    let mut webhooks = Vec::new();
    if report.changed() {
        let to_checkpoint = state
            .store
            .get_sync(sync.environment_id, sync.connection_row_id, &sync.name)
            .await
            .ok()
            .flatten()
            .and_then(|s| s.checkpoint);
        webhooks.push(base(json!({
            "success": true,
            "modifiedAfter": crate::api::iso_z(started_at),
            "queryTimeStamp": crate::api::iso_z(started_at),
            "responseResults": {
                "added": report.added,
                "updated": report.updated,
                "deleted": report.deleted,
            },
            "checkpoints": {"from": from_checkpoint, "to": to_checkpoint},
        })));
    }
    let (success, message) = match &error {
        None => (
            true,
            (!report.warnings.is_empty())
                .then(|| format!("warnings: {}", report.warnings.join("; "))),
        ),
        Some(e) => {
            let mut description = e.to_string();
            if !report.warnings.is_empty() {
                description.push_str(&format!(" (warnings: {})", report.warnings.join("; ")));
            }
            if !matches!(e, SyncError::Budget(_)) {
                webhooks.push(base(json!({
                    "success": false,
                    "error": {"type": e.kind(), "description": description},
                    "startedAt": crate::api::iso_z(started_at),
                    "failedAt": crate::api::iso_z(finished_at),
                })));
            }
            (false, Some(description))
        }
    };
    report.error = error.as_ref().map(|_| message.clone().unwrap_or_default());
    // A failure is retried soon once; a sync that keeps failing falls back to its frequency,
    // so a broken connection does not send a failure webhook every few minutes.
    let frequency_ms = sync.frequency_secs.max(1) * 1000;
    let failed_before = sync.last_run.as_ref().is_some_and(|r| r.status == "ERROR");
    let next_run_at = if success || failed_before {
        finished_at + frequency_ms
    } else {
        finished_at + (settings.retry_after_error_secs * 1000).min(frequency_ms)
    };
    state
        .store
        .finish_sync_run(
            sync.id,
            run_id,
            owner,
            success,
            message.as_deref(),
            Some(next_run_at),
            &webhooks,
            finished_at,
        )
        .await
        .map_err(SyncError::from_store)?;
    if !webhooks.is_empty() {
        state.webhook_wakeup.notify_one();
    }
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn execute<'a>(
    state: &'a Arc<AppState>,
    settings: &'a SyncSettings,
    sync: &'a SyncRow,
    def: &'a SyncDefinition,
    connection: Connection,
    owner: &'a str,
    run_id: SyncRunId,
    trigger: SyncTrigger,
    checkpoint: Checkpoint,
    options: &'a RunOptions,
) -> Result<RunReport, (RunReport, SyncError)> {
    let mut tally = Tally {
        report: RunReport::default(),
        checkpoint,
    };
    let ctx = match prepare(
        state, settings, sync, def, connection, owner, run_id, options,
    )
    .await
    {
        Ok((ctx, warnings)) => {
            tally.report.warnings = warnings;
            ctx
        }
        Err(e) => {
            tally.report.budget_paused = matches!(e, SyncError::Budget(_));
            return Err((tally.report, e));
        }
    };
    match steps(&ctx, &mut tally, trigger).await {
        Ok(()) => Ok(tally.report),
        Err(e) => Err((tally.report, e)),
    }
}

/// Budget check, transport, API version, describe: the run's context and its field warnings.
#[allow(clippy::too_many_arguments)]
async fn prepare<'a>(
    state: &'a Arc<AppState>,
    settings: &'a SyncSettings,
    sync: &'a SyncRow,
    def: &'a SyncDefinition,
    connection: Connection,
    owner: &'a str,
    run_id: SyncRunId,
    options: &'a RunOptions,
) -> Result<(Ctx<'a>, Vec<String>), SyncError> {
    if let Some(org) = crate::upstream::org_of(&connection) {
        // Another process may have seen the org's usage more recently than this one.
        if let Err(e) = state.org_limits.load(&*state.store, &org).await {
            tracing::warn!(error = %e, "cannot read the org's stored API usage");
        }
    }
    if let Some(message) = budget_exceeded(state, settings, &connection) {
        return Err(SyncError::Budget(message));
    }
    let integration = state
        .store
        .get_integration(sync.environment_id, &connection.integration_key)
        .await?
        .ok_or_else(|| SyncError::Other("the connection's integration no longer exists".into()))?;
    let transport = ConnectionTransport::open(state.clone(), integration, connection.clone())
        .await?
        .log_as(ferry_store::OperationKind::Sync);
    let version = ferry_salesforce::transport::latest_version(&transport).await?;
    let describe = data::describe(&transport, &version, &def.object).await?;
    let (fields, warnings) = usable_fields(def, &describe);
    Ok((
        Ctx {
            state,
            settings,
            sync,
            def,
            connection,
            owner,
            run_id,
            transport,
            version,
            fields,
            describe,
            options,
        },
        warnings,
    ))
}

/// The SOQL fields the org has; the others are dropped with a warning each.
fn usable_fields(def: &SyncDefinition, describe: &ObjectDescribe) -> (Vec<String>, Vec<String>) {
    let mut fields = Vec::new();
    let mut warnings = Vec::new();
    for f in def.soql_fields() {
        if describe.has_path(&f) {
            fields.push(f);
        } else {
            warnings.push(format!(
                "field {f} does not exist on {} in this org; it was left out",
                def.object
            ));
        }
    }
    (fields, warnings)
}

/// The reason to put a run off when the org's API usage is above the configured share.
fn budget_exceeded(
    state: &AppState,
    settings: &SyncSettings,
    connection: &Connection,
) -> Option<String> {
    let org = crate::upstream::org_of(connection)?;
    let usage = state.org_limits.get(&org);
    if usage.budget_spent {
        return Some("paused: the org's daily API allowance is spent".into());
    }
    let u = usage.api_usage?;
    if u.max == 0 {
        return None;
    }
    let share = u.used as f64 / u.max as f64;
    (share > settings.budget_share).then(|| {
        format!(
            "paused: the org has used {} of {} API calls ({:.0}%), above the {:.0}% syncs may use",
            u.used,
            u.max,
            share * 100.0,
            settings.budget_share * 100.0
        )
    })
}

/// The `WHERE` clause of the main read.
fn where_clause(def: &SyncDefinition, position: Option<String>) -> String {
    let mut conds = Vec::new();
    if let Some(f) = &def.filter {
        conds.push(format!("({f})"));
    }
    if let Some(p) = position {
        conds.push(p);
    }
    if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    }
}

fn is_safe_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 18 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

async fn steps(ctx: &Ctx<'_>, tally: &mut Tally, trigger: SyncTrigger) -> Result<(), SyncError> {
    let now = ctx.state.clock.now_ms();
    let initial = !tally.checkpoint.initial_done;
    tally.report.initial = initial;
    if initial && tally.checkpoint.deletes_checked_until_ms.is_none() {
        // Deletions before the first read cannot concern records Ferry never had.
        tally.checkpoint.deletes_checked_until_ms = Some(now);
    }
    let lost_delete_window = tally
        .checkpoint
        .deletes_checked_until_ms
        .is_some_and(|t| t < now - DELETED_WINDOW_MS + 3_600_000);
    // Records first, then deletions: an undeleted record must not be deleted again.
    read_records(ctx, tally, initial).await?;
    if tally.report.abandoned {
        return Ok(());
    }
    if !initial && !lost_delete_window {
        read_deletions(ctx, tally).await?;
    }
    let due = tally.checkpoint.runs_since_reconcile + 1 >= ctx.settings.reconcile_every_runs
        || lost_delete_window
        || trigger != SyncTrigger::Incremental
        || ctx.options.force_reconcile;
    // A first load has nothing to reconcile, unless a full refresh reloads over old records.
    let reconcile_now = due && !(initial && trigger == SyncTrigger::Incremental);
    if reconcile_now {
        reconcile(ctx, tally).await?;
        tally.checkpoint.runs_since_reconcile = 0;
        tally.checkpoint.reconciled_at_ms = Some(ctx.state.clock.now_ms());
        if lost_delete_window {
            tally.checkpoint.deletes_checked_until_ms = Some(now);
        }
        tally.report.reconciled = true;
    } else {
        tally.checkpoint.runs_since_reconcile += 1;
    }
    tally.checkpoint.initial_done = true;
    let checkpoint = tally.checkpoint.to_value();
    let outcome = commit(ctx, &[], &[], &checkpoint).await?;
    tally.report.add(&outcome);
    Ok(())
}

/// Commits one page with `checkpoint` in one transaction, then renews the lease.
async fn commit(
    ctx: &Ctx<'_>,
    upserts: &[RecordWrite],
    deletes: &[String],
    checkpoint: &Value,
) -> Result<PageOutcome, SyncError> {
    let now = ctx.state.clock.now_ms();
    let outcome = ctx
        .state
        .store
        .commit_page(&PageCommit {
            sync: ctx.sync.id,
            run: ctx.run_id,
            lease_owner: ctx.owner,
            upserts,
            deletes,
            checkpoint: Some(checkpoint),
            now,
        })
        .await
        .map_err(SyncError::from_store)?;
    if !ctx
        .state
        .store
        .renew_sync_lease(ctx.sync.id, ctx.owner, now, ctx.settings.lease_ms)
        .await
        .map_err(SyncError::from_store)?
    {
        return Err(SyncError::LeaseLost);
    }
    Ok(outcome)
}

/// Maps Salesforce records to writes and moves the keyset position.
fn writes_of(
    def: &SyncDefinition,
    checkpoint: &mut Checkpoint,
    records: &[Value],
) -> Result<Vec<RecordWrite>, SyncError> {
    records
        .iter()
        .map(|record| {
            checked_write(
                checkpoint,
                record.get("Id").and_then(Value::as_str),
                record.get("SystemModstamp").and_then(Value::as_str),
                || def.map_record(record),
            )
        })
        .collect()
}

/// [`writes_of`] for Bulk CSV rows mapped straight to the model by `plan`.
fn csv_writes_of(
    plan: &CsvPlan,
    checkpoint: &mut Checkpoint,
    rows: &[csv::StringRecord],
) -> Result<Vec<RecordWrite>, SyncError> {
    rows.iter()
        .map(|row| {
            let stamp = plan.stamp(row);
            checked_write(
                checkpoint,
                Some(plan.id(row)).filter(|id| !id.is_empty()),
                stamp.as_str(),
                || plan.map(row),
            )
        })
        .collect()
}

/// One read record as a write for the store: its `Id` and `SystemModstamp` checked, the keyset
/// position moved past it, the model JSON hashed and serialized here (on the mapping thread,
/// so the page's transaction does not do it).
fn checked_write(
    checkpoint: &mut Checkpoint,
    id: Option<&str>,
    stamp: Option<&str>,
    payload: impl FnOnce() -> Value,
) -> Result<RecordWrite, SyncError> {
    let Some(id) = id else {
        return Err(SyncError::Other("a record came back without its Id".into()));
    };
    let Some(stamp) = stamp.and_then(data::parse_datetime) else {
        return Err(SyncError::Other(format!(
            "record {id} came back without a readable SystemModstamp"
        )));
    };
    checkpoint.advance(stamp, id);
    let payload = payload();
    Ok(RecordWrite {
        external_id: id.to_string(),
        hash: SyncDefinition::hash(&payload),
        payload_text: Some(payload.to_string()),
        payload,
    })
}

/// One page as read, before it is mapped.
enum PageInput {
    /// REST records.
    Json(Vec<Value>),
    /// A Bulk CSV page and the value kind of each column.
    Csv(bulk::CsvPage, Vec<ValueKind>),
}

/// Maps a page on a blocking thread (CSV parsing is done; this is JSON building and hashing),
/// so it runs in parallel with the previous page's commit. Returns the writes and the number
/// of records read.
async fn map_page(
    def: &SyncDefinition,
    checkpoint: &mut Checkpoint,
    input: PageInput,
) -> Result<(Vec<RecordWrite>, u64), SyncError> {
    let def = def.clone();
    let mut position = checkpoint.clone();
    let (result, position) = tokio::task::spawn_blocking(move || {
        let records = match input {
            PageInput::Json(records) => records,
            PageInput::Csv(page, kinds) => match def.csv_plan(&page.headers, &kinds) {
                Some(plan) => {
                    let n = page.rows.len() as u64;
                    let writes = csv_writes_of(&plan, &mut position, &page.rows).map(|w| (w, n));
                    return (writes, position);
                }
                None => page
                    .rows
                    .iter()
                    .map(|row| bulk::row_to_record(&page.headers, &kinds, row))
                    .collect(),
            },
        };
        let n = records.len() as u64;
        let writes = writes_of(&def, &mut position, &records).map(|w| (w, n));
        (writes, position)
    })
    .await
    .map_err(|e| SyncError::Other(format!("mapping a page failed: {e}")))?;
    *checkpoint = position;
    result
}

/// After a committed page: progress, the test hook, the budget. `true` = stop here.
fn after_page(ctx: &Ctx<'_>, tally: &mut Tally, expected: Option<u64>) -> Result<bool, SyncError> {
    tally.report.pages += 1;
    if let Some(p) = &ctx.options.progress {
        p(&Progress {
            records: tally.report.records_read,
            pages: tally.report.pages,
            expected,
        });
    }
    if ctx
        .options
        .stop_after_pages
        .is_some_and(|n| tally.report.pages >= n)
    {
        tally.report.abandoned = true;
        return Ok(true);
    }
    if let Some(message) = budget_exceeded(ctx.state, ctx.settings, &ctx.connection) {
        tally.report.budget_paused = true;
        return Err(SyncError::Budget(message));
    }
    Ok(false)
}

/// The main read: every row changed since the checkpoint (minus the overlap window once the
/// initial load is done; a strict keyset while an interrupted initial load resumes), in
/// `(SystemModstamp, Id)` order, through REST or Bulk depending on `COUNT()`.
async fn read_records(ctx: &Ctx<'_>, tally: &mut Tally, initial: bool) -> Result<(), SyncError> {
    let position = match (
        tally.checkpoint.modstamp_ms,
        tally.checkpoint.last_id.as_deref(),
    ) {
        (Some(ts), Some(id)) if initial && is_safe_id(id) => {
            let t = data::soql_datetime(ts);
            Some(format!(
                "(SystemModstamp > {t} OR (SystemModstamp = {t} AND Id > '{id}'))"
            ))
        }
        (Some(ts), _) => Some(format!(
            "SystemModstamp >= {}",
            data::soql_datetime(ts - ctx.settings.overlap_secs * 1000)
        )),
        _ => None,
    };
    let where_ = where_clause(ctx.def, position);
    let count = query::count(
        &ctx.transport,
        &ctx.version,
        &format!("SELECT COUNT() FROM {}{where_}", ctx.def.object),
    )
    .await?;
    if count == 0 {
        return Ok(());
    }
    let soql = format!(
        "SELECT {} FROM {}{where_} ORDER BY SystemModstamp, Id",
        ctx.fields.join(", "),
        ctx.def.object
    );
    if count > ctx.settings.bulk_threshold {
        tally.report.mode = Some(LoadMode::Bulk);
        read_bulk(ctx, tally, &soql, count).await
    } else {
        tally.report.mode = Some(LoadMode::Rest);
        read_rest(ctx, tally, &soql, count).await
    }
}

async fn read_rest(
    ctx: &Ctx<'_>,
    tally: &mut Tally,
    soql: &str,
    count: u64,
) -> Result<(), SyncError> {
    let mut pager = QueryPager::new(
        &ctx.transport,
        &ctx.version,
        soql,
        false,
        ctx.settings.rest_batch_size,
    );
    let mut pending = match pager.next_page().await? {
        Some(page) => {
            let (writes, n) = map_page(
                ctx.def,
                &mut tally.checkpoint,
                PageInput::Json(page.records),
            )
            .await?;
            tally.report.records_read += n;
            Some(writes)
        }
        None => None,
    };
    while let Some(writes) = pending.take() {
        let checkpoint = tally.checkpoint.to_value();
        // This page commits while the next one is fetched and mapped.
        let next_page = async {
            match pager.next_page().await? {
                Some(page) => {
                    let (writes, n) = map_page(
                        ctx.def,
                        &mut tally.checkpoint,
                        PageInput::Json(page.records),
                    )
                    .await?;
                    tally.report.records_read += n;
                    Ok::<_, SyncError>(Some(writes))
                }
                None => Ok(None),
            }
        };
        let (fetched, committed) = tokio::join!(next_page, commit(ctx, &writes, &[], &checkpoint));
        tally.report.add(&committed?);
        if after_page(ctx, tally, Some(count))? {
            return Ok(());
        }
        pending = fetched?;
    }
    Ok(())
}

/// Polls a Bulk job to completion: at once the first time (small jobs are often done), then
/// with a gentle backoff.
async fn wait_for_job(ctx: &Ctx<'_>, job: &str) -> Result<(), SyncError> {
    let lease_lost = std::sync::atomic::AtomicBool::new(false);
    let lost = &lease_lost;
    bulk::wait_for_completion(&ctx.transport, &ctx.version, job, |n| async move {
        if n > 1 {
            let ms = (250u64 << (n - 2).min(5)).min(5_000);
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            // A long job must not let the lease run out under it.
            let now = ctx.state.clock.now_ms();
            if !matches!(
                ctx.state
                    .store
                    .renew_sync_lease(ctx.sync.id, ctx.owner, now, ctx.settings.lease_ms)
                    .await,
                Ok(true)
            ) {
                lost.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
    })
    .await?;
    if lease_lost.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(SyncError::LeaseLost);
    }
    Ok(())
}

async fn read_bulk(
    ctx: &Ctx<'_>,
    tally: &mut Tally,
    soql: &str,
    count: u64,
) -> Result<(), SyncError> {
    let job = bulk::create_job(&ctx.transport, &ctx.version, soql, false).await?;
    wait_for_job(ctx, &job.id).await?;
    let mut pager = bulk::ResultPager::new(
        &ctx.transport,
        &ctx.version,
        &job.id,
        ctx.settings.bulk_page_size,
    );
    let kinds_by_field = bulk_kinds(ctx).await;
    let kinds_of = |headers: &[String]| -> Vec<ValueKind> {
        headers
            .iter()
            .map(|h| {
                kinds_by_field
                    .iter()
                    .find(|(f, _)| f.eq_ignore_ascii_case(h))
                    .map(|(_, k)| *k)
                    .unwrap_or(ValueKind::Text)
            })
            .collect()
    };
    let mut pending = match pager.next_page().await? {
        Some(page) => {
            let kinds = kinds_of(&page.headers);
            let (writes, n) =
                map_page(ctx.def, &mut tally.checkpoint, PageInput::Csv(page, kinds)).await?;
            tally.report.records_read += n;
            Some(writes)
        }
        None => None,
    };
    while let Some(writes) = pending.take() {
        let checkpoint = tally.checkpoint.to_value();
        // This page commits while the next one is fetched, parsed and mapped.
        let next_page = async {
            match pager.next_page().await? {
                Some(page) => {
                    let kinds = kinds_of(&page.headers);
                    let (writes, n) =
                        map_page(ctx.def, &mut tally.checkpoint, PageInput::Csv(page, kinds))
                            .await?;
                    tally.report.records_read += n;
                    Ok::<_, SyncError>(Some(writes))
                }
                None => Ok(None),
            }
        };
        let (fetched, committed) = tokio::join!(next_page, commit(ctx, &writes, &[], &checkpoint));
        tally.report.add(&committed?);
        if after_page(ctx, tally, Some(count))? {
            return Ok(());
        }
        pending = fetched?;
    }
    let _ = bulk::delete_job(&ctx.transport, &ctx.version, &job.id).await;
    Ok(())
}

/// The value kind of each selected path for Bulk CSV cells: the object's own fields as the
/// run's describe says, and parent paths (`Account.NumberOfEmployees`) as the parent objects'
/// describes say (one call per parent object, in Bulk runs only), so a cell becomes the JSON
/// value REST would have returned and a later REST read of the same row hashes the same. A
/// path that cannot be resolved (a parent that cannot be described) stays text.
async fn bulk_kinds(ctx: &Ctx<'_>) -> Vec<(String, ValueKind)> {
    let mut parents: std::collections::HashMap<String, Option<ObjectDescribe>> =
        std::collections::HashMap::new();
    let mut kinds = Vec::with_capacity(ctx.fields.len());
    for path in &ctx.fields {
        let segments: Vec<&str> = path.split('.').collect();
        let (field, relationships) = segments.split_last().unwrap_or((&"", &[]));
        let mut object = Some(&ctx.describe);
        for relationship in relationships {
            let Some(target) = object
                .and_then(|d| d.relationship(relationship))
                .and_then(|f| f.reference_to.first())
                .cloned()
            else {
                object = None;
                break;
            };
            if !parents.contains_key(&target) {
                let described = data::describe(&ctx.transport, &ctx.version, &target).await;
                if let Err(e) = &described {
                    tracing::warn!(object = %target, error = %e, "cannot describe a parent object; its fields stay text in Bulk pages");
                }
                parents.insert(target.clone(), described.ok());
            }
            object = parents.get(&target).and_then(Option::as_ref);
        }
        let kind = object
            .and_then(|d| d.field(field))
            .map(|f| ValueKind::of_describe_type(&f.field_type))
            .unwrap_or(ValueKind::Text);
        kinds.push((path.clone(), kind));
    }
    kinds
}

/// Deletions since the last run: `getDeleted`, or `queryAll … IsDeleted = true` where the org
/// does not offer it for the object.
async fn read_deletions(ctx: &Ctx<'_>, tally: &mut Tally) -> Result<(), SyncError> {
    let now = ctx.state.clock.now_ms();
    let since = tally
        .checkpoint
        .deletes_checked_until_ms
        .unwrap_or(now - DELETED_WINDOW_MS + 3_600_000);
    let (ids, covered) =
        match data::get_deleted(&ctx.transport, &ctx.version, &ctx.def.object, since, now).await {
            Ok(d) => {
                let covered = d
                    .latest_date_covered
                    .as_deref()
                    .and_then(data::parse_datetime)
                    .unwrap_or(since);
                (
                    d.deleted_records
                        .into_iter()
                        .map(|r| r.id)
                        .collect::<Vec<_>>(),
                    covered,
                )
            }
            Err(ApiError::Salesforce(e))
                if matches!(e.status, 400 | 404)
                    && (e.has_code("INVALID_TYPE") || e.has_code("NOT_FOUND")) =>
            {
                deleted_by_query_all(ctx, since).await?
            }
            Err(e) => return Err(e.into()),
        };
    tally.checkpoint.deletes_checked_until_ms = Some(covered.max(since));
    let checkpoint = tally.checkpoint.to_value();
    for chunk in ids.chunks(DELETE_CHUNK) {
        let outcome = commit(ctx, &[], chunk, &checkpoint).await?;
        tally.report.add(&outcome);
    }
    Ok(())
}

async fn deleted_by_query_all(ctx: &Ctx<'_>, since: i64) -> Result<(Vec<String>, i64), SyncError> {
    let now = ctx.state.clock.now_ms();
    let soql = format!(
        "SELECT Id FROM {} WHERE IsDeleted = true AND SystemModstamp >= {}",
        ctx.def.object,
        data::soql_datetime(since)
    );
    let mut pager = QueryPager::new(&ctx.transport, &ctx.version, &soql, true, 2000);
    let mut ids = Vec::new();
    while let Some(page) = pager.next_page().await? {
        ids.extend(
            page.records
                .iter()
                .filter_map(|r| r.get("Id").and_then(Value::as_str).map(str::to_string)),
        );
    }
    Ok((ids, now))
}

/// Salesforce's ids in `ORDER BY Id` order, a page in memory, from REST or a Bulk job.
enum RemoteIds<'t> {
    Rest(QueryPager<'t>, std::vec::IntoIter<String>),
    Bulk(bulk::ResultPager<'t>, std::vec::IntoIter<String>),
}

impl RemoteIds<'_> {
    async fn next(&mut self) -> Result<Option<String>, SyncError> {
        loop {
            match self {
                RemoteIds::Rest(pager, page) => {
                    if let Some(id) = page.next() {
                        return Ok(Some(id));
                    }
                    match pager.next_page().await? {
                        Some(p) => {
                            *page = p
                                .records
                                .iter()
                                .filter_map(|r| r.get("Id").and_then(Value::as_str))
                                .map(str::to_string)
                                .collect::<Vec<_>>()
                                .into_iter();
                        }
                        None => return Ok(None),
                    }
                }
                RemoteIds::Bulk(pager, page) => {
                    if let Some(id) = page.next() {
                        return Ok(Some(id));
                    }
                    match pager.next_page().await? {
                        Some(p) => {
                            let col = p
                                .headers
                                .iter()
                                .position(|h| h.eq_ignore_ascii_case("Id"))
                                .unwrap_or(0);
                            *page = p
                                .rows
                                .iter()
                                .filter_map(|r| r.get(col).map(str::to_string))
                                .collect::<Vec<_>>()
                                .into_iter();
                        }
                        None => return Ok(None),
                    }
                }
            }
        }
    }
}

/// Id reconciliation: Salesforce's ids (`ORDER BY Id`) merge-joined with the live local ids
/// (both in byte order); local ids missing upstream are confirmed once more, then deleted,
/// unless the scan looks wrong (empty for a non-empty set, out of order, or more deletions
/// than the allowed share), in which case nothing is deleted and the run fails.
async fn reconcile(ctx: &Ctx<'_>, tally: &mut Tally) -> Result<(), SyncError> {
    let (local_live, _) = ctx
        .state
        .store
        .count_records(ctx.sync.connection_row_id, &ctx.sync.model)
        .await?;
    if local_live == 0 {
        return Ok(());
    }
    let object = &ctx.def.object;
    let max_deletes = ((local_live as f64) * ctx.settings.max_delete_share).floor() as u64;
    let where_ = where_clause(ctx.def, None);
    let soql = format!("SELECT Id FROM {object}{where_} ORDER BY Id");
    let remote_count = query::count(
        &ctx.transport,
        &ctx.version,
        &format!("SELECT COUNT() FROM {object}{where_}"),
    )
    .await?;
    let refuse_empty = || {
        SyncError::Refused(format!(
            "id reconciliation of {object} refused: Salesforce returned no ids while Ferry has {local_live} records; nothing was deleted"
        ))
    };
    if remote_count == 0 {
        return Err(refuse_empty());
    }
    let mut job_id = None;
    let mut remote = if remote_count > ctx.settings.bulk_threshold {
        let job = bulk::create_job(&ctx.transport, &ctx.version, &soql, false).await?;
        wait_for_job(ctx, &job.id).await?;
        let pager = bulk::ResultPager::new(
            &ctx.transport,
            &ctx.version,
            &job.id,
            ctx.settings.bulk_page_size.max(50_000),
        );
        job_id = Some(job.id);
        RemoteIds::Bulk(pager, Vec::new().into_iter())
    } else {
        RemoteIds::Rest(
            QueryPager::new(&ctx.transport, &ctx.version, &soql, false, 2000),
            Vec::new().into_iter(),
        )
    };
    let mut candidates: Vec<String> = Vec::new();
    let mut remote_seen = 0u64;
    let mut current = remote.next().await?;
    if current.is_some() {
        remote_seen += 1;
    }
    let mut after: Option<String> = None;
    loop {
        let local = ctx
            .state
            .store
            .live_record_ids(
                ctx.sync.connection_row_id,
                &ctx.sync.model,
                after.as_deref(),
                LOCAL_ID_PAGE,
            )
            .await?;
        let Some(last) = local.last().cloned() else {
            break;
        };
        for id in local {
            while current
                .as_deref()
                .is_some_and(|r| r.as_bytes() < id.as_bytes())
            {
                let previous = current.take();
                current = remote.next().await?;
                if let (Some(p), Some(c)) = (&previous, &current) {
                    remote_seen += 1;
                    if c.as_bytes() <= p.as_bytes() {
                        return Err(SyncError::Refused(format!(
                            "id reconciliation of {object} refused: Salesforce's ids did not come back in order ({p} then {c}); nothing was deleted"
                        )));
                    }
                }
            }
            if current.as_deref() == Some(id.as_str()) {
                continue;
            }
            candidates.push(id);
            if candidates.len() as u64 > max_deletes {
                return Err(SyncError::Refused(format!(
                    "id reconciliation of {object} refused: it would delete more than {:.0}% of the {local_live} records Ferry has (Salesforce counts {remote_count}); nothing was deleted",
                    ctx.settings.max_delete_share * 100.0
                )));
            }
        }
        after = Some(last);
    }
    if remote_seen == 0 {
        return Err(refuse_empty());
    }
    drop(remote);
    if let Some(job) = job_id {
        let _ = bulk::delete_job(&ctx.transport, &ctx.version, &job).await;
    }
    if candidates.is_empty() {
        return Ok(());
    }
    let confirmed = confirm_missing(ctx, candidates).await?;
    let checkpoint = tally.checkpoint.to_value();
    for chunk in confirmed.chunks(DELETE_CHUNK) {
        let outcome = commit(ctx, &[], chunk, &checkpoint).await?;
        tally.report.add(&outcome);
    }
    Ok(())
}

/// Asks Salesforce about each candidate again (`WHERE Id IN (…)`); only ids it does not
/// return are deleted (guards against a scan that raced with creations or sorted differently).
async fn confirm_missing(ctx: &Ctx<'_>, candidates: Vec<String>) -> Result<Vec<String>, SyncError> {
    let mut missing = Vec::new();
    for chunk in candidates.chunks(VERIFY_CHUNK) {
        let list: Vec<String> = chunk
            .iter()
            .filter(|id| is_safe_id(id))
            .map(|id| format!("'{id}'"))
            .collect();
        if list.is_empty() {
            continue;
        }
        let mut conds = vec![format!("Id IN ({})", list.join(","))];
        if let Some(f) = &ctx.def.filter {
            conds.push(format!("({f})"));
        }
        let soql = format!(
            "SELECT Id FROM {} WHERE {}",
            ctx.def.object,
            conds.join(" AND ")
        );
        let mut found = std::collections::HashSet::new();
        let mut pager = QueryPager::new(&ctx.transport, &ctx.version, &soql, false, 2000);
        while let Some(page) = pager.next_page().await? {
            for r in page.records {
                if let Some(id) = r.get("Id").and_then(Value::as_str) {
                    found.insert(id.to_string());
                }
            }
        }
        missing.extend(chunk.iter().filter(|id| !found.contains(*id)).cloned());
    }
    Ok(missing)
}
