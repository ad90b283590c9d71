//! Deterministic, realistic seed data: companies, people, deals, leads and cases, fast enough to seed a million records in seconds.

use crate::org::Org;
use crate::schema::FieldType;
use crate::value::Value;
use std::collections::BTreeMap;

const FIRST_NAMES: &[&str] = &[
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Margaret",
    "Dennis",
    "Barbara",
    "Ken",
    "Frances",
    "Edsger",
    "Radia",
    "Donald",
    "Hedy",
    "Tim",
    "Katherine",
    "John",
    "Sophie",
    "Niklaus",
    "Carol",
    "Guido",
    "Anita",
    "Bjarne",
    "Lynn",
    "James",
    "Mary",
    "Robert",
    "Jean",
    "Vint",
    "Annie",
    "Leslie",
    "Karen",
    "Brian",
];
const LAST_NAMES: &[&str] = &[
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Ritchie",
    "Liskov",
    "Thompson",
    "Allen",
    "Dijkstra",
    "Perlman",
    "Knuth",
    "Lamarr",
    "Berners-Lee",
    "Johnson",
    "McCarthy",
    "Wilson",
    "Wirth",
    "Shaw",
    "van Rossum",
    "Borg",
    "Stroustrup",
    "Conway",
    "Gosling",
    "Keller",
    "Tarjan",
    "Sammet",
    "Cerf",
    "Easley",
    "Lamport",
    "Jones",
    "Kernighan",
];
const COMPANY_WORDS: &[&str] = &[
    "Northwind",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Acme",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Cyberdyne",
    "Tyrell",
    "Wonka",
    "Aperture",
    "Massive",
    "Pied Piper",
    "Gringotts",
    "Oscorp",
    "Monarch",
    "Dunder",
];
const COMPANY_SUFFIXES: &[&str] = &[
    "Inc.",
    "LLC",
    "Group",
    "Systems",
    "Labs",
    "Holdings",
    "Partners",
    "Industries",
];
const CITIES: &[(&str, &str, &str)] = &[
    ("San Francisco", "CA", "USA"),
    ("New York", "NY", "USA"),
    ("Austin", "TX", "USA"),
    ("Chicago", "IL", "USA"),
    ("London", "", "United Kingdom"),
    ("Berlin", "", "Germany"),
    ("Paris", "", "France"),
    ("Toronto", "ON", "Canada"),
    ("Sydney", "NSW", "Australia"),
    ("Tokyo", "", "Japan"),
];
const TITLES: &[&str] = &[
    "CEO",
    "CTO",
    "VP Sales",
    "Head of Operations",
    "Engineer",
    "Buyer",
    "Account Manager",
    "Analyst",
];
const DEPARTMENTS: &[&str] = &[
    "Sales",
    "Engineering",
    "Finance",
    "Operations",
    "Marketing",
    "Support",
];
const SUBJECTS: &[&str] = &[
    "Cannot log in",
    "Invoice question",
    "Feature request",
    "Integration failing",
    "Slow dashboard",
    "Data export needed",
];

/// The demo production org's data set: hundreds of records per object.
pub fn demo_counts() -> BTreeMap<String, usize> {
    [
        ("Account", 300),
        ("Contact", 600),
        ("Lead", 300),
        ("Opportunity", 300),
        ("Case", 200),
        ("Campaign", 10),
        ("Product2", 8),
        ("Pricebook2", 1),
        ("PricebookEntry", 8),
        ("OpportunityLineItem", 150),
        ("OpportunityContactRole", 150),
        ("CampaignMember", 60),
        ("CaseComment", 100),
        ("Contract", 30),
        ("Order", 30),
        ("Task", 200),
        ("Event", 100),
        ("Note", 50),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), *v))
    .collect()
}

/// A small, fast, deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Seeds `counts` records per object (parents first, so children can reference them).
///
/// With `same_systemmodstamp`, every seeded record gets `now` as its `SystemModstamp`;
/// otherwise stamps spread over the previous 30 days, oldest first, several per second.
pub fn seed(
    org: &mut Org,
    counts: &BTreeMap<String, usize>,
    same_systemmodstamp: bool,
    now: i64,
) -> BTreeMap<String, usize> {
    let order = [
        "account",
        "contact",
        "lead",
        "opportunity",
        "case",
        "campaign",
        "product2",
        "pricebook2",
        "pricebookentry",
        "opportunitylineitem",
        "opportunitycontactrole",
        "campaignmember",
        "casecomment",
        "contract",
        "order",
        "task",
        "event",
        "note",
    ];
    let mut names: Vec<&String> = counts.keys().collect();
    names.sort_by_key(|n| {
        order
            .iter()
            .position(|o| n.eq_ignore_ascii_case(o))
            .unwrap_or(order.len())
    });
    let owner = org
        .table("User")
        .and_then(|t| t.records.first().map(|r| r.id().to_string()))
        .unwrap_or_default();
    let mut created = BTreeMap::new();
    for name in names {
        let n = counts[name];
        let count = if RELATED.iter().any(|o| o.eq_ignore_ascii_case(name)) {
            seed_related(org, name, n, same_systemmodstamp, now, &owner)
        } else {
            seed_object(org, name, n, same_systemmodstamp, now, &owner)
        };
        created.insert(name.clone(), count);
    }
    created
}

/// Objects seeded around the core ones: each record points at existing parents.
const RELATED: &[&str] = &[
    "Campaign",
    "Product2",
    "Pricebook2",
    "PricebookEntry",
    "OpportunityLineItem",
    "OpportunityContactRole",
    "CampaignMember",
    "CaseComment",
    "Contract",
    "Order",
    "Task",
    "Event",
    "Note",
];

/// Ids of up to 10,000 live records of an object.
fn live_ids(org: &Org, object: &str) -> Vec<String> {
    org.table(object)
        .map(|t| t.live().take(10_000).map(|r| r.id().to_string()).collect())
        .unwrap_or_default()
}

const PRODUCTS: &[&str] = &[
    "Ferry Cloud Starter",
    "Ferry Cloud Business",
    "Ferry Cloud Enterprise",
    "Onboarding Package",
    "Premium Support",
    "Data Migration",
    "Training Day",
    "API Add-on",
];

/// Seeds one of the `RELATED` objects with values that make sense together.
fn seed_related(
    org: &mut Org,
    object: &str,
    n: usize,
    same_stamp: bool,
    now: i64,
    owner: &str,
) -> usize {
    let Some(schema) = org.table(object).map(|t| t.schema.clone()) else {
        return 0;
    };
    let accounts = live_ids(org, "Account");
    let contacts = live_ids(org, "Contact");
    let opportunities = live_ids(org, "Opportunity");
    let cases = live_ids(org, "Case");
    let campaigns = live_ids(org, "Campaign");
    let products = live_ids(org, "Product2");
    let pricebooks = live_ids(org, "Pricebook2");
    let entries: Vec<(String, String, f64)> = org
        .table("PricebookEntry")
        .map(|t| {
            let at = |f: &str| t.schema.field_index(f).unwrap_or(usize::MAX);
            let (product, price) = (at("Product2Id"), at("UnitPrice"));
            t.live()
                .map(|r| {
                    let p = r.get(product).as_str().unwrap_or_default().to_string();
                    let price = match r.get(price) {
                        Value::Num(x) => *x,
                        _ => 0.0,
                    };
                    (r.id().to_string(), p, price)
                })
                .collect()
        })
        .unwrap_or_default();
    let existing = org.table(object).map_or(0, |t| t.records.len());
    let mut rng = Rng(0x05EE_D0B7 ^ (existing as u64) ^ (object.len() as u64 * 104_729));
    let today = (now / 86_400) as i32;
    let span: i64 = 30 * 86_400;
    if let Some(t) = org.table_mut(object) {
        t.reserve(n);
    }
    for i in 0..n {
        let seq = existing + i;
        let mut v = vec![Value::Null; schema.fields.len()];
        let mut set = |field: &str, val: Value| {
            if let Some(at) = schema.field_index(field) {
                v[at] = val;
            }
        };
        let pick_id = |rng: &mut Rng, ids: &[String]| {
            if ids.is_empty() {
                Value::Null
            } else {
                Value::str(&ids[rng.below(ids.len())])
            }
        };
        match schema.name.as_str() {
            "Campaign" => {
                let kind = rng.pick(&[
                    "Webinar",
                    "Conference",
                    "Email",
                    "Trade Show",
                    "Direct Mail",
                ]);
                set("Name", Value::str(format!("{kind} #{}", seq + 1)));
                set("Type", Value::str(kind));
                set(
                    "Status",
                    Value::str(rng.pick(&["Planned", "In Progress", "Completed"])),
                );
                let start = today - 60 + rng.below(120) as i32;
                set("StartDate", Value::Date(start));
                set("EndDate", Value::Date(start + 30));
                set("IsActive", Value::Bool(rng.below(4) > 0));
                set(
                    "BudgetedCost",
                    Value::Num((1 + rng.below(50)) as f64 * 1000.0),
                );
                set(
                    "ExpectedRevenue",
                    Value::Num((1 + rng.below(200)) as f64 * 1000.0),
                );
            }
            "Product2" => {
                set("Name", Value::str(PRODUCTS[seq % PRODUCTS.len()]));
                set("ProductCode", Value::str(format!("FC-{:04}", seq + 1)));
                set("IsActive", Value::Bool(true));
                set("Family", Value::str("None"));
            }
            "Pricebook2" => {
                set(
                    "Name",
                    Value::str(if seq == 0 {
                        "Standard Price Book".to_string()
                    } else {
                        format!("Price Book {}", seq + 1)
                    }),
                );
                set("IsActive", Value::Bool(true));
                set("IsStandard", Value::Bool(seq == 0));
            }
            "PricebookEntry" => {
                if !products.is_empty() {
                    let product = &products[seq % products.len()];
                    set("Product2Id", Value::str(product));
                    set(
                        "Name",
                        Value::str(PRODUCTS[seq % products.len() % PRODUCTS.len()]),
                    );
                }
                set(
                    "Pricebook2Id",
                    pick_id(&mut rng, &pricebooks[..pricebooks.len().min(1)]),
                );
                set("UnitPrice", Value::Num((1 + rng.below(100)) as f64 * 50.0));
                set("IsActive", Value::Bool(true));
            }
            "OpportunityLineItem" => {
                set("OpportunityId", pick_id(&mut rng, &opportunities));
                if !entries.is_empty() {
                    let (entry, product, price) = &entries[rng.below(entries.len())];
                    let quantity = (1 + rng.below(10)) as f64;
                    set("PricebookEntryId", Value::str(entry));
                    set("Product2Id", Value::str(product));
                    set("UnitPrice", Value::Num(*price));
                    set("ListPrice", Value::Num(*price));
                    set("Quantity", Value::Num(quantity));
                    set("TotalPrice", Value::Num(quantity * price));
                }
            }
            "OpportunityContactRole" => {
                set("OpportunityId", pick_id(&mut rng, &opportunities));
                set("ContactId", pick_id(&mut rng, &contacts));
                set(
                    "Role",
                    Value::str(rng.pick(&[
                        "Decision Maker",
                        "Economic Buyer",
                        "Evaluator",
                        "Influencer",
                        "Technical Buyer",
                    ])),
                );
                set("IsPrimary", Value::Bool(seq.is_multiple_of(3)));
            }
            "CampaignMember" => {
                set("CampaignId", pick_id(&mut rng, &campaigns));
                set("ContactId", pick_id(&mut rng, &contacts));
                set("Status", Value::str(rng.pick(&["Sent", "Responded"])));
            }
            "CaseComment" => {
                set("ParentId", pick_id(&mut rng, &cases));
                set(
                    "CommentBody",
                    Value::str(rng.pick(&[
                        "Customer called back.",
                        "Waiting on logs.",
                        "Fix deployed, please confirm.",
                        "Escalated to engineering.",
                    ])),
                );
                set("IsPublished", Value::Bool(rng.below(2) == 0));
            }
            "Contract" => {
                set("AccountId", pick_id(&mut rng, &accounts));
                set("ContractNumber", Value::str(format!("{:08}", seq + 100)));
                set(
                    "Status",
                    Value::str(rng.pick(&["Draft", "Activated", "In Approval Process"])),
                );
                set("StartDate", Value::Date(today - rng.below(365) as i32));
                set("ContractTerm", Value::Int([12, 24, 36][rng.below(3)]));
            }
            "Order" => {
                set("AccountId", pick_id(&mut rng, &accounts));
                set("OrderNumber", Value::str(format!("{:08}", seq + 100)));
                set("Status", Value::str(rng.pick(&["Draft", "Activated"])));
                set("EffectiveDate", Value::Date(today - rng.below(90) as i32));
                set("Name", Value::str(format!("Order {}", seq + 1)));
            }
            "Task" => {
                let status = rng.pick(&["Not Started", "In Progress", "Completed", "Deferred"]);
                set(
                    "Subject",
                    Value::str(rng.pick(&["Call", "Send Quote", "Follow up", "Email"])),
                );
                set("Status", Value::str(status));
                set("Priority", Value::str(rng.pick(&["High", "Normal", "Low"])));
                set("IsClosed", Value::Bool(status == "Completed"));
                set(
                    "ActivityDate",
                    Value::Date(today - 15 + rng.below(30) as i32),
                );
                set("WhoId", pick_id(&mut rng, &contacts));
                let what = pick_id(&mut rng, &accounts);
                set("AccountId", what.clone());
                set("WhatId", what);
                set("TaskSubtype", Value::str("Task"));
            }
            "Event" => {
                let start = now - 7 * 86_400 + rng.below(14 * 24) as i64 * 3600;
                set(
                    "Subject",
                    Value::str(rng.pick(&["Meeting", "Demo", "Lunch", "Quarterly review"])),
                );
                set("StartDateTime", Value::DateTime(start));
                set("EndDateTime", Value::DateTime(start + 3600));
                set("ActivityDateTime", Value::DateTime(start));
                set("ActivityDate", Value::Date(start.div_euclid(86_400) as i32));
                set("DurationInMinutes", Value::Int(60));
                set("WhoId", pick_id(&mut rng, &contacts));
                let what = pick_id(&mut rng, &accounts);
                set("AccountId", what.clone());
                set("WhatId", what);
                set("ShowAs", Value::str("Busy"));
                set("EventSubtype", Value::str("Event"));
            }
            "Note" => {
                set(
                    "Title",
                    Value::str(rng.pick(&[
                        "Call notes",
                        "Requirements",
                        "Pricing discussion",
                        "Next steps",
                    ])),
                );
                set(
                    "Body",
                    Value::str("Discussed the rollout plan and the timeline."),
                );
                set("ParentId", pick_id(&mut rng, &accounts));
            }
            _ => {}
        }
        let stamp = if same_stamp {
            now
        } else {
            now - span + (span * i as i64) / n.max(1) as i64
        };
        if org.insert_raw(object, v, owner, stamp).is_none() {
            return i;
        }
    }
    n
}

/// `prefix`, `n` zero-padded to `width` digits, `suffix`: without the formatting machinery,
/// as the seed writes millions of these.
fn numbered(prefix: &str, n: usize, width: usize, suffix: &str) -> Value {
    let mut digits = [b'0'; 20];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let start = at.min(digits.len().saturating_sub(width));
    // The exact length, so short texts stay inline (no heap allocation).
    let len = prefix.len() + (digits.len() - start) + suffix.len();
    let mut text = compact_str::CompactString::with_capacity(len);
    text.push_str(prefix);
    for &d in &digits[start..] {
        text.push(char::from(d));
    }
    text.push_str(suffix);
    Value::Str(text)
}

/// Fills fields of the standard objects that the first seed left empty, from the sequence
/// number alone (no draws from the generator, so the values seeded before stay the same).
fn fill_documented_fields(schema: &crate::schema::ObjectSchema, v: &mut Vec<Value>, seq: usize) {
    let mut set = |field: &str, val: Value| {
        if let Some(i) = schema.field_index(field) {
            if v.len() <= i {
                v.resize(i + 1, Value::Null);
            }
            if v[i].is_null() {
                v[i] = val;
            }
        }
    };
    let pick = |items: &[&'static str], salt: usize| items[(seq * 7 + salt) % items.len()];
    match schema.name.as_str() {
        "Account" => {
            set("AccountNumber", numbered("CD", 100_000 + seq, 6, ""));
            set("Rating", Value::str(pick(&["Hot", "Warm", "Cold"], 1)));
        }
        "Case" => {
            set(
                "Reason",
                Value::str(pick(
                    &[
                        "Installation",
                        "Performance",
                        "Breakdown",
                        "Feedback",
                        "Other",
                    ],
                    3,
                )),
            );
            set(
                "Type",
                Value::str(pick(
                    &[
                        "Mechanical",
                        "Electrical",
                        "Electronic",
                        "Structural",
                        "Other",
                    ],
                    5,
                )),
            );
        }
        "Opportunity" => {
            set(
                "NextStep",
                Value::str(pick(
                    &["Send proposal", "Schedule demo", "Follow up call"],
                    2,
                )),
            );
        }
        "Lead" => {
            set("Rating", Value::str(pick(&["Hot", "Warm", "Cold"], 4)));
        }
        _ => {}
    }
}

fn seed_object(
    org: &mut Org,
    object: &str,
    n: usize,
    same_stamp: bool,
    now: i64,
    owner: &str,
) -> usize {
    let account_ids: Vec<String> = org
        .table("Account")
        .map(|t| t.live().map(|r| r.id().to_string()).collect())
        .unwrap_or_default();
    let contact_ids: Vec<String> = if object.eq_ignore_ascii_case("case") {
        org.table("Contact")
            .map(|t| t.live().take(10_000).map(|r| r.id().to_string()).collect())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let Some(table) = org.table(object) else {
        return 0;
    };
    let schema = table.schema.clone();
    let existing = table.records.len();
    let idx = |f: &str| schema.field_index(f);
    let (first, last, email, phone, title, dept, account, city, country, state) = (
        idx("FirstName"),
        idx("LastName"),
        idx("Email"),
        idx("Phone"),
        idx("Title"),
        idx("Department"),
        idx("AccountId"),
        idx("MailingCity").or(idx("City")).or(idx("BillingCity")),
        idx("MailingCountry")
            .or(idx("Country"))
            .or(idx("BillingCountry")),
        idx("BillingState"),
    );
    if let Some(t) = org.table_mut(object) {
        t.reserve(n);
    }
    let span: i64 = 30 * 86_400;
    let mut rng = Rng(0x5EED ^ (existing as u64) ^ (object.len() as u64 * 7919));
    // Standard objects start at the width every record holds; the first record shows how wide
    // the seeded ones are, so later rows are allocated once at that width.
    let mut width = if schema.custom {
        schema.fields.len()
    } else {
        schema.value_floor()
    };
    for i in 0..n {
        let seq = existing + i;
        let mut v = vec![Value::Null; width];
        let set = |v: &mut Vec<Value>, at: Option<usize>, val: Value| {
            if let Some(i) = at {
                if v.len() <= i {
                    v.resize(i + 1, Value::Null);
                }
                v[i] = val;
            }
        };
        let fname = rng.pick(FIRST_NAMES);
        let lname = rng.pick(LAST_NAMES);
        let company = format!("{} {}", rng.pick(COMPANY_WORDS), rng.pick(COMPANY_SUFFIXES));
        let (c_city, c_state, c_country) = CITIES[rng.below(CITIES.len())];
        match schema.name.as_str() {
            "Account" => {
                set(&mut v, idx("Name"), Value::str(format!("{company} #{seq}")));
                set(
                    &mut v,
                    idx("Type"),
                    Value::str(rng.pick(&[
                        "Prospect",
                        "Customer - Direct",
                        "Customer - Channel",
                        "Partner",
                    ])),
                );
                set(
                    &mut v,
                    idx("Industry"),
                    Value::str(rng.pick(&[
                        "Banking",
                        "Energy",
                        "Healthcare",
                        "Retail",
                        "Technology",
                        "Media",
                    ])),
                );
                set(
                    &mut v,
                    idx("BillingStreet"),
                    Value::str(format!("{} Main Street", 1 + rng.below(999))),
                );
                set(&mut v, state, Value::str(c_state));
                set(
                    &mut v,
                    idx("BillingPostalCode"),
                    Value::str(format!("{:05}", rng.below(99_999))),
                );
                set(
                    &mut v,
                    idx("Website"),
                    Value::str(format!(
                        "https://www.{}.example",
                        company
                            .split(' ')
                            .next()
                            .unwrap_or("acme")
                            .to_ascii_lowercase()
                    )),
                );
                set(
                    &mut v,
                    idx("AnnualRevenue"),
                    Value::Num((rng.below(500) as f64) * 100_000.0),
                );
                set(
                    &mut v,
                    idx("NumberOfEmployees"),
                    Value::Int(1 + rng.below(20_000) as i64),
                );
            }
            "Opportunity" => {
                let stage = rng.pick(&[
                    "Prospecting",
                    "Qualification",
                    "Proposal/Price Quote",
                    "Negotiation/Review",
                    "Closed Won",
                    "Closed Lost",
                ]);
                set(
                    &mut v,
                    idx("Name"),
                    Value::str(format!("{company} - {} seats", 5 + rng.below(500))),
                );
                set(&mut v, idx("StageName"), Value::str(stage));
                set(
                    &mut v,
                    idx("Amount"),
                    Value::Num((1 + rng.below(400)) as f64 * 500.0),
                );
                set(
                    &mut v,
                    idx("CloseDate"),
                    Value::Date((now / 86_400) as i32 - 60 + rng.below(180) as i32),
                );
                set(
                    &mut v,
                    idx("Probability"),
                    Value::Num((rng.below(10) * 10) as f64),
                );
                set(
                    &mut v,
                    idx("IsClosed"),
                    Value::Bool(stage.starts_with("Closed")),
                );
                set(&mut v, idx("IsWon"), Value::Bool(stage == "Closed Won"));
            }
            "Case" => {
                let status = rng.pick(&["New", "Working", "Escalated", "Closed"]);
                set(&mut v, idx("Subject"), Value::str(rng.pick(SUBJECTS)));
                set(&mut v, idx("Status"), Value::str(status));
                set(
                    &mut v,
                    idx("Priority"),
                    Value::str(rng.pick(&["High", "Medium", "Low"])),
                );
                set(
                    &mut v,
                    idx("Origin"),
                    Value::str(rng.pick(&["Phone", "Email", "Web"])),
                );
                set(&mut v, idx("IsClosed"), Value::Bool(status == "Closed"));
                if !contact_ids.is_empty() {
                    set(
                        &mut v,
                        idx("ContactId"),
                        Value::str(&contact_ids[rng.below(contact_ids.len())]),
                    );
                }
            }
            _ => {}
        }
        if schema.name != "Account" {
            set(&mut v, first, Value::str(fname));
            set(&mut v, last, Value::str(lname));
            set(
                &mut v,
                email,
                Value::str(format!(
                    "{}.{}{}@{}.example",
                    fname.to_ascii_lowercase(),
                    lname.to_ascii_lowercase().replace(' ', ""),
                    seq,
                    company
                        .split(' ')
                        .next()
                        .unwrap_or("acme")
                        .to_ascii_lowercase()
                )),
            );
            set(&mut v, title, Value::str(rng.pick(TITLES)));
            set(&mut v, dept, Value::str(rng.pick(DEPARTMENTS)));
        }
        if schema.name == "Lead" {
            set(&mut v, idx("Company"), Value::str(&company));
            set(
                &mut v,
                idx("Status"),
                Value::str(rng.pick(&[
                    "Open - Not Contacted",
                    "Working - Contacted",
                    "Closed - Not Converted",
                ])),
            );
            set(&mut v, idx("IsConverted"), Value::Bool(false));
            set(
                &mut v,
                idx("LeadSource"),
                Value::str(rng.pick(&["Web", "Phone Inquiry", "Partner Referral"])),
            );
        }
        set(
            &mut v,
            phone,
            Value::str(format!("+1 415 555 {:04}", rng.below(10_000))),
        );
        set(&mut v, city, Value::str(c_city));
        set(&mut v, country, Value::str(c_country));
        if !account_ids.is_empty() && schema.name != "Account" && schema.name != "Lead" {
            set(
                &mut v,
                account,
                Value::str(&account_ids[rng.below(account_ids.len())]),
            );
        }
        if schema.custom {
            for (fi, f) in schema
                .fields
                .iter()
                .enumerate()
                .skip(crate::schema::sys::COUNT)
            {
                if !v[fi].is_null() || !f.createable {
                    continue;
                }
                v[fi] = match f.field_type {
                    FieldType::String | FieldType::Textarea => {
                        Value::str(format!("{} {seq}", f.label))
                    }
                    FieldType::Double | FieldType::Currency | FieldType::Percent => {
                        Value::Num(rng.below(100_000) as f64 / 100.0)
                    }
                    FieldType::Int => Value::Int(rng.below(1000) as i64),
                    FieldType::Boolean => Value::Bool(rng.below(2) == 0),
                    FieldType::Date => Value::Date((now / 86_400) as i32 - rng.below(365) as i32),
                    FieldType::Datetime => Value::DateTime(now - rng.below(365 * 86_400) as i64),
                    FieldType::Picklist => f
                        .picklist_values
                        .first()
                        .map(Value::str)
                        .unwrap_or(Value::Null),
                    _ => Value::Null,
                };
            }
        }
        fill_documented_fields(&schema, &mut v, seq);
        width = width.max(v.len());
        let stamp = if same_stamp {
            now
        } else {
            now - span + (span * i as i64) / n.max(1) as i64
        };
        if org.insert_raw(object, v, owner, stamp).is_none() {
            return i;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_pads_and_wraps_like_the_format_it_replaces() {
        assert_eq!(numbered("CD", 100_042, 6, ""), Value::str("CD100042"));
        assert_eq!(
            numbered("+1 415 555 ", 7, 4, ""),
            Value::str("+1 415 555 0007")
        );
        assert_eq!(
            numbered("", 12, 1, " Market Street"),
            Value::str("12 Market Street")
        );
        assert_eq!(numbered("", 0, 5, ""), Value::str("00000"));
    }
}
