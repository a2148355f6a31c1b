//! Hand-written Postgres statements that Postgres prepares once per connection.
//!
//! Diesel never caches a `sql_query` (its text could be anything), so every hand-written
//! statement on the hot path — the claim, the batched completion, the row locks, the multi-row
//! event and delivery inserts, the inbound key, the commit announcement — was parsed and
//! planned again on each call: measured at 500 events/s, parsing alone was 0.54 ms of the
//! 2.5 ms Postgres spent on statements per event, and 0.11 ms once these were prepared. A [`Prepared`] statement is
//! fixed text with typed parameters; diesel's statement cache keys it by that text, so it is
//! parsed and planned once per pooled connection.
//!
//! Parameters are always bound, never spliced into the text: the text is a `&'static str` (or
//! built only from constants), and `$n` placeholders are replaced by bind parameters in order.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Bool, Integer, Nullable, Text, Untyped};
use diesel::QueryResult;
use std::borrow::Cow;

/// One parameter value with its SQL type.
pub(crate) enum Param {
    Text(String),
    BigInt(i64),
    Bool(bool),
    NullableText(Option<String>),
    TextArray(Vec<String>),
    IntArray(Vec<i32>),
    BigIntArray(Vec<i64>),
    BoolArray(Vec<bool>),
    NullableIntArray(Vec<Option<i32>>),
    NullableBigIntArray(Vec<Option<i64>>),
    NullableTextArray(Vec<Option<String>>),
}

impl Param {
    fn bind<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        match self {
            Param::Text(v) => out.push_bind_param::<Text, _>(v),
            Param::BigInt(v) => out.push_bind_param::<BigInt, _>(v),
            Param::Bool(v) => out.push_bind_param::<Bool, _>(v),
            Param::NullableText(v) => out.push_bind_param::<Nullable<Text>, _>(v),
            Param::TextArray(v) => out.push_bind_param::<Array<Text>, _>(v),
            Param::IntArray(v) => out.push_bind_param::<Array<Integer>, _>(v),
            Param::BigIntArray(v) => out.push_bind_param::<Array<BigInt>, _>(v),
            Param::BoolArray(v) => out.push_bind_param::<Array<Bool>, _>(v),
            Param::NullableIntArray(v) => out.push_bind_param::<Array<Nullable<Integer>>, _>(v),
            Param::NullableBigIntArray(v) => out.push_bind_param::<Array<Nullable<BigInt>>, _>(v),
            Param::NullableTextArray(v) => out.push_bind_param::<Array<Nullable<Text>>, _>(v),
        }
    }
}

/// A statement of fixed text whose `$1`, `$2`, … are bound to `params` (a placeholder may
/// appear more than once). Run it with diesel-async's `execute` or `load` (rows by name).
pub(crate) struct Prepared {
    sql: Cow<'static, str>,
    params: Vec<Param>,
}

impl Prepared {
    /// `sql` with its parameters, in placeholder order (`$1` is `params[0]`).
    pub fn new(sql: impl Into<Cow<'static, str>>, params: Vec<Param>) -> Self {
        Self {
            sql: sql.into(),
            params,
        }
    }
}

impl QueryId for Prepared {
    type QueryId = ();
    // Keyed by its text in the statement cache.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Prepared {
    type SqlType = Untyped;
}

impl QueryFragment<Pg> for Prepared {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let mut rest: &str = &self.sql;
        while let Some(at) = rest.find('$') {
            let digits = rest[at + 1..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            if digits == 0 {
                out.push_sql(&rest[..=at]);
                rest = &rest[at + 1..];
                continue;
            }
            out.push_sql(&rest[..at]);
            let number: usize = rest[at + 1..at + 1 + digits]
                .parse()
                .map_err(|_| placeholder_error(&rest[at..at + 1 + digits]))?;
            let param = number
                .checked_sub(1)
                .and_then(|i| self.params.get(i))
                .ok_or_else(|| placeholder_error(&rest[at..at + 1 + digits]))?;
            param.bind(&mut out)?;
            rest = &rest[at + 1 + digits..];
        }
        out.push_sql(rest);
        Ok(())
    }
}

fn placeholder_error(placeholder: &str) -> diesel::result::Error {
    diesel::result::Error::QueryBuilderError(
        format!("statement placeholder {placeholder} has no parameter").into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::query_builder::QueryBuilder;

    fn text(statement: &Prepared) -> String {
        let mut builder = diesel::pg::PgQueryBuilder::default();
        statement.to_sql(&mut builder, &Pg).unwrap();
        builder.finish()
    }

    #[test]
    fn placeholders_become_bind_parameters_in_order_and_repeats_bind_again() {
        let statement = Prepared::new(
            "SELECT $2, $1::text[], $2 WHERE x = '$'",
            vec![Param::TextArray(vec![]), Param::BigInt(1)],
        );
        assert_eq!(text(&statement), "SELECT $1, $2::text[], $3 WHERE x = '$'");
        assert!(statement.is_safe_to_cache_prepared(&Pg).unwrap());
    }

    #[test]
    fn a_placeholder_without_a_parameter_is_an_error_not_a_panic() {
        let statement = Prepared::new("SELECT $3", vec![Param::Bool(true)]);
        let mut builder = diesel::pg::PgQueryBuilder::default();
        assert!(statement.to_sql(&mut builder, &Pg).is_err());
    }
}
