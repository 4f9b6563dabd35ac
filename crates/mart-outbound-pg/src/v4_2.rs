//! `spin:postgres/postgres@4.2.0`, Spin 4's version: 4.0's calls, plus a
//! connection builder (4.1) and async calls (4.2), which spin-sdk 6 and 7
//! use for everything. Its types are 4.0's, mapped onto the same Rust
//! types, and so is the connection: one implementation serves both, and a
//! component may hold connections of either.
//!
//! The async calls run without holding the instance's state: a statement
//! locks the connection's session (client.rs), so two statements of one
//! connection run one after the other, and a call the guest cancels
//! leaves the connection as it stands.
//! A query's rows are read whole, then handed over as the stream: rows
//! come to the guest as PostgreSQL's own client gives them to us, and a
//! statement's size is bounded by the instance's memory either way.
//!
//! As in Spin 4.0.2, an error PostgreSQL raises while the statement runs
//! (a unique violation, say) arrives through the query's future, after an
//! empty stream; an error before it runs (a bad statement, a bad parameter)
//! is the call's own error.

// The error type is the interface's (`spin:postgres` `error`); its size is not ours to choose.
#![allow(clippy::result_large_err)]

use wasmtime::component::{Accessor, FutureReader, Resource, StreamReader};

use crate::bindings::spin::postgres::postgres as v4_0;
use crate::client::{Connection, Session};
use crate::host::finish;
use crate::{spin40, PgCompatibility, PgHost};

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: ["../../wit/spin/postgres@4.0.0", "wit-host/postgres@4.2.0"],
        inline: "
            package mart:host-pg-v4-2;
            world pg-host {
                import spin:postgres/postgres@4.2.0;
            }
        ",
        world: "mart:host-pg-v4-2/pg-host",
        imports: {
            // The only call that can fail without an error of its own to
            // say so (a full resource table) traps.
            "spin:postgres/postgres@4.2.0.[constructor]connection-builder": async | trappable,
            default: async,
        },
        with: {
            "spin:postgres/postgres@4.0.0": crate::bindings::spin::postgres::postgres,
            "spin:postgres/postgres@4.2.0.connection": crate::client::Connection,
            "spin:postgres/postgres@4.2.0.connection-builder": super::ConnectionBuilder,
        },
    });
}

use bindings::spin::postgres4_2_0::postgres as v4_2;

use v4_0::{Column, DbValue, Error, ParameterValue, RowSet};

/// A connection builder (4.1): an address, and a CA root this host does
/// not take (its pools connect without TLS, to databases beside it).
pub struct ConnectionBuilder {
    address: String,
}

impl v4_2::Host for PgHost {}

impl v4_2::HostConnectionBuilder for PgHost {
    async fn new(&mut self, address: String) -> wasmtime::Result<Resource<ConnectionBuilder>> {
        Ok(self.table.push(ConnectionBuilder { address })?)
    }

    async fn set_ca_root(
        &mut self,
        _builder: Resource<ConnectionBuilder>,
        _certificate: String,
    ) -> Result<(), Error> {
        Err(Error::Other(
            "this host connects to PostgreSQL without TLS, so it takes no CA root".into(),
        ))
    }

    async fn build(
        &mut self,
        builder: Resource<ConnectionBuilder>,
    ) -> Result<Resource<Connection>, Error> {
        let address = self.builder_address(&builder)?;
        v4_0::HostConnection::open(self, address).await
    }

    async fn drop(&mut self, builder: Resource<ConnectionBuilder>) -> wasmtime::Result<()> {
        self.table.delete(builder)?;
        Ok(())
    }
}

impl v4_2::HostConnection for PgHost {
    async fn open(&mut self, address: String) -> Result<Resource<Connection>, Error> {
        v4_0::HostConnection::open(self, address).await
    }

    async fn query(
        &mut self,
        connection: Resource<Connection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> Result<RowSet, Error> {
        v4_0::HostConnection::query(self, connection, statement, params).await
    }

    async fn execute(
        &mut self,
        connection: Resource<Connection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> Result<u64, Error> {
        v4_0::HostConnection::execute(self, connection, statement, params).await
    }

    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        v4_0::HostConnection::drop(self, connection).await
    }
}

impl PgHost {
    fn builder_address(&mut self, builder: &Resource<ConnectionBuilder>) -> Result<String, Error> {
        self.table
            .get(builder)
            .map(|b| b.address.clone())
            .map_err(|e| Error::Other(format!("invalid connection builder handle: {e}")))
    }
}

/// The async calls, which reach the instance's state through an accessor.
pub(crate) struct PgAsync;

impl wasmtime::component::HasData for PgAsync {
    type Data<'a> = &'a mut PgHost;
}

impl<T> v4_2::HostConnectionBuilderWithStore<T> for PgAsync {
    async fn build_async(
        accessor: &Accessor<T, Self>,
        builder: Resource<ConnectionBuilder>,
    ) -> Result<Resource<Connection>, Error> {
        let address = accessor.with(|mut access| access.get().builder_address(&builder))?;
        open(accessor, address).await
    }
}

impl<T> v4_2::HostConnectionWithStore<T> for PgAsync {
    async fn open_async(
        accessor: &Accessor<T, Self>,
        address: String,
    ) -> Result<Resource<Connection>, Error> {
        open(accessor, address).await
    }

    async fn query_async(
        accessor: &Accessor<T, Self>,
        connection: Resource<Connection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> Result<
        (
            Vec<Column>,
            StreamReader<Vec<DbValue>>,
            FutureReader<Result<(), Error>>,
        ),
        Error,
    > {
        let (span, compatibility) = accessor.with(|mut access| {
            let host = access.get();
            (
                host.statement_span(&connection, &statement),
                host.compatibility,
            )
        });
        // Refused before it ran: the call's own error. Failed while it
        // ran: the end of an empty stream.
        let outcome = in_session(accessor, &connection, async |session| {
            let prepared = crate::host::prepare(session, &statement, params).await?;
            let columns = prepared.columns();
            Ok((columns, prepared.query().await))
        })
        .await;
        let (columns, rows, ended) = match outcome {
            Ok((columns, Ok(rows))) => answer(&columns, &rows, compatibility),
            Ok((_, Err(ran))) => (Vec::new(), Vec::new(), Err(ran)),
            Err(refused) => {
                finish(span, &Err::<(), _>(refused.clone()));
                return Err(refused);
            }
        };
        finish(span, &ended);
        accessor.with(|mut access| {
            let rows = StreamReader::new(&mut access, rows)
                .map_err(|e| Error::Other(format!("handing the rows over: {e}")))?;
            let ended =
                FutureReader::new(&mut access, async move { Ok::<_, wasmtime::Error>(ended) })
                    .map_err(|e| Error::Other(format!("handing the result over: {e}")))?;
            Ok((columns, rows, ended))
        })
    }

    async fn execute_async(
        accessor: &Accessor<T, Self>,
        connection: Resource<Connection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> Result<u64, Error> {
        let span = accessor.with(|mut access| access.get().statement_span(&connection, &statement));
        let result = in_session(accessor, &connection, async |session| {
            crate::host::prepare(session, &statement, params)
                .await?
                .execute()
                .await
        })
        .await;
        finish(span, &result);
        result
    }
}

/// Opens a pooled connection without holding the instance's state.
async fn open<T>(
    accessor: &Accessor<T, PgAsync>,
    address: String,
) -> Result<Resource<Connection>, Error> {
    let (pools, kind, allowed) = accessor.with(|mut access| {
        let host = access.get();
        (host.pools.clone(), host.kind, host.allowed.clone())
    });
    let connection = crate::host::open(&pools, kind, &address, &allowed).await?;
    accessor.with(|mut access| {
        access
            .get()
            .table
            .push(connection)
            .map_err(|e| Error::Other(format!("too many open connections: {e}")))
    })
}

/// Runs `statement` in the session of the connection behind `handle`,
/// locked for it (after the connection's earlier statements).
async fn in_session<T, R>(
    accessor: &Accessor<T, PgAsync>,
    handle: &Resource<Connection>,
    statement: impl AsyncFnOnce(&mut Session) -> Result<R, Error>,
) -> Result<R, Error> {
    let session = accessor.with(|mut access| {
        access
            .get()
            .connection(handle)
            .map(|connection| connection.session())
    })?;
    let mut session = session.lock_owned().await;
    statement(&mut session).await
}

type Answer = (Vec<Column>, Vec<Vec<DbValue>>, Result<(), Error>);

/// A query's columns and rows as an async query hands them over. Under
/// `Spin40`, as Spin 4.0.2 does: with no rows, no columns (it reads them
/// off the first row), and a value it cannot convert ends the stream with
/// a text error.
fn answer(
    columns: &[crate::convert::ColumnInfo],
    rows: &[tokio_postgres::Row],
    compatibility: PgCompatibility,
) -> Answer {
    if compatibility == PgCompatibility::Spin40 {
        if let Err(e) = spin40::check_columns(columns) {
            return (Vec::new(), Vec::new(), Err(e));
        }
        if rows.is_empty() {
            return (Vec::new(), Vec::new(), Ok(()));
        }
    }
    let converted = rows
        .iter()
        .map(|row| crate::convert::row(row, columns, compatibility))
        .collect::<Result<Vec<_>, _>>();
    match converted {
        Ok(rows) => (
            crate::convert::columns(columns, compatibility),
            rows,
            Ok(()),
        ),
        Err(why) => (
            Vec::new(),
            Vec::new(),
            Err(Error::ValueConversionFailed(why)),
        ),
    }
}

pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> &mut PgHost,
) -> wasmtime::Result<()> {
    v4_2::add_to_linker::<T, PgAsync>(linker, get)
}
