//! Mart's timer trigger. Two kinds of entries:
//! - `[[trigger.timer]]` (Mart's own; Spin has no timer trigger): calls a
//!   component's `mart:timer/handler` `tick` every `interval_secs`. The
//!   component exports `@0.1.0` (sync) or `@0.2.0` (async, WASIp3), see
//!   wit/mart-timer.
//! - `[[trigger.cron]]` (the public `trigger-cron` Spin plugin's, WIT
//!   `spin:cron@3.0.0` in wit/spin/cron@3.0.0): calls a component's async
//!   `handle-cron-event` when its `cron_expression` says, so a component
//!   written for that plugin runs unchanged.
//!
//! Each tick runs in a fresh instance with the component's limits, whatever
//! the export: ticks are seconds to minutes apart, longer than an instance
//! is worth keeping idle (the Kafka trigger keeps an async instance for
//! 1 s), so reuse would only hold memory and connections between ticks.
//!
//! Ticks of one trigger never overlap on a host (a slow tick delays the
//! next rather than piling up; a cron time missed meanwhile is skipped,
//! where the plugin would start a second run). Every host ticks, so the
//! work must be idempotent, as everything that reacts in Mart is.

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use mart_manifest::{App, CronTrigger, IntervalSetting, TimerTrigger};
use mart_metrics::TaskKind;
use mart_runtime::{AppComponent, InstanceState, InvokeError, Runtime};
use mart_telemetry::{Span, SpanKind, TraceParent};
use mart_variables::{Resolver, Template};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use wasmtime::Store;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/mart-timer",
        world: "mart:timer/timer-handler",
        exports: { default: async },
    });
}

/// `mart:timer@0.2.0`: `tick` is async.
mod p3 {
    wasmtime::component::bindgen!({
        path: "../../wit/mart-timer/timer@0.2.0",
        world: "mart:timer/timer-handler",
        exports: { default: async | store },
    });
}

/// `spin:cron@3.0.0`, the `trigger-cron` plugin's world.
mod cron_world {
    wasmtime::component::bindgen!({
        path: "../../wit/spin/cron@3.0.0",
        world: "spin:cron/spin-cron",
        exports: { default: async | store },
    });
}

use bindings::TimerHandlerPre;
use cron_world::spin::cron::cron_types;

/// How long shutdown waits for a tick in progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The running timers of an app.
pub struct TimerTriggers {
    tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    /// (component, interval) of each timer, for the startup table.
    pub timers: Vec<(String, Duration)>,
    /// (component, cron expression) of each cron entry, likewise.
    pub crons: Vec<(String, String)>,
}

impl TimerTriggers {
    /// Starts a task per `[[trigger.timer]]` and `[[trigger.cron]]`. Fails,
    /// naming the component, if an interval does not render to whole
    /// seconds, a cron expression does not parse, or the component does
    /// not export what its entry calls.
    pub fn start(app: &App, runtime: Arc<Runtime>, resolver: &Resolver) -> anyhow::Result<Self> {
        let (stop, stopped) = watch::channel(false);
        let mut triggers = Self {
            tasks: Vec::new(),
            stop,
            timers: Vec::new(),
            crons: Vec::new(),
        };
        for trigger in app.manifest.timer_triggers().map_err(anyhow::Error::msg)? {
            let interval = interval(&trigger, resolver)?;
            let component = component(&runtime, &trigger.component)?;
            let export = timer_export(&component)?;
            triggers.spawn(
                &runtime,
                component,
                export,
                Schedule::Every(interval),
                &stopped,
            );
            triggers.timers.push((trigger.component.clone(), interval));
        }
        for trigger in app.manifest.cron_triggers().map_err(anyhow::Error::msg)? {
            let schedule = cron_schedule(&trigger)?;
            let component = component(&runtime, &trigger.component)?;
            let export = cron_export(&component)?;
            triggers.spawn(
                &runtime,
                component,
                export,
                Schedule::Cron(Box::new(schedule)),
                &stopped,
            );
            triggers
                .crons
                .push((trigger.component.clone(), trigger.cron_expression.clone()));
        }
        Ok(triggers)
    }

    fn spawn(
        &mut self,
        runtime: &Arc<Runtime>,
        component: Arc<AppComponent>,
        export: Export,
        schedule: Schedule,
        stopped: &watch::Receiver<bool>,
    ) {
        let timer = Timer {
            runtime: runtime.clone(),
            component,
            export,
            schedule,
        };
        let ticking = timer.run(stopped.clone());
        self.tasks.push(tokio::spawn(
            runtime.metrics().busy(TaskKind::Timer, ticking),
        ));
    }

    /// Stops ticking; a tick in progress may finish (up to a grace period).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
                tracing::warn!("a timer tick did not finish in time");
            }
        }
    }
}

fn interval(trigger: &TimerTrigger, resolver: &Resolver) -> anyhow::Result<Duration> {
    let what = || format!("timer trigger for `{}`: interval_secs", trigger.component);
    let secs = match &trigger.interval_secs {
        IntervalSetting::Seconds(secs) => *secs,
        IntervalSetting::Template(text) => {
            let template = Template::parse(text).with_context(what)?;
            let rendered = resolver.render(&template).with_context(what)?;
            mart_manifest::parse_interval_secs(&rendered)
                .map_err(anyhow::Error::msg)
                .with_context(what)?
        }
    };
    Ok(Duration::from_secs(secs))
}

fn component(runtime: &Runtime, id: &str) -> anyhow::Result<Arc<AppComponent>> {
    runtime
        .component(id)
        .cloned()
        .with_context(|| format!("timer trigger: no component `{id}`"))
}

/// The `cron` crate's syntax, as the plugin's documentation gives it:
/// seconds first, 6 or 7 fields (the 7th the year), in UTC.
fn cron_schedule(trigger: &CronTrigger) -> anyhow::Result<cron::Schedule> {
    cron::Schedule::from_str(&trigger.cron_expression).with_context(|| {
        format!(
            "cron trigger for `{}`: cron_expression {:?} is not a cron expression \
             (seconds first, 6 or 7 fields, e.g. \"0 */5 * * * *\")",
            trigger.component, trigger.cron_expression
        )
    })
}

/// What a tick calls: the export the component has for its entry.
enum Export {
    /// `mart:timer/handler@0.1.0`'s `tick`.
    Sync(TimerHandlerPre<InstanceState>),
    /// `mart:timer/handler@0.2.0`'s async `tick`.
    Async(p3::TimerHandlerPre<InstanceState>),
    /// `spin:cron@3.0.0`'s async `handle-cron-event`.
    Cron(cron_world::SpinCronPre<InstanceState>),
}

/// A `[[trigger.timer]]` component's handler: 0.2.0 (async) if it has it,
/// else 0.1.0; neither is refused, both named.
fn timer_export(component: &AppComponent) -> anyhow::Result<Export> {
    if let Ok(pre) = p3::TimerHandlerPre::new(component.pre.clone()) {
        return Ok(Export::Async(pre));
    }
    TimerHandlerPre::new(component.pre.clone())
        .map(Export::Sync)
        .map_err(anyhow::Error::from)
        .with_context(|| {
            format!(
                "component `{}` does not export mart:timer/handler \
                 (neither mart:timer/handler@0.1.0 nor mart:timer/handler@0.2.0, async)",
                component.id
            )
        })
}

fn cron_export(component: &AppComponent) -> anyhow::Result<Export> {
    cron_world::SpinCronPre::new(component.pre.clone())
        .map(Export::Cron)
        .map_err(anyhow::Error::from)
        .with_context(|| {
            format!(
                "component `{}` is named by a [[trigger.cron]] entry but does not export \
                 spin:cron@3.0.0's handle-cron-event",
                component.id
            )
        })
}

/// When a timer ticks.
enum Schedule {
    /// Every interval, the first one interval after start.
    Every(Duration),
    /// At each time the expression gives.
    Cron(Box<cron::Schedule>),
}

struct Timer {
    runtime: Arc<Runtime>,
    component: Arc<AppComponent>,
    export: Export,
    schedule: Schedule,
}

impl Timer {
    async fn run(self, stop: watch::Receiver<bool>) {
        match &self.schedule {
            Schedule::Every(interval) => self.every(*interval, stop).await,
            Schedule::Cron(schedule) => self.on_schedule(schedule, stop).await,
        }
    }

    async fn every(&self, interval: Duration, mut stop: watch::Receiver<bool>) {
        // The first tick comes one interval after start, not at once: a
        // host restarting in a loop must not hammer what the timer does.
        let first = tokio::time::Instant::now() + interval;
        let mut ticks = tokio::time::interval_at(first, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !*stop.borrow() {
            tokio::select! {
                _ = ticks.tick() => self.tick(now_ms()).await,
                changed = stop.changed() => {
                    if changed.is_err() {
                        return; // the triggers were dropped
                    }
                }
            }
        }
    }

    /// Sleeps until the schedule's next time after now, then ticks; times
    /// that pass during a tick are skipped (ticks never overlap).
    async fn on_schedule(&self, schedule: &cron::Schedule, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            let Some(next) = schedule.upcoming(chrono::Utc).next() else {
                tracing::info!(component = %self.component.id, "the cron expression has no more times");
                return;
            };
            let wait = (next - chrono::Utc::now()).to_std().unwrap_or_default();
            tokio::select! {
                _ = tokio::time::sleep(wait) => self.tick(next.timestamp_millis()).await,
                changed = stop.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// One tick due at `scheduled_ms`: a span, the call, the outcome logged
    /// and counted.
    async fn tick(&self, scheduled_ms: i64) {
        let id = &self.component.id;
        let started = Instant::now();
        // Each tick starts a trace of its own: what it changes (an expired
        // order cancelled) can be followed from there through the events.
        let mut span = Span::start(|| format!("timer {id}"), SpanKind::Internal, None);
        span.set("mart.component", id.to_string());
        let outcome = match self.call(scheduled_ms, span.context()).await {
            Ok(()) => {
                tracing::debug!(component = %id, elapsed_ms = started.elapsed().as_millis() as u64, "timer tick");
                "ok"
            }
            Err(reason) => {
                tracing::warn!(component = %id, %reason, "timer tick failed");
                span.fail(reason);
                "failed"
            }
        };
        self.runtime.metrics().timer_tick(id, outcome);
    }

    /// Calls the component's export in a fresh instance; the exports differ
    /// only in how they are called.
    async fn call(&self, scheduled_ms: i64, trace: &TraceParent) -> Result<(), String> {
        let result = match &self.export {
            Export::Sync(pre) => {
                self.invoke(
                    trace,
                    async |store| pre.instantiate_async(store).await,
                    async |timer, store| {
                        timer
                            .mart_timer_handler()
                            .call_tick(store, scheduled_ms)
                            .await
                    },
                )
                .await
            }
            Export::Async(pre) => {
                self.invoke(
                    trace,
                    async |store| pre.instantiate_async(store).await,
                    async |timer, store| {
                        store
                            .run_concurrent(async |a| {
                                timer.mart_timer_handler().call_tick(a, scheduled_ms).await
                            })
                            .await?
                    },
                )
                .await
            }
            Export::Cron(pre) => {
                // As the plugin's: the time of the run, in whole seconds
                // since the Unix epoch (here the time the expression gave).
                let metadata = cron_types::Metadata {
                    timestamp: u64::try_from(scheduled_ms / 1000).unwrap_or_default(),
                };
                self.invoke(
                    trace,
                    async |store| pre.instantiate_async(store).await,
                    async |cron, store| {
                        let handled = store
                            .run_concurrent(async |a| {
                                cron.call_handle_cron_event(a, metadata).await
                            })
                            .await??;
                        Ok(handled.map_err(|cron_types::Error::Other(reason)| reason))
                    },
                )
                .await
            }
        };
        match result {
            Ok(tick) => tick,
            Err(error) => Err(error.to_string()),
        }
    }

    /// A fresh instance through the one invoke path.
    async fn invoke<I, T>(
        &self,
        trace: &TraceParent,
        instantiate: impl AsyncFnOnce(&mut Store<InstanceState>) -> wasmtime::Result<I>,
        call: impl AsyncFnOnce(I, &mut Store<InstanceState>) -> wasmtime::Result<T>,
    ) -> Result<T, InvokeError> {
        self.runtime
            .invoke(
                &self.component,
                mart_runtime::TriggerKind::Timer,
                Some(trace.clone()),
                instantiate,
                call,
            )
            .await
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
