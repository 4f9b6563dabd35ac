//! A manifest Fermyon Spin can run as it is: HTTP triggers only.
//!
//! `spin up` refuses trigger types it has no plugin for (Mart's `kafka`), so
//! this drops every non-HTTP trigger and the components only they use.

use std::collections::BTreeSet;

/// Returns `text` (a spin.toml) with only its HTTP triggers and their components.
pub fn http_only(text: &str) -> Result<String, String> {
    let mut doc: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut used = BTreeSet::new();
    if let Some(toml::Value::Table(triggers)) = doc.get_mut("trigger") {
        triggers.retain(|kind, _| kind == "http");
        if let Some(toml::Value::Array(http)) = triggers.get("http") {
            for trigger in http {
                if let Some(component) = trigger.get("component").and_then(|c| c.as_str()) {
                    used.insert(component.to_string());
                }
            }
        }
    }
    if let Some(toml::Value::Table(settings)) = doc
        .get_mut("application")
        .and_then(|a| a.get_mut("trigger"))
    {
        settings.retain(|kind, _| kind == "http");
    }
    if let Some(toml::Value::Table(components)) = doc.get_mut("component") {
        components.retain(|id, _| used.contains(id));
    }
    let body = toml::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    Ok(format!(
        "# Generated from spin.toml by `make spin-manifest`: HTTP triggers only, for Fermyon Spin.\n# Do not edit; edit spin.toml.\n{body}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Manifest;

    #[test]
    fn keeps_http_and_drops_other_triggers_and_their_components() {
        let text = r#"
spin_manifest_version = 2
[application]
name = "a"
[application.trigger.kafka]
brokers = "b:9092"
[[trigger.http]]
route = "/x"
component = "web"
[[trigger.kafka]]
component = "worker"
topics = ["t"]
[component.web]
source = "web.wasm"
[component.worker]
source = "worker.wasm"
"#;
        let out = http_only(text).unwrap();
        let m = Manifest::parse(&out).unwrap();
        m.validate().unwrap();
        assert_eq!(m.trigger.http.len(), 1);
        assert!(m.trigger.other.is_empty());
        assert!(m.application.trigger.is_empty());
        assert_eq!(m.component.keys().collect::<Vec<_>>(), ["web"]);
    }
}
