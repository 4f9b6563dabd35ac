//! The timer trigger's configuration: Mart's own `[[trigger.timer]]` (Spin
//! has no timer trigger), and `[[trigger.cron]]` as the public
//! `trigger-cron` Spin plugin reads it, so that its components run under
//! Mart's timer unchanged.

use serde::Deserialize;

/// One `[[trigger.timer]]` entry: a component ticked at an interval.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimerTrigger {
    pub component: String,
    /// Seconds between ticks: a number, or a `{{ variable }}` template
    /// (so deployments and tests can set it like any Spin variable).
    pub interval_secs: IntervalSetting,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum IntervalSetting {
    Seconds(u64),
    Template(String),
}

/// One `[[trigger.cron]]` entry, as the `trigger-cron` plugin
/// (spinframework/spin-trigger-plugins, `CronTriggerConfig`) takes it:
/// exactly these two keys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronTrigger {
    pub component: String,
    /// Seconds first, 6 or 7 fields (the last being the year), in UTC:
    /// `1/2 * * * * *` is every two seconds. Parsed by the timer trigger
    /// when the app starts.
    pub cron_expression: String,
}

impl TimerTrigger {
    pub fn validate(&self) -> Result<(), String> {
        match &self.interval_secs {
            IntervalSetting::Seconds(0) => Err(format!(
                "timer trigger for `{}`: interval_secs must be at least 1",
                self.component
            )),
            _ => Ok(()),
        }
    }
}

/// An interval as rendered from its setting: whole seconds, at least 1.
pub fn parse_interval_secs(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|s| *s >= 1)
        .ok_or_else(|| format!("interval_secs `{text}` is not a whole number of seconds >= 1"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Manifest;

    fn manifest(timer: &str) -> Result<Manifest, String> {
        let text = format!(
            r#"
spin_manifest_version = 2
[application]
name = "t"
[component.sweeper]
source = "sweeper.wasm"
[[trigger.timer]]
component = "sweeper"
{timer}
"#
        );
        let m = Manifest::parse(&text)?;
        m.validate()?;
        Ok(m)
    }

    #[test]
    fn intervals_are_numbers_or_templates() {
        let m = manifest("interval_secs = 30").unwrap();
        assert_eq!(
            m.timer_triggers().unwrap()[0].interval_secs,
            IntervalSetting::Seconds(30)
        );
        let m = manifest(r#"interval_secs = "{{ sweep_secs }}""#).unwrap();
        assert_eq!(
            m.timer_triggers().unwrap()[0].interval_secs,
            IntervalSetting::Template("{{ sweep_secs }}".into())
        );
        assert!(manifest("interval_secs = 0")
            .unwrap_err()
            .contains("at least 1"));
        assert!(manifest("").unwrap_err().contains("interval_secs"));
    }

    #[test]
    fn rendered_intervals_are_checked() {
        assert_eq!(parse_interval_secs(" 5 "), Ok(5));
        assert!(parse_interval_secs("0").is_err());
        assert!(parse_interval_secs("soon").is_err());
    }

    #[test]
    fn cron_entries_take_the_plugins_two_keys() {
        let text = r#"
spin_manifest_version = 2
[application]
name = "t"
[component.every2seconds]
source = "guest.wasm"
[[trigger.cron]]
component = "every2seconds"
cron_expression = "1/2 * * * * *"
"#;
        let m = Manifest::parse(text).unwrap();
        m.validate().unwrap();
        assert_eq!(
            m.cron_triggers().unwrap(),
            [CronTrigger {
                component: "every2seconds".into(),
                cron_expression: "1/2 * * * * *".into(),
            }]
        );
        let unknown = text.replace("cron_expression", "schedule");
        let err = Manifest::parse(&unknown).unwrap().validate().unwrap_err();
        assert!(err.contains("[[trigger.cron]]"), "{err}");
        let ghost = text.replace("component = \"every2seconds\"", "component = \"ghost\"");
        let err = Manifest::parse(&ghost).unwrap().validate().unwrap_err();
        assert!(
            err.contains("cron trigger names component `ghost`"),
            "{err}"
        );
    }

    #[test]
    fn a_timer_for_an_unknown_component_is_refused() {
        let text = r#"
spin_manifest_version = 2
[application]
name = "t"
[[trigger.timer]]
component = "ghost"
interval_secs = 1
"#;
        let err = Manifest::parse(text).unwrap().validate().unwrap_err();
        assert!(err.contains("ghost"), "{err}");
    }
}
