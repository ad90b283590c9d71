//! The SOQL parser: turns query text into a `Query`, with Salesforce's `MALFORMED_QUERY` errors for anything outside the grammar.

use super::ast::{
    AggregateFn, CompareOp, Condition, FieldPath, FieldsKind, Literal, LiteralValue, OrderItem,
    PeriodUnit, Query, RelativeDate, SelectItem,
};
use super::lexer::{tokenize, Tok, Token};
use super::{SoqlError, MALFORMED_QUERY};
use crate::value;

/// Words that end a field list or clause and so cannot be field names or aliases.
const RESERVED: &[&str] = &[
    "select", "from", "where", "and", "or", "not", "in", "like", "null", "true", "false", "order",
    "by", "asc", "desc", "nulls", "first", "last", "limit", "offset", "group", "having", "for",
    "with", "using", "includes", "excludes",
];

/// The single-period date literals: `THIS_MONTH`, `LAST_YEAR`, `NEXT_QUARTER`, ….
fn period_literal(word: &str) -> Option<(PeriodUnit, i32)> {
    let (shift, unit) = word.split_once('_')?;
    let shift = match shift {
        "THIS" => 0,
        "LAST" => -1,
        "NEXT" => 1,
        _ => return None,
    };
    let unit = match unit {
        "WEEK" => PeriodUnit::Week,
        "MONTH" => PeriodUnit::Month,
        "QUARTER" => PeriodUnit::Quarter,
        "YEAR" => PeriodUnit::Year,
        _ => return None,
    };
    Some((unit, shift))
}

/// Parses SOQL text. Keywords are case-insensitive; names are resolved later by `execute`.
pub fn parse(text: &str) -> Result<Query, SoqlError> {
    let tokens = tokenize(text)?;
    let mut p = Parser {
        text,
        tokens,
        pos: 0,
        depth: 0,
    };
    p.query()
}

struct Parser<'t> {
    text: &'t str,
    tokens: Vec<Token>,
    pos: usize,
    /// 1 inside a parent-to-child subquery (which cannot hold another one).
    depth: u8,
}

fn is_reserved(word: &str) -> bool {
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(word))
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        self.peek_at(0)
    }

    fn peek_at(&self, ahead: usize) -> &Tok {
        self.tokens
            .get(self.pos + ahead)
            .or_else(|| self.tokens.last())
            .map_or(&Tok::Eof, |t| &t.tok)
    }

    fn offset(&self) -> usize {
        self.tokens
            .get(self.pos)
            .map_or(self.text.len(), |t| t.offset)
    }

    fn bump(&mut self) -> Tok {
        let tok = self.peek().clone();
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        tok
    }

    fn unexpected(&self) -> SoqlError {
        SoqlError::located(
            MALFORMED_QUERY,
            self.text,
            self.offset(),
            &format!("unexpected token: {}", self.peek().describe()),
        )
    }

    fn unsupported(&self, what: &str) -> SoqlError {
        SoqlError::located(
            MALFORMED_QUERY,
            self.text,
            self.offset(),
            &format!("{what} is not supported by the emulator"),
        )
    }

    fn is_keyword(&self, word: &str) -> bool {
        self.is_keyword_at(0, word)
    }

    fn is_keyword_at(&self, ahead: usize, word: &str) -> bool {
        matches!(self.peek_at(ahead), Tok::Ident(s) if s.eq_ignore_ascii_case(word))
    }

    fn eat_keyword(&mut self, word: &str) -> bool {
        if self.is_keyword(word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_keyword(&mut self, word: &str) -> Result<(), SoqlError> {
        if self.eat_keyword(word) {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn expect(&mut self, tok: &Tok) -> Result<(), SoqlError> {
        if self.peek() == tok {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn query(&mut self) -> Result<Query, SoqlError> {
        self.expect_keyword("select")?;
        let select = self.select_list()?;
        self.expect_keyword("from")?;
        let object_offset = self.offset();
        // Reserved words are allowed here so that `FROM Order` reports an unknown object.
        let mut object = match self.bump() {
            Tok::Ident(name) => name,
            _ => {
                self.pos = self.pos.saturating_sub(1);
                return Err(self.unexpected());
            }
        };
        // A subquery names its relationship, optionally through the parent: `Account.Contacts`.
        while self.depth > 0 && self.peek() == &Tok::Dot {
            let Tok::Ident(part) = self.peek_at(1).clone() else {
                break;
            };
            self.pos += 2;
            object.push('.');
            object.push_str(&part);
        }
        let alias = match self.peek() {
            Tok::Ident(a) if !is_reserved(a) => {
                let a = a.clone();
                self.pos += 1;
                Some(a)
            }
            _ => None,
        };
        let condition = if self.eat_keyword("where") {
            Some(self.condition()?)
        } else {
            None
        };
        if self.is_keyword("with") {
            self.pos += 1;
            let known = ["security_enforced", "user_mode", "system_mode"];
            match self.peek() {
                Tok::Ident(w) if known.iter().any(|k| k.eq_ignore_ascii_case(w)) => self.pos += 1,
                _ => return Err(self.unexpected()),
            }
        }
        let mut group_by = Vec::new();
        if self.is_keyword("group") && self.is_keyword_at(1, "by") {
            self.pos += 2;
            loop {
                group_by.push(self.field_path()?);
                if self.peek() != &Tok::Comma {
                    break;
                }
                self.pos += 1;
            }
            if self.is_keyword("having") {
                return Err(self.unsupported("HAVING"));
            }
        }
        let mut order_by = Vec::new();
        if self.is_keyword("order") {
            self.pos += 1;
            self.expect_keyword("by")?;
            loop {
                order_by.push(self.order_item()?);
                if self.peek() != &Tok::Comma {
                    break;
                }
                self.pos += 1;
            }
        }
        let limit = if self.eat_keyword("limit") {
            Some(self.unsigned()?)
        } else {
            None
        };
        let offset = if self.eat_keyword("offset") {
            let at = self.offset();
            let n = self.unsigned()?;
            if n > 2000 {
                return Err(SoqlError::located(
                    MALFORMED_QUERY,
                    self.text,
                    at,
                    "Maximum SOQL offset allowed is 2000",
                ));
            }
            Some(n)
        } else {
            None
        };
        if self.is_keyword("for") {
            self.pos += 1;
            if !(self.eat_keyword("view")
                || self.eat_keyword("reference")
                || self.eat_keyword("update"))
            {
                return Err(self.unexpected());
            }
        }
        let end = if self.depth > 0 {
            Tok::RParen
        } else {
            Tok::Eof
        };
        if self.peek() != &end {
            return Err(self.unexpected());
        }
        Ok(Query {
            text: self.text.to_string(),
            select,
            object,
            object_offset,
            alias,
            condition,
            group_by,
            order_by,
            limit,
            offset,
        })
    }

    fn unsigned(&mut self) -> Result<u64, SoqlError> {
        match self.peek() {
            Tok::Number(n) => match n.parse::<u64>() {
                Ok(v) => {
                    self.pos += 1;
                    Ok(v)
                }
                Err(_) => Err(self.unexpected()),
            },
            _ => Err(self.unexpected()),
        }
    }

    fn select_list(&mut self) -> Result<Vec<SelectItem>, SoqlError> {
        let mut items = Vec::new();
        loop {
            items.push(self.select_item()?);
            if self.peek() != &Tok::Comma {
                break;
            }
            self.pos += 1;
        }
        let has_count = items.iter().any(|i| matches!(i, SelectItem::Count));
        if has_count && items.len() > 1 {
            return Err(SoqlError::new(
                MALFORMED_QUERY,
                "COUNT() must be the only element in the SELECT list",
            ));
        }
        Ok(items)
    }

    fn select_item(&mut self) -> Result<SelectItem, SoqlError> {
        let start = self.offset();
        match self.peek().clone() {
            Tok::LParen if self.depth == 0 && self.is_keyword_at(1, "select") => {
                self.pos += 1;
                self.depth += 1;
                let inner = self.query();
                self.depth -= 1;
                let inner = inner?;
                self.expect(&Tok::RParen)?;
                Ok(SelectItem::Subquery {
                    query: Box::new(inner),
                    offset: start,
                })
            }
            Tok::LParen => Err(self.unexpected()),
            Tok::Ident(word)
                if word.eq_ignore_ascii_case("typeof")
                    && matches!(self.peek_at(1), Tok::Ident(_)) =>
            {
                self.pos += 1;
                self.type_of(start)
            }
            Tok::Ident(name) if self.peek_at(1) == &Tok::LParen => {
                let upper = name.to_ascii_uppercase();
                let func = match upper.as_str() {
                    "COUNT" => AggregateFn::Count,
                    "COUNT_DISTINCT" => AggregateFn::CountDistinct,
                    "MIN" => AggregateFn::Min,
                    "MAX" => AggregateFn::Max,
                    "SUM" => AggregateFn::Sum,
                    "AVG" => AggregateFn::Avg,
                    "FIELDS" => {
                        self.pos += 2;
                        let kind = match self.peek() {
                            Tok::Ident(k) if k.eq_ignore_ascii_case("all") => FieldsKind::All,
                            Tok::Ident(k) if k.eq_ignore_ascii_case("standard") => {
                                FieldsKind::Standard
                            }
                            Tok::Ident(k) if k.eq_ignore_ascii_case("custom") => FieldsKind::Custom,
                            _ => return Err(self.unexpected()),
                        };
                        self.pos += 1;
                        self.expect(&Tok::RParen)?;
                        return Ok(SelectItem::Fields {
                            kind,
                            offset: start,
                        });
                    }
                    _ => return Err(self.unsupported(&format!("The function {name}()"))),
                };
                self.pos += 2;
                if func == AggregateFn::Count && self.peek() == &Tok::RParen {
                    self.pos += 1;
                    return Ok(SelectItem::Count);
                }
                let field = self.field_path()?;
                self.expect(&Tok::RParen)?;
                let alias = match self.peek() {
                    Tok::Ident(alias) if !is_reserved(alias) => {
                        let alias = alias.clone();
                        self.pos += 1;
                        Some(alias)
                    }
                    _ => None,
                };
                Ok(SelectItem::Aggregate { func, field, alias })
            }
            _ => Ok(SelectItem::Field(self.field_path()?)),
        }
    }

    /// `TYPEOF rel WHEN T THEN f, … [ELSE f, …] END`, after `TYPEOF`.
    fn type_of(&mut self, offset: usize) -> Result<SelectItem, SoqlError> {
        let relationship = match self.bump() {
            Tok::Ident(r) => r,
            _ => return Err(self.unexpected()),
        };
        let names = |p: &mut Self| -> Result<Vec<String>, SoqlError> {
            let mut out = Vec::new();
            loop {
                match p.peek().clone() {
                    Tok::Ident(f)
                        if !is_reserved(&f)
                            && !["when", "else", "end"]
                                .iter()
                                .any(|k| k.eq_ignore_ascii_case(&f)) =>
                    {
                        p.pos += 1;
                        out.push(f);
                    }
                    _ => return Err(p.unexpected()),
                }
                if p.peek() != &Tok::Comma {
                    return Ok(out);
                }
                p.pos += 1;
            }
        };
        let mut whens = Vec::new();
        while self.eat_keyword("when") {
            let object = match self.bump() {
                Tok::Ident(o) => o,
                _ => return Err(self.unexpected()),
            };
            self.expect_keyword("then")?;
            whens.push((object, names(self)?));
        }
        if whens.is_empty() {
            return Err(self.unexpected());
        }
        let otherwise = if self.eat_keyword("else") {
            names(self)?
        } else {
            Vec::new()
        };
        self.expect_keyword("end")?;
        Ok(SelectItem::TypeOf {
            relationship,
            whens,
            otherwise,
            offset,
        })
    }

    fn field_path(&mut self) -> Result<FieldPath, SoqlError> {
        let offset = self.offset();
        let mut parts = Vec::new();
        loop {
            match self.peek() {
                Tok::Ident(name) if !(parts.is_empty() && is_reserved(name)) => {
                    parts.push(name.clone());
                    self.pos += 1;
                }
                _ => return Err(self.unexpected()),
            }
            if self.peek() != &Tok::Dot {
                break;
            }
            self.pos += 1;
        }
        Ok(FieldPath { parts, offset })
    }

    fn order_item(&mut self) -> Result<OrderItem, SoqlError> {
        let field = self.field_path()?;
        let descending = if self.eat_keyword("desc") {
            true
        } else {
            self.eat_keyword("asc");
            false
        };
        let nulls_first = if self.eat_keyword("nulls") {
            if self.eat_keyword("first") {
                true
            } else if self.eat_keyword("last") {
                false
            } else {
                return Err(self.unexpected());
            }
        } else {
            !descending
        };
        Ok(OrderItem {
            field,
            descending,
            nulls_first,
        })
    }

    /// A chain of conditions joined by one kind of connective; Salesforce requires
    /// parentheses to mix AND and OR.
    fn condition(&mut self) -> Result<Condition, SoqlError> {
        let first = self.unary()?;
        let (is_and, other) = if self.is_keyword("and") {
            (true, "or")
        } else if self.is_keyword("or") {
            (false, "and")
        } else {
            return Ok(first);
        };
        let word = if is_and { "and" } else { "or" };
        let mut parts = vec![first];
        while self.eat_keyword(word) {
            parts.push(self.unary()?);
        }
        if self.is_keyword(other) {
            return Err(self.unexpected());
        }
        Ok(if is_and {
            Condition::And(parts)
        } else {
            Condition::Or(parts)
        })
    }

    fn unary(&mut self) -> Result<Condition, SoqlError> {
        if self.eat_keyword("not") {
            return Ok(Condition::Not(Box::new(self.unary()?)));
        }
        if self.peek() == &Tok::LParen {
            self.pos += 1;
            let inner = self.condition()?;
            self.expect(&Tok::RParen)?;
            return Ok(inner);
        }
        let field = self.field_path()?;
        let negated_in = self.is_keyword("not") && self.is_keyword_at(1, "in");
        if (negated_in || self.is_keyword("in"))
            && self.peek_at(if negated_in { 2 } else { 1 }) == &Tok::LParen
            && self.is_keyword_at(if negated_in { 3 } else { 2 }, "select")
        {
            // A semi-join (anti-join with NOT): `Id IN (SELECT AccountId FROM Contact …)`.
            self.pos += if negated_in { 3 } else { 2 };
            if self.depth > 0 {
                return Err(self.unexpected());
            }
            self.depth += 1;
            let inner = self.query();
            self.depth -= 1;
            let inner = inner?;
            self.expect(&Tok::RParen)?;
            return Ok(Condition::InQuery {
                field,
                negated: negated_in,
                query: Box::new(inner),
            });
        }
        if self.is_keyword("not") && self.is_keyword_at(1, "in") {
            self.pos += 2;
            let values = self.value_list()?;
            return Ok(Condition::In {
                field,
                negated: true,
                values,
            });
        }
        if self.eat_keyword("in") {
            let values = self.value_list()?;
            return Ok(Condition::In {
                field,
                negated: false,
                values,
            });
        }
        if self.is_keyword("like") {
            self.pos += 1;
            let offset = self.offset();
            return match self.bump() {
                Tok::Str { raw, .. } => Ok(Condition::Like {
                    field,
                    raw_pattern: raw,
                    offset,
                }),
                _ => {
                    self.pos = self.pos.saturating_sub(1);
                    Err(self.unexpected())
                }
            };
        }
        if self.is_keyword("includes") || self.is_keyword("excludes") {
            return Err(self.unsupported("INCLUDES/EXCLUDES"));
        }
        let op = match self.peek() {
            Tok::Eq => CompareOp::Eq,
            Tok::Ne => CompareOp::Ne,
            Tok::Lt => CompareOp::Lt,
            Tok::Le => CompareOp::Le,
            Tok::Gt => CompareOp::Gt,
            Tok::Ge => CompareOp::Ge,
            _ => return Err(self.unexpected()),
        };
        self.pos += 1;
        let value = self.literal()?;
        Ok(Condition::Compare { field, op, value })
    }

    fn value_list(&mut self) -> Result<Vec<Literal>, SoqlError> {
        self.expect(&Tok::LParen)?;
        if self.is_keyword("select") {
            return Err(self.unsupported("A semi-join subquery"));
        }
        let mut values = Vec::new();
        loop {
            values.push(self.literal()?);
            if self.peek() != &Tok::Comma {
                break;
            }
            self.pos += 1;
        }
        self.expect(&Tok::RParen)?;
        Ok(values)
    }

    fn literal(&mut self) -> Result<Literal, SoqlError> {
        let offset = self.offset();
        let value = match self.peek().clone() {
            Tok::Str { value, .. } => LiteralValue::Str(value),
            Tok::Number(n) => {
                let value: f64 = n.parse().map_err(|_| self.unexpected())?;
                if !value.is_finite() {
                    return Err(self.unexpected());
                }
                let int = if n.contains(['.', 'e', 'E']) {
                    None
                } else {
                    n.parse::<i64>().ok()
                };
                LiteralValue::Number { value, int }
            }
            Tok::DateLit(d) => {
                if d.contains(['T', 't']) {
                    match value::parse_datetime(&d.to_ascii_uppercase()) {
                        Some(secs) => LiteralValue::DateTime(secs),
                        None => return Err(self.bad_literal(&d)),
                    }
                } else {
                    match value::parse_date(&d) {
                        Some(days) => LiteralValue::Date(days),
                        None => return Err(self.bad_literal(&d)),
                    }
                }
            }
            Tok::Ident(word) => {
                let upper = word.to_ascii_uppercase();
                match upper.as_str() {
                    "NULL" => LiteralValue::Null,
                    "TRUE" => LiteralValue::Bool(true),
                    "FALSE" => LiteralValue::Bool(false),
                    "TODAY" => LiteralValue::Relative(RelativeDate::Today),
                    "YESTERDAY" => LiteralValue::Relative(RelativeDate::Yesterday),
                    "TOMORROW" => LiteralValue::Relative(RelativeDate::Tomorrow),
                    "LAST_90_DAYS" => LiteralValue::Relative(RelativeDate::LastNDays(90)),
                    "NEXT_90_DAYS" => LiteralValue::Relative(RelativeDate::NextNDays(90)),
                    named if period_literal(named).is_some() => {
                        let Some((unit, shift)) = period_literal(named) else {
                            return Err(self.unexpected());
                        };
                        LiteralValue::Relative(RelativeDate::Period {
                            unit,
                            shift,
                            count: 1,
                        })
                    }
                    "LAST_N_WEEKS" | "NEXT_N_WEEKS" | "LAST_N_MONTHS" | "NEXT_N_MONTHS"
                    | "LAST_N_QUARTERS" | "NEXT_N_QUARTERS" | "LAST_N_YEARS" | "NEXT_N_YEARS" => {
                        self.pos += 1;
                        self.expect(&Tok::Colon)?;
                        let n = match self.peek() {
                            Tok::Number(n) => n.parse::<u32>().ok().filter(|n| *n <= 10_000),
                            _ => None,
                        };
                        let Some(n) = n else {
                            return Err(self.unexpected());
                        };
                        let unit = if upper.ends_with("WEEKS") {
                            PeriodUnit::Week
                        } else if upper.ends_with("MONTHS") {
                            PeriodUnit::Month
                        } else if upper.ends_with("QUARTERS") {
                            PeriodUnit::Quarter
                        } else {
                            PeriodUnit::Year
                        };
                        let shift = if upper.starts_with("LAST") {
                            -(n as i32)
                        } else {
                            1
                        };
                        LiteralValue::Relative(RelativeDate::Period {
                            unit,
                            shift,
                            count: n,
                        })
                    }
                    "LAST_N_DAYS" | "NEXT_N_DAYS" | "N_DAYS_AGO" => {
                        self.pos += 1;
                        self.expect(&Tok::Colon)?;
                        let n = match self.peek() {
                            Tok::Number(n) => n.parse::<u32>().ok(),
                            _ => None,
                        };
                        let Some(n) = n else {
                            return Err(self.unexpected());
                        };
                        let rel = match upper.as_str() {
                            "LAST_N_DAYS" => RelativeDate::LastNDays(n),
                            "NEXT_N_DAYS" => RelativeDate::NextNDays(n),
                            _ => RelativeDate::NDaysAgo(n),
                        };
                        LiteralValue::Relative(rel)
                    }
                    _ => return Err(self.unexpected()),
                }
            }
            _ => return Err(self.unexpected()),
        };
        self.pos += 1;
        Ok(Literal { value, offset })
    }

    fn bad_literal(&self, written: &str) -> SoqlError {
        SoqlError::located(
            MALFORMED_QUERY,
            self.text,
            self.offset(),
            &format!("unexpected token: {written}"),
        )
    }
}
