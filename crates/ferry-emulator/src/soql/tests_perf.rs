//! A timing check (ignored by default; run with `--release --ignored`): filtering and sorting a million records must stay well under a second.

use super::*;
use crate::ids;
use crate::org::Org;
use crate::value::Value;
use std::time::Instant;

fn big_org(n: usize, same_stamp: bool) -> Org {
    let mut org = Org::new(ids::make_id("00D", "5g", 1), "Big", false, "5g");
    let user = ids::make_id("005", "5g", 1);
    let (fields, name) = {
        let table = org.table("Account").unwrap_or_else(|| panic!("no Account"));
        (
            table.schema.fields.len(),
            table.schema.field_index("Name").unwrap_or_default(),
        )
    };
    if let Some(t) = org.table_mut("Account") {
        t.reserve(n);
    }
    let base = 1_704_067_200i64;
    for i in 0..n {
        let mut values = vec![Value::Null; fields];
        values[name] = Value::str(format!("Account {}", i % 9973));
        // Modstamps go up and down so the sort has real work; many ties.
        let stamp = if same_stamp {
            base
        } else {
            base + ((i * 7919) % 200_000) as i64
        };
        let _ = org.insert_raw("Account", values, &user, stamp);
    }
    org
}

fn timed(org: &Org, q: &str) -> (usize, f64) {
    let opts = ExecOptions {
        include_deleted: false,
        now: 1_704_067_200,
        api_version: 59.0,
    };
    let start = Instant::now();
    let rs = parse(q).and_then(|p| execute(&p, org, &opts));
    let secs = start.elapsed().as_secs_f64();
    let rows = rs
        .map(|r| r.total_size)
        .unwrap_or_else(|e| panic!("{q}: {e}"));
    (rows, secs)
}

#[test]
#[ignore = "timing; run in release with --ignored"]
fn million_rows_filter_and_sort() {
    let n = 1_000_000;
    for same_stamp in [false, true] {
        let org = big_org(n, same_stamp);
        for q in [
            "SELECT Id, Name FROM Account WHERE SystemModstamp > 2024-01-01T10:00:00Z ORDER BY SystemModstamp, Id",
            "SELECT Id, Name FROM Account WHERE SystemModstamp >= 2024-01-01T00:00:00Z ORDER BY SystemModstamp, Id LIMIT 2000",
            "SELECT Id FROM Account WHERE Id > '0015g0000000001' ORDER BY Id LIMIT 2000",
            "SELECT Id FROM Account WHERE IsDeleted = false ORDER BY SystemModstamp DESC, Id DESC",
            "SELECT Id FROM Account WHERE Name LIKE 'Account 12%' ORDER BY Name DESC, Id",
            "SELECT COUNT() FROM Account WHERE Name != 'x'",
        ] {
            let (rows, secs) = timed(&org, q);
            eprintln!("same_stamp={same_stamp} {secs:.3}s rows={rows} {q}");
            assert!(secs < 1.0, "{q} took {secs:.3}s");
        }
    }
}
