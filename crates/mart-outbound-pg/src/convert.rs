//! WIT values <-> PostgreSQL binary values.

use std::error::Error as StdError;

use bytes::{BufMut, BytesMut};
use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use postgres_protocol::types as wire;
use postgres_types::{accepts, to_sql_checked, FromSql, IsNull, Kind, ToSql, Type};
use rust_decimal::Decimal;

use crate::bindings::spin::postgres::postgres::{
    Column, DbDataType, DbValue, Interval, ParameterValue, RangeBoundKind,
};

use crate::PgCompatibility;

type BoxError = Box<dyn StdError + Sync + Send>;
pub(crate) type SqlParam = Box<dyn ToSql + Sync + Send>;

type IntRange<T> = (Option<(T, RangeBoundKind)>, Option<(T, RangeBoundKind)>);

/// Converts one guest parameter; `Err` names what was wrong with it.
pub(crate) fn to_sql_param(value: ParameterValue) -> Result<SqlParam, String> {
    Ok(match value {
        ParameterValue::Boolean(v) => Box::new(v),
        ParameterValue::Int8(v) => Box::new(v),
        ParameterValue::Int16(v) => Box::new(v),
        ParameterValue::Int32(v) => Box::new(v),
        ParameterValue::Int64(v) => Box::new(v),
        ParameterValue::Floating32(v) => Box::new(v),
        ParameterValue::Floating64(v) => Box::new(v),
        ParameterValue::Str(v) => Box::new(v),
        ParameterValue::Binary(v) => Box::new(v),
        ParameterValue::Date((y, m, d)) => Box::new(date(y, m, d)?),
        ParameterValue::Time((h, m, s, ns)) => Box::new(time(h, m, s, ns)?),
        ParameterValue::Datetime((y, mo, d, h, mi, s, ns)) => {
            Box::new(UtcDateTime(date(y, mo, d)?.and_time(time(h, mi, s, ns)?)))
        }
        ParameterValue::Timestamp(secs) => Box::new(UtcDateTime(
            chrono::DateTime::from_timestamp(secs, 0)
                .ok_or_else(|| format!("timestamp {secs} is out of range"))?
                .naive_utc(),
        )),
        ParameterValue::Uuid(v) => {
            Box::new(uuid::Uuid::parse_str(&v).map_err(|e| format!("invalid uuid `{v}`: {e}"))?)
        }
        ParameterValue::Jsonb(v) => {
            serde_json::from_slice::<serde_json::Value>(&v)
                .map_err(|e| format!("invalid JSON: {e}"))?;
            Box::new(Json(v))
        }
        ParameterValue::Decimal(v) => Box::new(decimal(&v)?),
        ParameterValue::RangeInt32(r) => Box::new(Range(r)),
        ParameterValue::RangeInt64(r) => Box::new(Range(r)),
        ParameterValue::RangeDecimal((lo, hi)) => {
            Box::new(Range((decimal_bound(lo)?, decimal_bound(hi)?)))
        }
        ParameterValue::ArrayInt32(v) => Box::new(v),
        ParameterValue::ArrayInt64(v) => Box::new(v),
        ParameterValue::ArrayDecimal(v) => Box::new(
            v.into_iter()
                .map(|d| d.map(|d| decimal(&d)).transpose())
                .collect::<Result<Vec<_>, _>>()?,
        ),
        ParameterValue::ArrayStr(v) => Box::new(v),
        ParameterValue::Interval(i) => Box::new(i),
        ParameterValue::DbNull => Box::new(Null),
    })
}

fn date(y: i32, m: u8, d: u8) -> Result<NaiveDate, String> {
    NaiveDate::from_ymd_opt(y, m.into(), d.into())
        .ok_or_else(|| format!("invalid date {y}-{m}-{d}"))
}

fn time(h: u8, m: u8, s: u8, ns: u32) -> Result<NaiveTime, String> {
    NaiveTime::from_hms_nano_opt(h.into(), m.into(), s.into(), ns)
        .ok_or_else(|| format!("invalid time {h}:{m}:{s}.{ns}"))
}

fn decimal(text: &str) -> Result<Decimal, String> {
    text.parse::<Decimal>()
        .or_else(|_| Decimal::from_scientific(text))
        .map_err(|e| format!("invalid decimal `{text}`: {e}"))
}

fn decimal_bound(
    bound: Option<(String, RangeBoundKind)>,
) -> Result<Option<(Decimal, RangeBoundKind)>, String> {
    bound.map(|(v, k)| Ok((decimal(&v)?, k))).transpose()
}

/// The column's type as the interface names it.
pub(crate) fn data_type(ty: &Type, compatibility: PgCompatibility) -> DbDataType {
    if compatibility == PgCompatibility::Spin40 && crate::spin40::is_unsupported(ty) {
        return DbDataType::Other(ty.name().to_string());
    }
    match *ty {
        Type::BOOL => DbDataType::Boolean,
        Type::CHAR => DbDataType::Int8,
        Type::INT2 => DbDataType::Int16,
        Type::INT4 => DbDataType::Int32,
        Type::INT8 => DbDataType::Int64,
        Type::FLOAT4 => DbDataType::Floating32,
        Type::FLOAT8 => DbDataType::Floating64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => DbDataType::Str,
        Type::BYTEA => DbDataType::Binary,
        Type::DATE => DbDataType::Date,
        Type::TIME => DbDataType::Time,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => DbDataType::Datetime,
        Type::UUID => DbDataType::Uuid,
        Type::JSON | Type::JSONB => DbDataType::Jsonb,
        Type::NUMERIC => DbDataType::Decimal,
        Type::INT4_RANGE => DbDataType::RangeInt32,
        Type::INT8_RANGE => DbDataType::RangeInt64,
        Type::NUM_RANGE => DbDataType::RangeDecimal,
        Type::INT4_ARRAY => DbDataType::ArrayInt32,
        Type::INT8_ARRAY => DbDataType::ArrayInt64,
        Type::NUMERIC_ARRAY => DbDataType::ArrayDecimal,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY | Type::NAME_ARRAY => {
            DbDataType::ArrayStr
        }
        Type::INTERVAL => DbDataType::Interval,
        _ => DbDataType::Other(ty.name().to_string()),
    }
}

/// A result column: its name and type.
pub(crate) type ColumnInfo = (String, Type);

/// A result row as the host reads it: each column's value in PostgreSQL's
/// binary form (`None` for NULL). tokio-postgres' rows are one; tests make
/// their own, so the conversion rules are tested without a server.
pub(crate) trait RawRow {
    fn raw(&self, column: usize) -> Result<Option<&[u8]>, BoxError>;
}

impl RawRow for tokio_postgres::Row {
    fn raw(&self, column: usize) -> Result<Option<&[u8]>, BoxError> {
        Ok(self.try_get::<_, Option<RawRef<'_>>>(column)?.map(|r| r.0))
    }
}

impl RawRow for Vec<Option<Vec<u8>>> {
    fn raw(&self, column: usize) -> Result<Option<&[u8]>, BoxError> {
        Ok(self.get(column).ok_or("no such column")?.as_deref())
    }
}

/// A value's bytes, borrowed from the row.
struct RawRef<'a>(&'a [u8]);

impl<'a> FromSql<'a> for RawRef<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(RawRef(raw))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

pub(crate) fn columns(columns: &[ColumnInfo], compatibility: PgCompatibility) -> Vec<Column> {
    columns
        .iter()
        .map(|(name, ty)| Column {
            name: name.clone(),
            data_type: data_type(ty, compatibility),
        })
        .collect()
}

/// Converts every value of a row; `Err` names the column that failed.
pub(crate) fn row(
    row: &impl RawRow,
    columns: &[ColumnInfo],
    compatibility: PgCompatibility,
) -> Result<Vec<DbValue>, String> {
    columns
        .iter()
        .enumerate()
        .map(|(i, (name, ty))| {
            let converted = row.raw(i).and_then(|raw| {
                if compatibility == PgCompatibility::Spin40 && crate::spin40::is_unsupported(ty) {
                    Ok(raw.map_or(DbValue::DbNull, |b| DbValue::Unsupported(b.to_vec())))
                } else {
                    value(raw, ty)
                }
            });
            converted.map_err(|e| format!("column `{name}` ({ty}): {e}"))
        })
        .collect()
}

fn value(raw: Option<&[u8]>, ty: &Type) -> Result<DbValue, BoxError> {
    fn get<'a, T: FromSql<'a>>(
        raw: Option<&'a [u8]>,
        ty: &Type,
        wrap: impl FnOnce(T) -> DbValue,
    ) -> Result<DbValue, BoxError> {
        if !T::accepts(ty) {
            return Err(format!("cannot read a {ty} value").into());
        }
        Ok(Option::<T>::from_sql_nullable(ty, raw)?
            .map(wrap)
            .unwrap_or(DbValue::DbNull))
    }
    match *ty {
        Type::BOOL => get(raw, ty, DbValue::Boolean),
        Type::CHAR => get(raw, ty, DbValue::Int8),
        Type::INT2 => get(raw, ty, DbValue::Int16),
        Type::INT4 => get(raw, ty, DbValue::Int32),
        Type::INT8 => get(raw, ty, DbValue::Int64),
        Type::FLOAT4 => get(raw, ty, DbValue::Floating32),
        Type::FLOAT8 => get(raw, ty, DbValue::Floating64),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => get(raw, ty, DbValue::Str),
        Type::BYTEA => get(raw, ty, DbValue::Binary),
        Type::DATE => get(raw, ty, |d: NaiveDate| {
            DbValue::Date((d.year(), d.month() as u8, d.day() as u8))
        }),
        Type::TIME => get(raw, ty, |t: NaiveTime| DbValue::Time(time_tuple(t))),
        Type::TIMESTAMP | Type::TIMESTAMPTZ => get(raw, ty, |UtcDateTime(dt)| {
            DbValue::Datetime(datetime_tuple(dt))
        }),
        Type::UUID => get(raw, ty, |u: uuid::Uuid| DbValue::Uuid(u.to_string())),
        Type::JSON | Type::JSONB => get(raw, ty, |Json(bytes)| DbValue::Jsonb(bytes)),
        Type::NUMERIC => get(raw, ty, |d: Decimal| DbValue::Decimal(d.to_string())),
        Type::INT4_RANGE => get(raw, ty, |Range(r)| DbValue::RangeInt32(r)),
        Type::INT8_RANGE => get(raw, ty, |Range(r)| DbValue::RangeInt64(r)),
        Type::NUM_RANGE => get(raw, ty, |Range::<Decimal>((lo, hi))| {
            let text = |b: Option<(Decimal, RangeBoundKind)>| b.map(|(d, k)| (d.to_string(), k));
            DbValue::RangeDecimal((text(lo), text(hi)))
        }),
        Type::INT4_ARRAY => get(raw, ty, DbValue::ArrayInt32),
        Type::INT8_ARRAY => get(raw, ty, DbValue::ArrayInt64),
        Type::NUMERIC_ARRAY => get(raw, ty, |v: Vec<Option<Decimal>>| {
            DbValue::ArrayDecimal(v.into_iter().map(|d| d.map(|d| d.to_string())).collect())
        }),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY | Type::NAME_ARRAY => {
            get(raw, ty, DbValue::ArrayStr)
        }
        Type::INTERVAL => get(raw, ty, DbValue::Interval),
        _ => get(raw, ty, |Raw(bytes)| DbValue::Unsupported(bytes)),
    }
}

fn time_tuple(t: NaiveTime) -> (u8, u8, u8, u32) {
    (
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
        t.nanosecond(),
    )
}

fn datetime_tuple(dt: NaiveDateTime) -> (i32, u8, u8, u8, u8, u8, u32) {
    let (h, mi, s, ns) = time_tuple(dt.time());
    (dt.year(), dt.month() as u8, dt.day() as u8, h, mi, s, ns)
}

/// SQL NULL for a parameter of any type.
#[derive(Debug)]
struct Null;

impl ToSql for Null {
    fn to_sql(&self, _: &Type, _: &mut BytesMut) -> Result<IsNull, BoxError> {
        Ok(IsNull::Yes)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

/// A date-time the interface defines as UTC; fits `timestamp` and `timestamptz`,
/// which share one binary form (microseconds since 2000-01-01 UTC).
#[derive(Debug)]
struct UtcDateTime(NaiveDateTime);

impl ToSql for UtcDateTime {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        self.0.to_sql(&Type::TIMESTAMP, out)
    }
    accepts!(TIMESTAMP, TIMESTAMPTZ);
    to_sql_checked!();
}

impl<'a> FromSql<'a> for UtcDateTime {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        NaiveDateTime::from_sql(&Type::TIMESTAMP, raw).map(UtcDateTime)
    }
    accepts!(TIMESTAMP, TIMESTAMPTZ);
}

/// JSON text for `json`, or the same with jsonb's version byte.
#[derive(Debug)]
struct Json(Vec<u8>);

impl ToSql for Json {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        if *ty == Type::JSONB {
            out.put_u8(1);
        }
        out.put_slice(&self.0);
        Ok(IsNull::No)
    }
    accepts!(JSON, JSONB);
    to_sql_checked!();
}

impl<'a> FromSql<'a> for Json {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let text = if *ty == Type::JSONB {
            match raw.split_first() {
                Some((1, rest)) => rest,
                _ => return Err("unsupported jsonb encoding version".into()),
            }
        } else {
            raw
        };
        Ok(Json(text.to_vec()))
    }
    accepts!(JSON, JSONB);
}

/// Any value in its raw binary form, for types the interface does not name.
struct Raw(Vec<u8>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Raw(raw.to_vec()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

impl ToSql for Interval {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.put_i64(self.micros);
        out.put_i32(self.days);
        out.put_i32(self.months);
        Ok(IsNull::No)
    }
    accepts!(INTERVAL);
    to_sql_checked!();
}

impl<'a> FromSql<'a> for Interval {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let raw: [u8; 16] = raw.try_into().map_err(|_| "interval must be 16 bytes")?;
        Ok(Interval {
            micros: i64::from_be_bytes(raw[0..8].try_into().expect("8 bytes")),
            days: i32::from_be_bytes(raw[8..12].try_into().expect("4 bytes")),
            months: i32::from_be_bytes(raw[12..16].try_into().expect("4 bytes")),
        })
    }
    accepts!(INTERVAL);
}

/// A range as the interface spells it: optional lower and upper bounds.
#[derive(Debug)]
struct Range<T>(IntRange<T>);

impl<T: ToSql> ToSql for Range<T> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let element = match ty.kind() {
            Kind::Range(element) => element,
            _ => return Err(format!("{ty} is not a range type").into()),
        };
        let (lo, hi) = &self.0;
        wire::range_to_sql(
            |buf| bound_to_sql(lo.as_ref(), element, buf),
            |buf| bound_to_sql(hi.as_ref(), element, buf),
            out,
        )?;
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        matches!(ty.kind(), Kind::Range(element) if T::accepts(element))
    }
    to_sql_checked!();
}

fn bound_to_sql<T: ToSql>(
    bound: Option<&(T, RangeBoundKind)>,
    element: &Type,
    buf: &mut BytesMut,
) -> Result<wire::RangeBound<postgres_protocol::IsNull>, BoxError> {
    Ok(match bound {
        None => wire::RangeBound::Unbounded,
        Some((value, kind)) => {
            let is_null = match value.to_sql(element, buf)? {
                IsNull::Yes => postgres_protocol::IsNull::Yes,
                IsNull::No => postgres_protocol::IsNull::No,
            };
            match kind {
                RangeBoundKind::Inclusive => wire::RangeBound::Inclusive(is_null),
                RangeBoundKind::Exclusive => wire::RangeBound::Exclusive(is_null),
            }
        }
    })
}

impl<'a, T: FromSql<'a>> FromSql<'a> for Range<T> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let element = match ty.kind() {
            Kind::Range(element) => element,
            _ => return Err(format!("{ty} is not a range type").into()),
        };
        match wire::range_from_sql(raw)? {
            wire::Range::Empty => Ok(Range((None, None))),
            wire::Range::Nonempty(lo, hi) => Ok(Range((
                bound_from_sql(lo, element)?,
                bound_from_sql(hi, element)?,
            ))),
        }
    }
    fn accepts(ty: &Type) -> bool {
        matches!(ty.kind(), Kind::Range(element) if T::accepts(element))
    }
}

fn bound_from_sql<'a, T: FromSql<'a>>(
    bound: wire::RangeBound<Option<&'a [u8]>>,
    element: &Type,
) -> Result<Option<(T, RangeBoundKind)>, BoxError> {
    let (raw, kind) = match bound {
        wire::RangeBound::Unbounded => return Ok(None),
        wire::RangeBound::Inclusive(raw) => (raw, RangeBoundKind::Inclusive),
        wire::RangeBound::Exclusive(raw) => (raw, RangeBoundKind::Exclusive),
    };
    let raw = raw.ok_or("range bound is NULL")?;
    Ok(Some((T::from_sql(element, raw)?, kind)))
}
