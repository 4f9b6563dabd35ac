//! The instances of a `mart:kafka/handler@0.2.0` (async) component, reused
//! from one batch to the next as Spin 4 reuses a WASIp3 HTTP component's.
//!
//! An instance handles one batch at a time. When the batch is done (the
//! handler returned, success or a failure it reported), the instance waits
//! for the next batch of any of the trigger's partitions; it is retired
//! after `MAX_RECORDS_PER_INSTANCE` records, after `IDLE_INSTANCE_TIMEOUT`
//! without work, and at once when it traps, misses its deadline or a host
//! call panics (its state is then unknown). What a batch may do, its limits
//! and its deadline are those of a fresh instance: reuse changes how long
//! an instance lives, never what it may do or how records are ordered and
//! committed (the partition worker decides that, as for a 0.1.0 handler).

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use mart_runtime::{AppComponent, InstanceState, InvokeError, Runtime, TriggerKind};
use mart_telemetry::TraceParent;
use wasmtime::Store;

use crate::invoke::p3::exports::mart::kafka::handler::{Failure, Message};
use crate::invoke::p3::{KafkaHandler, KafkaHandlerPre};

/// Records one instance handles before it is retired: Spin 4's default for
/// a WASIp3 HTTP component (`--max-instance-reuse-count`, 128 requests),
/// so a component meets one lifetime under either trigger. It also bounds
/// what a guest that leaks a little per record can pile up.
pub const MAX_RECORDS_PER_INSTANCE: usize = 128;

// Batches one instance handles at once: one (no setting; Spin's HTTP
// default is 16). Batches of a partition are sequential anyway (ordering
// per key); batches of different partitions get instances of their own, up
// to the trigger's `concurrency`. So a trap fails only the batch that
// trapped, and the store's deadline (its epoch) belongs to one batch.

/// How long an instance with no batch is kept: Spin 4's default for a
/// WASIp3 HTTP component (`--idle-instance-timeout`, 1 s). A burst of
/// records reuses it; a quiet topic does not keep its memory (and whatever
/// connections the guest holds) for long.
pub const IDLE_INSTANCE_TIMEOUT: Duration = Duration::from_secs(1);

/// The reusable instances of one async handler component.
pub struct Instances {
    pre: KafkaHandlerPre<InstanceState>,
    idle: Arc<Mutex<Vec<Kept>>>,
}

/// An instance waiting for its next batch.
struct Kept {
    store: Store<InstanceState>,
    handler: KafkaHandler,
    /// Records it has been handed so far.
    records: usize,
    idle_since: Instant,
}

impl Instances {
    /// Must be called in the Tokio runtime: idle instances are retired by a
    /// task of their own, which ends when these instances are dropped.
    pub fn new(pre: KafkaHandlerPre<InstanceState>) -> Self {
        let idle = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(retire_idle(Arc::downgrade(&idle)));
        Self { pre, idle }
    }

    /// Runs `messages` in an idle instance, or in a new one.
    pub async fn handle(
        &self,
        runtime: &Runtime,
        component: &AppComponent,
        trace: Option<TraceParent>,
        messages: Vec<Message>,
    ) -> Result<Result<(), Failure>, InvokeError> {
        let records = messages.len();
        let (result, kept) = match self.take() {
            Some(kept) => Self::in_kept(runtime, component, trace, kept, messages).await,
            None => self.in_new(runtime, component, trace, messages).await?,
        };
        // Only an instance that returned goes back: after a trap, a missed
        // deadline or a host panic its state is unknown.
        if let (Ok(_), Some(mut kept)) = (&result, kept) {
            kept.records += records;
            if kept.records < MAX_RECORDS_PER_INSTANCE {
                kept.idle_since = Instant::now();
                self.put(kept);
            }
        }
        result
    }

    async fn in_kept(
        runtime: &Runtime,
        component: &AppComponent,
        trace: Option<TraceParent>,
        mut kept: Kept,
        messages: Vec<Message>,
    ) -> (Result<Result<(), Failure>, InvokeError>, Option<Kept>) {
        let invocation = runtime.resume(component, &mut kept.store, trace);
        let Kept { store, handler, .. } = &mut kept;
        let result = invocation
            .call_in(store, async |store| call(handler, store, messages).await)
            .await;
        (result, Some(kept))
    }

    async fn in_new(
        &self,
        runtime: &Runtime,
        component: &AppComponent,
        trace: Option<TraceParent>,
        messages: Vec<Message>,
    ) -> Result<(Result<Result<(), Failure>, InvokeError>, Option<Kept>), InvokeError> {
        let (mut store, invocation) = runtime.prepare(component, TriggerKind::Kafka, trace)?;
        let mut made = None;
        let result = invocation
            .run_in(
                &mut store,
                async |store| self.pre.instantiate_async(store).await,
                async |handler, store| {
                    let result = call(&handler, store, messages).await;
                    made = Some(handler);
                    result
                },
            )
            .await;
        let kept = made.map(|handler| Kept {
            store,
            handler,
            records: 0,
            idle_since: Instant::now(),
        });
        Ok((result, kept))
    }

    /// An idle instance, if one is there.
    fn take(&self) -> Option<Kept> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    fn put(&self, kept: Kept) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(kept);
    }
}

/// The async export's call: the guest runs in the store's event loop until
/// `handle` returns.
async fn call(
    handler: &KafkaHandler,
    store: &mut Store<InstanceState>,
    messages: Vec<Message>,
) -> wasmtime::Result<Result<(), Failure>> {
    store
        .run_concurrent(async |accessor| {
            handler
                .mart_kafka_handler()
                .call_handle(accessor, messages)
                .await
        })
        .await?
}

/// Drops instances idle for longer than `IDLE_INSTANCE_TIMEOUT`, checking
/// a few times per timeout, until the instances are gone.
async fn retire_idle(idle: Weak<Mutex<Vec<Kept>>>) {
    loop {
        tokio::time::sleep(IDLE_INSTANCE_TIMEOUT / 4).await;
        let Some(idle) = idle.upgrade() else {
            return;
        };
        let retired: Vec<Kept> = {
            let mut idle = idle.lock().unwrap_or_else(|e| e.into_inner());
            let (stale, fresh) = std::mem::take(&mut *idle)
                .into_iter()
                .partition(|k| k.idle_since.elapsed() >= IDLE_INSTANCE_TIMEOUT);
            *idle = fresh;
            stale
        };
        // Dropped outside the lock: a store's drop frees its memory.
        drop(retired);
    }
}
