//! Execution and rendering tests on a small hand-built org: filters, ordering, relationships, deleted rows, error codes and wire formats.

use super::*;
use crate::ids;
use crate::org::{Org, WriteContext};
use crate::value::parse_datetime;
use serde_json::json;

const POD: &str = "5g";
const V: &str = "59.0";

fn t(s: &str) -> i64 {
    parse_datetime(s).unwrap_or_else(|| panic!("bad datetime {s}"))
}

fn obj(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

struct Fixture {
    org: Org,
    ann: String,
    bob: String,
    acme: String,
    globex: String,
    initech: String,
    contacts: Vec<String>,
    case_id: String,
}

fn create(org: &mut Org, object: &str, user: &str, now: &str, v: serde_json::Value) -> String {
    let ctx = WriteContext {
        user_id: user,
        now: t(now),
        modstamp: None,
    };
    org.create(object, &obj(v), ctx)
        .unwrap_or_else(|e| panic!("create {object}: {e:?}"))
}

fn fixture() -> Fixture {
    let mut org = Org::new(ids::make_id("00D", POD, 1), "Test", false, POD);
    let ann_id = ids::make_id("005", POD, 1);
    let ann = create(
        &mut org,
        "User",
        &ann_id,
        "2023-01-01T00:00:00Z",
        json!({"Username":"ann@x.com","FirstName":"Ann","LastName":"Lee","Email":"ann@x.com","Alias":"ann"}),
    );
    assert_eq!(ann, ann_id);
    let bob = create(
        &mut org,
        "User",
        &ann,
        "2023-01-01T00:00:00Z",
        json!({"Username":"bob@x.com","FirstName":"Bob","LastName":"Ray","Email":"bob@x.com","Alias":"bob"}),
    );
    let acme = create(
        &mut org,
        "Account",
        &ann,
        "2024-01-01T00:00:00Z",
        json!({"Name":"Acme","Industry":"Energy","NumberOfEmployees":50,"AnnualRevenue":1000.5}),
    );
    let globex = create(
        &mut org,
        "Account",
        &bob,
        "2024-01-02T00:00:00Z",
        json!({"Name":"globex","Industry":"Banking","NumberOfEmployees":7}),
    );
    let initech = create(
        &mut org,
        "Account",
        &ann,
        "2024-01-03T12:00:00Z",
        json!({"Name":"Initech","OwnerId":bob,"Phone":"555 \"main\""}),
    );
    let mut contacts = Vec::new();
    for (i, (first, last, account, birth)) in [
        ("Zed", "Adams", Some(&acme), Some("1990-05-01")),
        ("Amy", "Baker", Some(&globex), None),
        ("Cy", "Cole", None, Some("1985-12-31")),
        ("Di", "Dunn", Some(&acme), Some("2000-01-01")),
    ]
    .into_iter()
    .enumerate()
    {
        let mut v = json!({"FirstName":first,"LastName":last});
        if let Some(a) = account {
            v["AccountId"] = json!(a);
        }
        if let Some(b) = birth {
            v["Birthdate"] = json!(b);
        }
        contacts.push(create(
            &mut org,
            "Contact",
            &ann,
            &format!("2024-02-0{}T00:00:00Z", i + 1),
            v,
        ));
    }
    let case_id = create(
        &mut org,
        "Case",
        &ann,
        "2024-03-01T00:00:00Z",
        json!({"Subject":"Broken","ContactId":contacts[0]}),
    );
    Fixture {
        org,
        ann,
        bob,
        acme,
        globex,
        initech,
        contacts,
        case_id,
    }
}

fn opts() -> ExecOptions {
    ExecOptions {
        include_deleted: false,
        now: t("2024-02-03T15:00:00Z"),
        api_version: 59.0,
    }
}

fn run_with(org: &Org, q: &str, o: &ExecOptions) -> Result<ResultSet, SoqlError> {
    execute(&parse(q)?, org, o)
}

fn ids_of(org: &Org, q: &str) -> Vec<String> {
    let rs = run_with(org, q, &opts()).unwrap_or_else(|e| panic!("{q}: {e}"));
    let table = org.table(&rs.object).unwrap_or_else(|| panic!("no table"));
    rs.rows
        .iter()
        .map(|&r| table.records[r as usize].id().to_string())
        .collect()
}

fn names(org: &Org, q: &str) -> Vec<String> {
    let rs = run_with(org, q, &opts()).unwrap_or_else(|e| panic!("{q}: {e}"));
    let table = org.table(&rs.object).unwrap_or_else(|| panic!("no table"));
    let name = table.schema.field_index("Name").unwrap_or_default();
    rs.rows
        .iter()
        .map(|&r| {
            table.records[r as usize]
                .get(name)
                .as_str()
                .unwrap_or("<null>")
                .to_string()
        })
        .collect()
}

fn error(org: &Org, q: &str) -> SoqlError {
    match run_with(org, q, &opts()) {
        Ok(rs) => panic!("{q} should fail, got {rs:?}"),
        Err(e) => e,
    }
}

#[test]
fn filters_and_orders() {
    let f = fixture();
    let o = &f.org;
    assert_eq!(
        names(o, "SELECT Name FROM Account"),
        ["Acme", "globex", "Initech"]
    );
    assert_eq!(
        names(o, "SELECT Name FROM Account ORDER BY Name"),
        ["Acme", "globex", "Initech"]
    );
    assert_eq!(
        names(o, "SELECT Name FROM Account ORDER BY Name DESC"),
        ["Initech", "globex", "Acme"]
    );
    assert_eq!(
        names(o, "select name from account where name = 'ACME'"),
        ["Acme"]
    );
    assert_eq!(
        names(o, "SELECT Name FROM Account WHERE Name > 'b'"),
        ["globex", "Initech"]
    );
    assert_eq!(
        names(
            o,
            "SELECT Name FROM Account WHERE NumberOfEmployees >= 7 AND NumberOfEmployees < 50"
        ),
        ["globex"]
    );
    assert_eq!(
        names(o, "SELECT Name FROM Account WHERE AnnualRevenue > 1000"),
        ["Acme"]
    );
    assert_eq!(
        names(o, "SELECT Name FROM Account WHERE Industry = null"),
        ["Initech"]
    );
    assert_eq!(
        names(
            o,
            "SELECT Name FROM Account WHERE Industry != null ORDER BY Name DESC"
        ),
        ["globex", "Acme"]
    );
    // != includes rows where the field is null, as in SOQL.
    assert_eq!(
        names(o, "SELECT Name FROM Account WHERE Industry != 'Energy'"),
        ["globex", "Initech"]
    );
    assert_eq!(
        names(o, "SELECT Name FROM Account WHERE NumberOfEmployees < 100"),
        ["Acme", "globex"]
    );
    assert_eq!(
        names(
            o,
            "SELECT Name FROM Account WHERE Industry IN ('energy', 'Banking')"
        ),
        ["Acme", "globex"]
    );
    assert_eq!(
        names(
            o,
            "SELECT Name FROM Account WHERE Industry NOT IN ('Energy')"
        ),
        ["globex", "Initech"]
    );
    assert_eq!(
        names(
            o,
            "SELECT Name FROM Account WHERE Industry IN ('Energy', null)"
        ),
        ["Acme", "Initech"]
    );
    assert_eq!(
        names(o, "SELECT Name FROM Account WHERE Name LIKE '%E%'"),
        ["Acme", "globex", "Initech"]
    );
    assert_eq!(
        names(o, "SELECT Name FROM Account WHERE Name LIKE 'g_ob%'"),
        ["globex"]
    );
    assert_eq!(
        names(o, "SELECT Name FROM Account WHERE NOT Name LIKE 'g%'"),
        ["Acme", "Initech"]
    );
    assert_eq!(
        names(o, "SELECT Name FROM Account WHERE (Name = 'Acme' OR Name = 'Initech') AND (NOT Industry = 'Energy')"),
        ["Initech"]
    );
    assert_eq!(
        names(o, "SELECT Name FROM Account ORDER BY Industry"),
        ["Initech", "globex", "Acme"]
    );
    assert_eq!(
        names(o, "SELECT Name FROM Account ORDER BY Industry NULLS LAST"),
        ["globex", "Acme", "Initech"]
    );
    assert_eq!(
        names(o, "SELECT Name FROM Account ORDER BY Industry DESC"),
        ["Acme", "globex", "Initech"]
    );
    assert_eq!(
        names(
            o,
            "SELECT Name FROM Account ORDER BY Industry DESC NULLS FIRST"
        ),
        ["Initech", "Acme", "globex"]
    );
    assert_eq!(
        names(o, "SELECT Name FROM Account ORDER BY OwnerId, Name DESC"),
        ["Acme", "Initech", "globex"]
    );
    assert_eq!(
        names(o, "SELECT Name FROM Account ORDER BY Name LIMIT 2"),
        ["Acme", "globex"]
    );
    assert_eq!(
        names(o, "SELECT Name FROM Account ORDER BY Name LIMIT 2 OFFSET 2"),
        ["Initech"]
    );
    assert_eq!(
        names(o, "SELECT Name FROM Account LIMIT 1 OFFSET 1"),
        ["globex"]
    );
    assert!(names(o, "SELECT Name FROM Account LIMIT 0").is_empty());
    assert!(names(o, "SELECT Name FROM Account OFFSET 5").is_empty());
}

#[test]
fn dates_datetimes_and_relative_literals() {
    let f = fixture();
    let o = &f.org;
    assert_eq!(
        names(
            o,
            "SELECT Name FROM Account WHERE CreatedDate > 2024-01-01T00:00:00Z"
        ),
        ["globex", "Initech"]
    );
    assert_eq!(
        names(
            o,
            "SELECT Name FROM Account WHERE CreatedDate >= 2024-01-01T01:00:00+01:00"
        ),
        ["Acme", "globex", "Initech"]
    );
    assert_eq!(
        names(
            o,
            "SELECT Name FROM Account WHERE SystemModstamp < 2024-01-02T00:00:00.000Z"
        ),
        ["Acme"]
    );
    assert_eq!(
        names(
            o,
            "SELECT Name FROM Contact WHERE Birthdate < 1999-01-01 ORDER BY Birthdate"
        ),
        ["Cy Cole", "Zed Adams"]
    );
    assert_eq!(
        names(o, "SELECT Name FROM Contact WHERE Birthdate = null"),
        ["Amy Baker"]
    );
    // now = 2024-02-03T15:00:00Z; contacts were created on Feb 1..4 at midnight.
    assert_eq!(
        names(o, "SELECT Name FROM Contact WHERE CreatedDate = TODAY"),
        ["Cy Cole"]
    );
    assert_eq!(
        names(o, "SELECT Name FROM Contact WHERE CreatedDate = YESTERDAY"),
        ["Amy Baker"]
    );
    assert_eq!(
        names(o, "SELECT Name FROM Contact WHERE CreatedDate > TODAY"),
        ["Di Dunn"]
    );
    assert_eq!(
        names(o, "SELECT Name FROM Contact WHERE CreatedDate < YESTERDAY"),
        ["Zed Adams"]
    );
    assert_eq!(
        names(
            o,
            "SELECT Name FROM Contact WHERE CreatedDate = LAST_N_DAYS:1"
        ),
        ["Amy Baker", "Cy Cole"]
    );
    assert_eq!(
        names(
            o,
            "SELECT Name FROM Contact WHERE CreatedDate >= LAST_N_DAYS:1"
        ),
        ["Amy Baker", "Cy Cole", "Di Dunn"]
    );
    assert_eq!(
        names(o, "SELECT Name FROM Contact WHERE CreatedDate != TODAY"),
        ["Zed Adams", "Amy Baker", "Di Dunn"]
    );
    assert_eq!(
        names(o, "SELECT Name FROM Contact WHERE Birthdate < TODAY"),
        ["Zed Adams", "Cy Cole", "Di Dunn"]
    );
    assert_eq!(
        names(
            o,
            "SELECT Name FROM Contact WHERE CreatedDate IN (TODAY, YESTERDAY)"
        ),
        ["Amy Baker", "Cy Cole"]
    );
}

#[test]
fn ids_compare_in_15_and_18_character_forms() {
    let f = fixture();
    let o = &f.org;
    let id15 = ids::id15(&f.globex).to_string();
    assert_eq!(
        ids_of(o, &format!("SELECT Id FROM Account WHERE Id = '{id15}'")),
        [f.globex.as_str()]
    );
    assert_eq!(
        ids_of(
            o,
            &format!("SELECT Id FROM Account WHERE Id = '{}'", f.globex)
        ),
        [f.globex.as_str()]
    );
    assert_eq!(
        ids_of(
            o,
            &format!("SELECT Id FROM Account WHERE Id > '{id15}' ORDER BY Id")
        ),
        [f.initech.as_str()]
    );
    assert_eq!(
        ids_of(
            o,
            &format!(
                "SELECT Id FROM Contact WHERE AccountId IN ('{}', '{}')",
                ids::id15(&f.acme),
                f.globex
            )
        ),
        [
            f.contacts[0].clone(),
            f.contacts[1].clone(),
            f.contacts[3].clone()
        ]
    );
    assert_eq!(
        ids_of(o, "SELECT Id FROM Account ORDER BY Id DESC"),
        [f.initech.clone(), f.globex.clone(), f.acme.clone()]
    );
    let e = error(o, "SELECT Id FROM Account WHERE Id = 'abc'");
    assert_eq!(e.code, INVALID_QUERY_FILTER_OPERATOR);
    assert!(e.message.ends_with("invalid ID field: abc"));
}

#[test]
fn relationship_fields_filter_sort_and_render() {
    let f = fixture();
    let o = &f.org;
    assert_eq!(
        names(o, "SELECT Name FROM Contact WHERE Account.Name = 'acme'"),
        ["Zed Adams", "Di Dunn"]
    );
    assert_eq!(
        names(o, "SELECT Name FROM Contact WHERE Account.Name = null"),
        ["Cy Cole"]
    );
    assert_eq!(
        names(
            o,
            "SELECT Name FROM Contact ORDER BY Account.Name DESC, Name"
        ),
        ["Amy Baker", "Di Dunn", "Zed Adams", "Cy Cole"]
    );
    assert_eq!(
        names(o, "SELECT Name FROM Account WHERE Owner.Name = 'Bob Ray'"),
        ["globex", "Initech"]
    );
    assert_eq!(
        names(o, "SELECT Name FROM Account WHERE CreatedBy.Alias = 'bob'"),
        ["globex"]
    );
    assert_eq!(
        ids_of(
            o,
            "SELECT Id FROM Case WHERE Contact.Account.Name LIKE 'Ac%'"
        ),
        [f.case_id.as_str()]
    );
    assert_eq!(
        names(
            o,
            "SELECT Account.Name FROM Account a WHERE a.Name = 'Acme'"
        ),
        ["Acme"]
    );

    let rs = match run_with(o, "SELECT Id, Name, Account.Name, Owner.Name, account.Industry, Birthdate FROM Contact ORDER BY LastName", &opts()) {
        Ok(rs) => rs,
        Err(e) => panic!("{e}"),
    };
    let headers: Vec<&str> = rs.columns.iter().map(|c| c.header.as_str()).collect();
    assert_eq!(
        headers,
        [
            "Id",
            "Name",
            "Account.Name",
            "Owner.Name",
            "Account.Industry",
            "Birthdate"
        ]
    );
    let first = render_json(&rs, o, rs.rows[0], V);
    assert_eq!(
        first,
        json!({
            "attributes": {"type": "Contact", "url": format!("/services/data/v59.0/sobjects/Contact/{}", f.contacts[0])},
            "Id": f.contacts[0],
            "Name": "Zed Adams",
            "Account": {
                "attributes": {"type": "Account", "url": format!("/services/data/v59.0/sobjects/Account/{}", f.acme)},
                "Name": "Acme",
                "Industry": "Energy"
            },
            "Owner": {
                "attributes": {"type": "User", "url": format!("/services/data/v59.0/sobjects/User/{}", f.ann)},
                "Name": "Ann Lee"
            },
            "Birthdate": "1990-05-01"
        })
    );
    let third = render_json(&rs, o, rs.rows[2], V);
    assert_eq!(third["Account"], serde_json::Value::Null);
    assert_eq!(third["Birthdate"], json!("1985-12-31"));

    let rs = match run_with(
        o,
        "SELECT Subject, Contact.Account.Name, Contact.Name FROM Case",
        &opts(),
    ) {
        Ok(rs) => rs,
        Err(e) => panic!("{e}"),
    };
    let row = render_json(&rs, o, rs.rows[0], V);
    assert_eq!(row["Contact"]["Name"], json!("Zed Adams"));
    assert_eq!(row["Contact"]["Account"]["Name"], json!("Acme"));
    assert_eq!(
        row["Contact"]["Account"]["attributes"]["type"],
        json!("Account")
    );
    assert_eq!(rs.columns[1].header, "Contact.Account.Name");
}

#[test]
fn json_uses_salesforce_value_forms() {
    let f = fixture();
    let o = &f.org;
    let rs = match run_with(o, "SELECT name, createddate, NumberOfEmployees, AnnualRevenue, IsDeleted, Industry FROM Account WHERE Name = 'Acme'", &opts()) {
        Ok(rs) => rs,
        Err(e) => panic!("{e}"),
    };
    let row = render_json(&rs, o, rs.rows[0], V);
    assert_eq!(row["Name"], json!("Acme"));
    assert_eq!(row["CreatedDate"], json!("2024-01-01T00:00:00.000+0000"));
    assert_eq!(row["NumberOfEmployees"], json!(50));
    assert_eq!(row["AnnualRevenue"], json!(1000.5));
    assert_eq!(row["IsDeleted"], json!(false));
    assert_eq!(row["Industry"], json!("Energy"));
    assert!(row.get("name").is_none());
}

#[test]
fn csv_rendering() {
    let f = fixture();
    let o = &f.org;
    let rs = match run_with(o, "SELECT Id, Name, Owner.Name, Industry, CreatedDate, NumberOfEmployees, Phone FROM Account ORDER BY Name", &opts()) {
        Ok(rs) => rs,
        Err(e) => panic!("{e}"),
    };
    let csv = render_csv(&rs, o, &rs.rows, b',', false);
    let expected = format!(
        "\"Id\",\"Name\",\"Owner.Name\",\"Industry\",\"CreatedDate\",\"NumberOfEmployees\",\"Phone\"\n\
         \"{}\",\"Acme\",\"Ann Lee\",\"Energy\",\"2024-01-01T00:00:00.000Z\",\"50\",\"\"\n\
         \"{}\",\"globex\",\"Bob Ray\",\"Banking\",\"2024-01-02T00:00:00.000Z\",\"7\",\"\"\n\
         \"{}\",\"Initech\",\"Bob Ray\",\"\",\"2024-01-03T12:00:00.000Z\",\"\",\"555 \"\"main\"\"\"\n",
        f.acme, f.globex, f.initech
    );
    assert_eq!(csv, expected);
    let page = render_csv(&rs, o, &rs.rows[1..2], b'|', true);
    assert_eq!(
        page,
        format!("\"Id\"|\"Name\"|\"Owner.Name\"|\"Industry\"|\"CreatedDate\"|\"NumberOfEmployees\"|\"Phone\"\r\n\"{}\"|\"globex\"|\"Bob Ray\"|\"Banking\"|\"2024-01-02T00:00:00.000Z\"|\"7\"|\"\"\r\n", f.globex)
    );
    let mut reader = csv::ReaderBuilder::new().from_reader(csv.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().filter_map(Result::ok).collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(&rows[2][6], "555 \"main\"");
}

#[test]
fn count_and_totals() {
    let f = fixture();
    let o = &f.org;
    let rs = match run_with(
        o,
        "SELECT COUNT() FROM Contact WHERE AccountId != null",
        &opts(),
    ) {
        Ok(rs) => rs,
        Err(e) => panic!("{e}"),
    };
    assert!(rs.count_only && rs.rows.is_empty() && rs.columns.is_empty());
    assert_eq!(rs.total_size, 3);
    let rs = match run_with(o, "SELECT COUNT() FROM Contact LIMIT 2", &opts()) {
        Ok(rs) => rs,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(rs.total_size, 2);
    let rs = match run_with(o, "SELECT Id FROM Contact LIMIT 3 OFFSET 2", &opts()) {
        Ok(rs) => rs,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(rs.total_size, 2);
    assert_eq!(rs.rows.len(), 2);
}

#[test]
fn deleted_and_purged_records() {
    let mut f = fixture();
    let ctx = WriteContext {
        user_id: &f.ann,
        now: t("2024-03-01T00:00:00Z"),
        modstamp: None,
    };
    let globex = f.globex.clone();
    if let Err(e) = f.org.delete("Account", &globex, ctx) {
        panic!("{e:?}");
    }
    let all = ExecOptions {
        include_deleted: true,
        ..opts()
    };
    assert_eq!(
        names(&f.org, "SELECT Name FROM Account"),
        ["Acme", "Initech"]
    );
    let rs = run_with(
        &f.org,
        "SELECT Name FROM Account WHERE IsDeleted = true",
        &all,
    );
    assert_eq!(rs.map(|r| r.rows.len()).ok(), Some(1));
    let rs = run_with(&f.org, "SELECT Name FROM Account", &all);
    assert_eq!(rs.map(|r| r.rows.len()).ok(), Some(3));
    assert_eq!(f.org.empty_recycle_bin(), 1);
    let rs = run_with(&f.org, "SELECT Name FROM Account", &all);
    assert_eq!(rs.map(|r| r.rows.len()).ok(), Some(2));
    let rs = run_with(&f.org, "SELECT COUNT() FROM Account", &all);
    assert_eq!(rs.map(|r| r.total_size).ok(), Some(2));
}

#[test]
fn unknown_names_and_types() {
    let f = fixture();
    let o = &f.org;
    let e = error(o, "SELECT Foo FROM Account");
    assert_eq!(e.code, INVALID_FIELD);
    assert_eq!(e.message, "\nSELECT Foo FROM Account\n       ^\nERROR at Row:1:Column:8\nNo such column 'Foo' on entity 'Account'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.");
    let e = error(o, "SELECT Id FROM Account WHERE Bar__c = 1");
    assert_eq!(e.code, INVALID_FIELD);
    assert!(
        e.message
            .contains("ERROR at Row:1:Column:30\nNo such column 'Bar__c' on entity 'Account'"),
        "{}",
        e.message
    );
    let e = error(o, "SELECT Id FROM Account ORDER BY Nope");
    assert_eq!(e.code, INVALID_FIELD);
    let e = error(o, "SELECT Owner.Nope FROM Account");
    assert!(
        e.message.contains("No such column 'Nope' on entity 'User'"),
        "{}",
        e.message
    );
    let e = error(o, "SELECT Boss.Name FROM Account");
    assert_eq!(e.code, INVALID_FIELD);
    assert!(
        e.message
            .contains("Didn't understand relationship 'Boss' in field path."),
        "{}",
        e.message
    );
    let e = error(o, "SELECT Id FROM Foo");
    assert_eq!(e.code, INVALID_TYPE);
    assert!(e.message.ends_with("\nsObject type 'Foo' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."), "{}", e.message);
    let e = error(o, "SELECT Id, Name, id FROM Account");
    assert_eq!(e.code, MALFORMED_QUERY);
    let e = error(o, "SELECT Name, MAX(NumberOfEmployees) FROM Account");
    assert_eq!(e.code, MALFORMED_QUERY);
    assert!(
        e.message
            .ends_with("Field must be grouped or aggregated: Name"),
        "{}",
        e.message
    );
    let e = error(o, "SELECT SUM(Name) FROM Account");
    assert_eq!(e.code, MALFORMED_QUERY);
}

#[test]
fn literal_types_must_match_fields() {
    let f = fixture();
    let o = &f.org;
    let cases = [
        ("SELECT Id FROM Account WHERE CreatedDate > '2024-01-01'", "value of filter criterion for field 'CreatedDate' must be of type dateTime and should not be enclosed in quotes"),
        ("SELECT Id FROM Account WHERE CreatedDate > 2024-01-01", "value of filter criterion for field 'CreatedDate' must be of type dateTime and should not be enclosed in quotes"),
        ("SELECT Id FROM Contact WHERE Birthdate > 2024-01-01T00:00:00Z", "value of filter criterion for field 'Birthdate' must be of type date and should not be enclosed in quotes"),
        ("SELECT Id FROM Account WHERE Name = 5", "value of filter criterion for field 'Name' must be of type string and should be enclosed in quotes"),
        ("SELECT Id FROM Account WHERE NumberOfEmployees = '5'", "value of filter criterion for field 'NumberOfEmployees' must be of type int and should not be enclosed in quotes"),
        ("SELECT Id FROM Account WHERE AnnualRevenue = true", "value of filter criterion for field 'AnnualRevenue' must be of type double and should not be enclosed in quotes"),
        ("SELECT Id FROM Account WHERE IsDeleted = 'true'", "value of filter criterion for field 'IsDeleted' must be of type boolean and should not be enclosed in quotes"),
    ];
    for (q, msg) in cases {
        let e = error(o, q);
        assert_eq!(e.code, INVALID_FIELD, "{q}");
        assert!(e.message.ends_with(msg), "{q}: {}", e.message);
    }
    assert_eq!(
        error(o, "SELECT Id FROM Account WHERE Name < null").code,
        MALFORMED_QUERY
    );
    assert_eq!(
        error(
            o,
            "SELECT Id FROM Account WHERE NumberOfEmployees LIKE '5%'"
        )
        .code,
        INVALID_FIELD
    );
}

#[test]
fn fields_function_rules() {
    let f = fixture();
    let o = &f.org;
    let rs = match run_with(o, "SELECT FIELDS(ALL) FROM Account LIMIT 200", &opts()) {
        Ok(rs) => rs,
        Err(e) => panic!("{e}"),
    };
    let table = o.table("Account").unwrap_or_else(|| panic!("no Account"));
    assert_eq!(rs.columns.len(), table.schema.fields.len());
    assert_eq!(rs.rows.len(), 3);
    let rs = match run_with(
        o,
        "SELECT FIELDS(STANDARD), Owner.Name FROM Account",
        &opts(),
    ) {
        Ok(rs) => rs,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        rs.columns.last().map(|c| c.header.as_str()),
        Some("Owner.Name")
    );
    for q in [
        "SELECT FIELDS(ALL) FROM Account",
        "SELECT FIELDS(ALL) FROM Account LIMIT 201",
        "SELECT FIELDS(CUSTOM) FROM Account LIMIT 500",
    ] {
        let e = error(o, q);
        assert_eq!(e.code, MALFORMED_QUERY, "{q}");
        assert_eq!(
            e.message,
            "The SOQL FIELDS function must have a LIMIT of at most 200"
        );
    }
    let old = ExecOptions {
        api_version: 50.0,
        ..opts()
    };
    let e = run_with(o, "SELECT FIELDS(STANDARD) FROM Account", &old).err();
    assert_eq!(e.map(|e| e.code), Some(UNSUPPORTED_API_VERSION));
}

#[test]
fn custom_objects_and_late_fields() {
    use crate::schema::{FieldDef, FieldType};
    let mut f = fixture();
    if let Err(e) = f.org.define_object(
        "Invoice__c",
        "Invoices",
        vec![
            FieldDef::new("Total__c", FieldType::Currency),
            FieldDef::reference("Account__c", "Account", "Account__r"),
        ],
    ) {
        panic!("{e:?}");
    }
    let ann = f.ann.clone();
    let acme = f.acme.clone();
    create(
        &mut f.org,
        "Invoice__c",
        &ann,
        "2024-04-01T00:00:00Z",
        json!({"Name":"INV-1","Total__c":10,"Account__c":acme}),
    );
    create(
        &mut f.org,
        "Invoice__c",
        &ann,
        "2024-04-02T00:00:00Z",
        json!({"Name":"INV-2","Total__c":20}),
    );
    // A field added after records exist reads as null on them.
    if let Err(e) = f.org.define_object(
        "Account",
        "Accounts",
        vec![FieldDef::new("Tier__c", FieldType::String)],
    ) {
        panic!("{e:?}");
    }
    let o = &f.org;
    assert_eq!(
        names(o, "SELECT Name FROM invoice__c WHERE Total__c > 15"),
        ["INV-2"]
    );
    assert_eq!(
        names(
            o,
            "SELECT Name FROM Invoice__c WHERE Account__r.Name = 'Acme'"
        ),
        ["INV-1"]
    );
    assert_eq!(
        names(o, "SELECT Name FROM Account WHERE Tier__c = null"),
        ["Acme", "globex", "Initech"]
    );
    let rs = match run_with(o, "SELECT FIELDS(CUSTOM) FROM Account LIMIT 10", &opts()) {
        Ok(rs) => rs,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(rs.columns.len(), 1);
    assert_eq!(
        render_json(&rs, o, rs.rows[0], V)["Tier__c"],
        serde_json::Value::Null
    );
    let _ = &f.bob;
}

#[test]
fn aggregates_group_count_and_sum() {
    let f = fixture();
    let o = &f.org;
    let rs = run_with(
        o,
        "SELECT AccountId, COUNT(Id) n, MIN(Birthdate), MAX(LastName) FROM Contact GROUP BY AccountId ORDER BY AccountId NULLS LAST",
        &opts(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rs.total_size, 3);
    let rows: Vec<serde_json::Value> = (0..3).map(|p| render_row(&rs, o, p, V)).collect();
    assert_eq!(rows[0]["attributes"]["type"], "AggregateResult");
    assert_eq!(rows[0]["AccountId"], f.acme.as_str());
    assert_eq!(rows[0]["n"], 2);
    assert_eq!(rows[0]["expr0"], "1990-05-01");
    assert_eq!(rows[0]["expr1"], "Dunn");
    assert_eq!(rows[1]["AccountId"], f.globex.as_str());
    assert_eq!(rows[1]["expr0"], serde_json::Value::Null);
    assert_eq!(rows[2]["AccountId"], serde_json::Value::Null);
    assert_eq!(rows[2]["n"], 1);

    let rs = run_with(
        o,
        "SELECT COUNT(Id), SUM(NumberOfEmployees) total, AVG(AnnualRevenue), COUNT_DISTINCT(Industry) FROM Account",
        &opts(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let row = render_row(&rs, o, 0, V);
    assert_eq!(row["expr0"], 3);
    assert_eq!(row["total"], 57);
    assert_eq!(row["expr1"], 1000.5);
    assert_eq!(row["expr2"], 2);
    // GROUP BY with LIMIT counts groups, not records.
    let rs = run_with(
        o,
        "SELECT Industry FROM Account GROUP BY Industry LIMIT 2",
        &opts(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rs.total_size, 2);
}

#[test]
fn semi_joins_and_anti_joins_filter_by_another_objects_ids() {
    let f = fixture();
    let o = &f.org;
    let with_contacts = ids_of(
        o,
        "SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact WHERE Birthdate != null)",
    );
    assert_eq!(with_contacts, vec![f.acme.clone()]);
    let without = ids_of(
        o,
        "SELECT Id FROM Account WHERE Id NOT IN (SELECT AccountId FROM Contact) ORDER BY Name",
    );
    assert_eq!(without, vec![f.initech.clone()]);
    let e = error(
        o,
        "SELECT Id FROM Account WHERE Name IN (SELECT AccountId FROM Contact)",
    );
    assert_eq!(e.code, MALFORMED_QUERY);
    let e = error(
        o,
        "SELECT Id FROM Account WHERE Id IN (SELECT LastName FROM Contact)",
    );
    assert_eq!(e.code, MALFORMED_QUERY);
}

#[test]
fn calendar_period_literals_cover_whole_weeks_months_quarters_and_years() {
    let f = fixture();
    let o = &f.org;
    // Now is Saturday 2024-02-03; contacts were created on 2024-02-01 … 2024-02-04.
    let count = |q: &str| {
        run_with(o, q, &opts())
            .unwrap_or_else(|e| panic!("{q}: {e}"))
            .rows
            .len()
    };
    assert_eq!(
        count("SELECT Id FROM Contact WHERE CreatedDate = THIS_MONTH"),
        4
    );
    assert_eq!(
        count("SELECT Id FROM Contact WHERE CreatedDate = LAST_MONTH"),
        0
    );
    assert_eq!(
        count("SELECT Id FROM Account WHERE CreatedDate = LAST_MONTH"),
        3
    );
    assert_eq!(
        count("SELECT Id FROM Account WHERE CreatedDate = THIS_YEAR"),
        3
    );
    assert_eq!(
        count("SELECT Id FROM Account WHERE CreatedDate = LAST_YEAR"),
        0
    );
    assert_eq!(
        count("SELECT Id FROM User WHERE CreatedDate = LAST_YEAR"),
        2
    );
    assert_eq!(
        count("SELECT Id FROM Account WHERE CreatedDate = THIS_QUARTER"),
        3
    );
    // The week of Sunday 2024-01-28 … Saturday 2024-02-03.
    assert_eq!(
        count("SELECT Id FROM Contact WHERE CreatedDate = THIS_WEEK"),
        3
    );
    assert_eq!(
        count("SELECT Id FROM Contact WHERE CreatedDate = NEXT_WEEK"),
        1
    );
    assert_eq!(
        count("SELECT Id FROM Account WHERE CreatedDate = LAST_N_MONTHS:1"),
        3
    );
    assert_eq!(
        count("SELECT Id FROM Account WHERE CreatedDate < LAST_N_MONTHS:1"),
        0
    );
    assert_eq!(
        count("SELECT Id FROM Contact WHERE Birthdate = LAST_N_YEARS:30"),
        1
    );
    assert_eq!(
        count("SELECT Id FROM Account WHERE CreatedDate = LAST_90_DAYS"),
        3
    );
}
