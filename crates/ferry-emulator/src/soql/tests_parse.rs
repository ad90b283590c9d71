//! Parser tests: valid queries and their AST, invalid ones and their error codes, and a property test that no input makes the parser panic.

use super::*;
use proptest::prelude::*;

fn ok(q: &str) -> Query {
    match parse(q) {
        Ok(query) => query,
        Err(e) => panic!("{q:?} should parse: {e}"),
    }
}

fn err(q: &str) -> SoqlError {
    match parse(q) {
        Ok(query) => panic!("{q:?} should not parse: {query:?}"),
        Err(e) => e,
    }
}

fn path(parts: &[&str], offset: usize) -> FieldPath {
    FieldPath {
        parts: parts.iter().map(|p| p.to_string()).collect(),
        offset,
    }
}

#[test]
fn simple_select() {
    let q = ok("SELECT Id, Name FROM Account");
    assert_eq!(
        q.select,
        vec![
            SelectItem::Field(path(&["Id"], 7)),
            SelectItem::Field(path(&["Name"], 11))
        ]
    );
    assert_eq!(q.object, "Account");
    assert_eq!(q.object_offset, 21);
    assert!(q.condition.is_none() && q.order_by.is_empty());
    assert_eq!((q.limit, q.offset), (None, None));
    assert!(!q.has_offset() && !q.has_aggregates() && !q.is_count());
}

#[test]
fn keywords_are_case_insensitive() {
    let q = ok(
        "select id from account where name = 'x' order by name desc nulls first limit 5 offset 2",
    );
    assert_eq!(q.limit, Some(5));
    assert_eq!(q.offset, Some(2));
    assert!(q.has_offset());
    assert_eq!(
        q.order_by,
        vec![OrderItem {
            field: path(&["name"], 49),
            descending: true,
            nulls_first: true
        }]
    );
}

#[test]
fn order_by_defaults() {
    let q = ok("SELECT Id FROM Account ORDER BY SystemModstamp, Id ASC, Name DESC, Phone DESC NULLS FIRST, Type NULLS LAST");
    let flags: Vec<(bool, bool)> = q
        .order_by
        .iter()
        .map(|o| (o.descending, o.nulls_first))
        .collect();
    assert_eq!(
        flags,
        vec![
            (false, true),
            (false, true),
            (true, false),
            (true, true),
            (false, false)
        ]
    );
}

#[test]
fn relationship_paths_count_and_fields() {
    let q = ok("SELECT Account.Name, Contact.Account.Owner.Name FROM Case");
    assert_eq!(
        q.select[1],
        SelectItem::Field(path(&["Contact", "Account", "Owner", "Name"], 21))
    );
    let q = ok("SELECT COUNT() FROM Contact");
    assert!(q.is_count() && q.has_aggregates());
    let q = ok("SELECT FIELDS(all) FROM Account LIMIT 200");
    assert!(matches!(
        q.select[0],
        SelectItem::Fields {
            kind: FieldsKind::All,
            ..
        }
    ));
    assert!(q.uses_fields_function());
    let q = ok("SELECT FIELDS(STANDARD), Name FROM Account");
    assert_eq!(q.select.len(), 2);
    let q = ok("SELECT MAX(Amount) m FROM Opportunity GROUP BY AccountId");
    assert!(q.has_aggregates());
    assert_eq!(q.group_by.len(), 1);
}

#[test]
fn literals() {
    let q = ok(
        r"SELECT Id FROM Account WHERE Name = 'it\'s \\ a \n' AND Amount > -1.5 AND N = 42 AND D = 2024-01-02 AND T > 2024-01-01T01:00:00+01:00 AND U < 2024-01-01T00:00:00.000Z AND B = TRUE AND X = null AND R = LAST_N_DAYS:7 AND S = TODAY",
    );
    let Some(Condition::And(parts)) = q.condition else {
        panic!("expected AND");
    };
    let values: Vec<LiteralValue> = parts
        .into_iter()
        .map(|c| match c {
            Condition::Compare { value, .. } => value.value,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    let jan1 = 1_704_067_200;
    assert_eq!(
        values,
        vec![
            LiteralValue::Str("it's \\ a \n".into()),
            LiteralValue::Number {
                value: -1.5,
                int: None
            },
            LiteralValue::Number {
                value: 42.0,
                int: Some(42)
            },
            LiteralValue::Date(19_724),
            LiteralValue::DateTime(jan1),
            LiteralValue::DateTime(jan1),
            LiteralValue::Bool(true),
            LiteralValue::Null,
            LiteralValue::Relative(RelativeDate::LastNDays(7)),
            LiteralValue::Relative(RelativeDate::Today),
        ]
    );
}

#[test]
fn conditions_nest() {
    let q = ok("SELECT Id FROM Lead WHERE (A = 1 OR B = 2) AND NOT C IN ('x', 'y') AND D NOT IN (1) AND E LIKE 'a\\%%'");
    let Some(Condition::And(parts)) = q.condition else {
        panic!("expected AND");
    };
    assert!(matches!(&parts[0], Condition::Or(v) if v.len() == 2));
    assert!(
        matches!(&parts[1], Condition::Not(inner) if matches!(**inner, Condition::In { negated: false, .. }))
    );
    assert!(matches!(&parts[2], Condition::In { negated: true, .. }));
    assert!(matches!(&parts[3], Condition::Like { raw_pattern, .. } if raw_pattern == "a\\%%"));
}

#[test]
fn alias_and_operators() {
    let q = ok("SELECT c.Id FROM Contact c WHERE c.Name <> 'x' AND c.Age__c >= 3 AND c.X <= 4 AND c.Y != 5 AND c.Z < 6");
    assert_eq!(q.alias.as_deref(), Some("c"));
    let Some(Condition::And(parts)) = q.condition else {
        panic!("expected AND");
    };
    let ops: Vec<CompareOp> = parts
        .iter()
        .map(|c| match c {
            Condition::Compare { op, .. } => *op,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    use CompareOp::*;
    assert_eq!(ops, vec![Ne, Ge, Le, Ne, Lt]);
}

#[test]
fn malformed_queries() {
    let cases = [
        "",
        "SELECT",
        "SELECT FROM Account",
        "SELECT Id Account",
        "SELECT Id FROM",
        "SELECT Id, FROM Account",
        "SELECT Id FROM Account WHERE",
        "SELECT Id FROM Account WHERE Name",
        "SELECT Id FROM Account WHERE Name = ",
        "SELECT Id FROM Account WHERE Name = q",
        "SELECT Id FROM Account WHERE Name = 'unterminated",
        "SELECT Id FROM Account WHERE A = 1 AND B = 2 OR C = 3",
        "SELECT Id FROM Account WHERE A = 1 OR B = 2 AND C = 3",
        "SELECT Id FROM Account WHERE (A = 1",
        "SELECT Id FROM Account WHERE A IN ()",
        "SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact WHERE AccountId IN (SELECT Id FROM Account))",
        "SELECT Id FROM Account WHERE A IN (SELECT Id FROM Contact",
        "SELECT Id FROM Account WHERE A LIKE 5",
        "SELECT Id FROM Account WHERE A = 2024-13-45",
        "SELECT Id FROM Account WHERE A = 2024-01-01T00:00:00",
        "SELECT Id FROM Account WHERE A = LAST_N_DAYS",
        "SELECT Id FROM Account WHERE A = LAST_N_DAYS:x",
        "SELECT Id FROM Account WHERE A = :bind",
        "SELECT Id FROM Account WHERE Name = 'bad \\q escape'",
        "SELECT Id FROM Account LIMIT",
        "SELECT Id FROM Account LIMIT -1",
        "SELECT Id FROM Account LIMIT 1.5",
        "SELECT Id FROM Account LIMIT abc",
        "SELECT Id FROM Account OFFSET 2001",
        "SELECT Id FROM Account ORDER Name",
        "SELECT Id FROM Account ORDER BY Name NULLS",
        "SELECT Id FROM Account ORDER BY",
        "SELECT Id FROM Account extra tokens",
        "SELECT Id FROM Account;",
        "SELECT COUNT(), Name FROM Account",
        "SELECT FIELDS(SOME) FROM Account",
        "SELECT Id, (SELECT Id, (SELECT Id FROM Cases) FROM Contacts) FROM Account",
        "SELECT Id, (SELECT Id FROM Contacts FROM Account",
        "SELECT Id, (Name) FROM Account",
        "SELECT Foo(Id) FROM Account",
        "SELECT TYPEOF What END FROM Task",
        "SELECT TYPEOF What WHEN Account Name END FROM Task",
        "SELECT TYPEOF What WHEN Account THEN Name FROM Task",
        "SELECT Id FROM Account WHERE Tags INCLUDES ('a')",
        "SELECT Id. FROM Account",
        "UPDATE Account",
    ];
    for q in cases {
        assert_eq!(err(q).code, MALFORMED_QUERY, "{q:?}");
    }
}

#[test]
fn error_messages_point_at_the_token() {
    let e = err("SELECT Id FROM Account WHERE Name = q");
    assert_eq!(
        e.message,
        "\nSELECT Id FROM Account WHERE Name = q\n                                    ^\nERROR at Row:1:Column:37\nunexpected token: q"
    );
    let e = err("SELECT Id\nFROM Account\nLIMIT x");
    assert!(
        e.message
            .ends_with("\nLIMIT x\n      ^\nERROR at Row:3:Column:7\nunexpected token: x"),
        "{}",
        e.message
    );
    let e = err("SELECT Id FROM Account OFFSET 2001");
    assert!(e.message.ends_with("Maximum SOQL offset allowed is 2000"));
    assert_eq!(
        err("SELECT Id FROM Account WHERE").message.lines().last(),
        Some("unexpected token: <EOF>")
    );
}

#[test]
fn ignored_clauses_and_reserved_object_names() {
    let q = ok("SELECT Id FROM Account WHERE Name = 'x' WITH SECURITY_ENFORCED ORDER BY Id LIMIT 1 FOR VIEW");
    assert_eq!(q.limit, Some(1));
    ok("SELECT Id FROM Account WITH USER_MODE");
    ok("SELECT Id FROM Account FOR REFERENCE");
    assert_eq!(ok("SELECT Id FROM Order").object, "Order");
    assert_eq!(
        err("SELECT Id FROM Account WITH NOTHING").code,
        MALFORMED_QUERY
    );
    assert_eq!(err("SELECT Id FROM Account FOR").code, MALFORMED_QUERY);
}

#[test]
fn offset_2000_is_allowed() {
    assert_eq!(ok("SELECT Id FROM Account OFFSET 2000").offset, Some(2000));
}

proptest! {
    #[test]
    fn parse_never_panics(s in "\\PC{0,80}") {
        let _ = parse(&s);
    }

    #[test]
    fn parse_never_panics_on_soql_like_text(
        words in proptest::collection::vec(
            prop_oneof![
                Just("SELECT"), Just("FROM"), Just("WHERE"), Just("Id"), Just("Name"), Just(","),
                Just("("), Just(")"), Just("="), Just("<"), Just(">="), Just("'a\\'b'"), Just("'"),
                Just("\\"), Just("AND"), Just("OR"), Just("NOT"), Just("IN"), Just("LIKE"),
                Just("ORDER"), Just("BY"), Just("LIMIT"), Just("OFFSET"), Just("5"), Just("-1"),
                Just("2024-01-01"), Just("2024-01-01T00:00:00Z"), Just("LAST_N_DAYS:3"), Just(":"),
                Just("."), Just("COUNT()"), Just("FIELDS(ALL)"), Just("null"), Just("é"),
                Just("NULLS"), Just("FIRST"), Just("DESC"), Just("99999999999999999999"),
            ],
            0..16,
        )
    ) {
        let _ = parse(&words.join(" "));
        let _ = parse(&words.concat());
    }
}

#[test]
fn typeof_branches_and_else() {
    let q = ok("SELECT Id, TYPEOF What WHEN Account THEN Name, Phone WHEN Opportunity THEN Amount ELSE Name END FROM Event");
    assert!(q.has_typeof());
    match &q.select[1] {
        SelectItem::TypeOf {
            relationship,
            whens,
            otherwise,
            ..
        } => {
            assert_eq!(relationship, "What");
            assert_eq!(whens.len(), 2);
            assert_eq!(whens[0].1, vec!["Name".to_string(), "Phone".to_string()]);
            assert_eq!(otherwise, &vec!["Name".to_string()]);
        }
        other => panic!("{other:?}"),
    }
}
