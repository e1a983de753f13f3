//! The two column types whose encoding differs between the backends, so that one generated
//! `schema.rs` serves both: PostgreSQL stores them natively, SQLite as text.
//!
//! `diesel.toml` imports these in place of diesel's own `Uuid` and `Timestamptz`, which have
//! no SQLite encoding. On SQLite the text is what the store has always written, so existing
//! files keep working: UUIDs hyphenated, times as fixed-width RFC 3339 with microseconds and
//! `Z` (fixed width keeps text order equal to time order, which `ORDER BY created_at` needs).

use chrono::{DateTime, SecondsFormat, Utc};
use diesel::deserialize::{self, FromSql};
use diesel::expression::AsExpression;
// What `#[derive(AsExpression)]` expands to; the derive cannot be put on foreign types.
use diesel::internal::derives::as_expression::Bound;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sqlite::{Sqlite, SqliteValue};

/// A UUID: `uuid` on PostgreSQL, hyphenated text on SQLite.
#[derive(
    Debug, Clone, Copy, Default, diesel::sql_types::SqlType, diesel::query_builder::QueryId,
)]
#[diesel(postgres_type(oid = 2950, array_oid = 2951))]
#[diesel(sqlite_type(name = "Text"))]
pub struct Uuid;

/// A point in time: `timestamptz` on PostgreSQL, RFC 3339 text on SQLite.
#[derive(
    Debug, Clone, Copy, Default, diesel::sql_types::SqlType, diesel::query_builder::QueryId,
)]
#[diesel(postgres_type(oid = 1184, array_oid = 1185))]
#[diesel(sqlite_type(name = "Text"))]
pub struct Timestamptz;

// The `table!` macro gives every column of a type named `Timestamptz` `+` and `-` with an
// interval, as for diesel's own type; the store never uses them.
impl diesel::sql_types::ops::Add for Timestamptz {
    type Rhs = diesel::sql_types::Interval;
    type Output = Timestamptz;
}

impl diesel::sql_types::ops::Sub for Timestamptz {
    type Rhs = diesel::sql_types::Interval;
    type Output = Timestamptz;
}

// Times compare the same on both: natively, and as fixed-width text (see above). The trend's
// first bucket is read with `min`.
impl diesel::sql_types::SqlOrd for Timestamptz {}

/// How a UUID is written on SQLite.
pub(super) fn sqlite_uuid(id: &uuid::Uuid) -> String {
    id.hyphenated().to_string()
}

/// How a time is written on SQLite.
pub(super) fn sqlite_time(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A value bound as one of the types above: `Bind(id)` in a filter, `serialize_as` in an
/// insert. Diesel binds `uuid::Uuid` and `DateTime<Utc>` only as its own types, and coherence
/// forbids adding `AsExpression` impls to foreign types, so they go through this local wrapper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bind<T>(pub T);

impl<T> From<T> for Bind<T> {
    fn from(value: T) -> Self {
        Bind(value)
    }
}

/// `Bind<rust>` stands for `sql` in queries, serialised as `rust` is on each backend.
macro_rules! bind_as {
    ($rust:ty => $sql:ty) => {
        impl AsExpression<$sql> for Bind<$rust> {
            type Expression = Bound<$sql, Self>;
            fn as_expression(self) -> Self::Expression {
                Bound::new(self)
            }
        }
        impl ToSql<$sql, Pg> for Bind<$rust> {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                <$rust as ToSql<$sql, Pg>>::to_sql(&self.0, out)
            }
        }
        impl ToSql<$sql, Sqlite> for Bind<$rust> {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
                <$rust as ToSql<$sql, Sqlite>>::to_sql(&self.0, out)
            }
        }
    };
}

bind_as!(uuid::Uuid => Uuid);
bind_as!(DateTime<Utc> => Timestamptz);

impl ToSql<Uuid, Pg> for uuid::Uuid {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <uuid::Uuid as ToSql<diesel::sql_types::Uuid, Pg>>::to_sql(self, out)
    }
}

impl FromSql<Uuid, Pg> for uuid::Uuid {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        <uuid::Uuid as FromSql<diesel::sql_types::Uuid, Pg>>::from_sql(value)
    }
}

impl ToSql<Uuid, Sqlite> for uuid::Uuid {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(sqlite_uuid(self));
        Ok(IsNull::No)
    }
}

impl FromSql<Uuid, Sqlite> for uuid::Uuid {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<diesel::sql_types::Text, Sqlite>>::from_sql(value)?;
        uuid::Uuid::parse_str(&text).map_err(|e| format!("bad uuid {text:?}: {e}").into())
    }
}

impl ToSql<Timestamptz, Pg> for DateTime<Utc> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <DateTime<Utc> as ToSql<diesel::sql_types::Timestamptz, Pg>>::to_sql(self, out)
    }
}

impl FromSql<Timestamptz, Pg> for DateTime<Utc> {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        <DateTime<Utc> as FromSql<diesel::sql_types::Timestamptz, Pg>>::from_sql(value)
    }
}

impl ToSql<Timestamptz, Sqlite> for DateTime<Utc> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(sqlite_time(self));
        Ok(IsNull::No)
    }
}

impl FromSql<Timestamptz, Sqlite> for DateTime<Utc> {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<diesel::sql_types::Text, Sqlite>>::from_sql(value)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| format!("bad timestamp {text:?}: {e}").into())
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};
    use diesel::sql_types::Text;
    use diesel::{sql_query, Connection, QueryableByName, RunQueryDsl, SqliteConnection};

    use super::{Timestamptz, Uuid};

    #[derive(QueryableByName, Debug, PartialEq)]
    struct Stored {
        #[diesel(sql_type = Text)]
        text: String,
    }

    #[derive(QueryableByName, Debug, PartialEq)]
    struct Read {
        #[diesel(sql_type = Uuid)]
        id: uuid::Uuid,
        #[diesel(sql_type = Timestamptz)]
        at: DateTime<Utc>,
    }

    // SQLite files written before the shared schema hold exactly this text; it must still read
    // back, and new rows must be written the same way.
    #[test]
    fn sqlite_keeps_the_text_existing_files_hold() {
        let mut conn = SqliteConnection::establish(":memory:").expect("open");
        let id = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        let id_text = "01234567-89ab-cdef-0123-456789abcdef";
        let at = Utc
            .with_ymd_and_hms(2026, 11, 26, 8, 5, 3)
            .single()
            .expect("valid time")
            + chrono::Duration::microseconds(42);
        let at_text = "2026-11-26T08:05:03.000042Z";

        let written: Vec<Stored> = sql_query("SELECT ? AS text UNION ALL SELECT ?")
            .bind::<Uuid, _>(id)
            .bind::<Timestamptz, _>(at)
            .load(&mut conn)
            .expect("write");
        let texts: Vec<&str> = written.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts, [id_text, at_text]);

        let read: Read = sql_query(format!("SELECT '{id_text}' AS id, '{at_text}' AS at"))
            .get_result(&mut conn)
            .expect("read");
        assert_eq!(read, Read { id, at });
    }

    #[test]
    fn sqlite_refuses_text_that_is_no_uuid_or_time() {
        let mut conn = SqliteConnection::establish(":memory:").expect("open");
        let bad = sql_query("SELECT 'not-a-uuid' AS id, '2026-11-26T08:05:03.000042Z' AS at")
            .get_result::<Read>(&mut conn);
        assert!(bad.is_err());
        let bad = sql_query(
            "SELECT '01234567-89ab-cdef-0123-456789abcdef' AS id, '2026-11-26 08:05:03' AS at",
        )
        .get_result::<Read>(&mut conn);
        assert!(bad.is_err());
    }
}
