//! Mart's timer trigger (`[[trigger.timer]]`, WIT `mart:timer@0.1.0` in
//! wit/mart-timer): calls a component's `handler.tick` every
//! `interval_secs`, each tick in a fresh instance with the component's
//! limits. Spin has no timer trigger; this one is Mart's own.
//!
//! Ticks of one trigger never overlap on a host (a slow tick delays the
//! next rather than piling up). Every host ticks, so the work must be
//! idempotent, as everything that reacts in Mart is.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use mart_manifest::{App, IntervalSetting, TimerTrigger};
use mart_metrics::TaskKind;
use mart_runtime::{AppComponent, InstanceState, Runtime};
use mart_telemetry::{Span, SpanKind, TraceParent};
use mart_variables::{Resolver, Template};
use tokio::sync::watch;
use tokio::task::JoinHandle;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/mart-timer",
        world: "mart:timer/timer-handler",
        exports: { default: async },
    });
}

use bindings::TimerHandlerPre;

/// How long shutdown waits for a tick in progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The running timers of an app.
pub struct TimerTriggers {
    tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    /// (component, interval) of each timer, for the startup table.
    pub timers: Vec<(String, Duration)>,
}

impl TimerTriggers {
    /// Starts a task per `[[trigger.timer]]`. Fails, naming the component,
    /// if its interval does not render to whole seconds or it does not
    /// export `mart:timer/handler`.
    pub fn start(app: &App, runtime: Arc<Runtime>, resolver: &Resolver) -> anyhow::Result<Self> {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut timers = Vec::new();
        for trigger in app.manifest.timer_triggers().map_err(anyhow::Error::msg)? {
            let interval = interval(&trigger, resolver)?;
            let component = runtime
                .component(&trigger.component)
                .with_context(|| format!("timer trigger: no component `{}`", trigger.component))?
                .clone();
            let pre = TimerHandlerPre::new(component.pre.clone())
                .map_err(anyhow::Error::from)
                .with_context(|| {
                    format!(
                        "component `{}` does not export mart:timer/handler",
                        trigger.component
                    )
                })?;
            let timer = Timer {
                runtime: runtime.clone(),
                component,
                pre,
                interval,
            };
            let ticking = timer.run(stopped.clone());
            tasks.push(tokio::spawn(
                runtime.metrics().busy(TaskKind::Timer, ticking),
            ));
            timers.push((trigger.component.clone(), interval));
        }
        Ok(Self {
            tasks,
            stop,
            timers,
        })
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

struct Timer {
    runtime: Arc<Runtime>,
    component: Arc<AppComponent>,
    pre: TimerHandlerPre<InstanceState>,
    interval: Duration,
}

impl Timer {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        // The first tick comes one interval after start, not at once: a
        // host restarting in a loop must not hammer what the timer does.
        let first = tokio::time::Instant::now() + self.interval;
        let mut ticks = tokio::time::interval_at(first, self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !*stop.borrow() {
            tokio::select! {
                _ = ticks.tick() => self.tick().await,
                changed = stop.changed() => {
                    if changed.is_err() {
                        return; // the triggers were dropped
                    }
                }
            }
        }
    }

    async fn tick(&self) {
        let id = &self.component.id;
        let scheduled_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
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

    async fn call(&self, scheduled_ms: i64, trace: &TraceParent) -> Result<(), String> {
        let result = self
            .runtime
            .invoke(
                &self.component,
                mart_runtime::TriggerKind::Timer,
                Some(trace.clone()),
                async |store| self.pre.instantiate_async(store).await,
                async |timer, store| {
                    timer
                        .mart_timer_handler()
                        .call_tick(store, scheduled_ms)
                        .await
                },
            )
            .await;
        match result {
            Ok(tick) => tick,
            Err(error) => Err(error.to_string()),
        }
    }
}
