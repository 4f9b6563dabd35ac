use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use mart_manifest::{Manifest, VariableDecl};

use crate::template::{Template, TemplateError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VariableError {
    #[error("variable `{0}` is required but no provider has a value for it (set {1})")]
    RequiredMissing(String, String),
    #[error("variable `{0}` is not declared in [variables]")]
    Undeclared(String),
    #[error("component `{component}`, variable `{name}`: {source}")]
    Template {
        component: String,
        name: String,
        #[source]
        source: TemplateError,
    },
}

/// The environment provider: `SPIN_VARIABLE_DB_HOST` supplies `db_host`.
#[derive(Debug, Clone)]
pub struct EnvProvider {
    prefix: String,
    values: HashMap<String, String>,
}

impl EnvProvider {
    /// Reads matching variables from `vars` (the process environment, or a
    /// dotenv file's pairs merged in front of it).
    pub fn new(prefix: Option<&str>, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let prefix = format!("{}_", prefix.unwrap_or("SPIN_VARIABLE"));
        let values = vars
            .into_iter()
            .filter_map(|(key, value)| {
                let name = key.strip_prefix(&prefix)?;
                Some((name.to_ascii_lowercase(), value))
            })
            .collect();
        Self { prefix, values }
    }

    /// Values given directly (`--variable name=value`, Spin's static
    /// provider), by variable name.
    pub fn with_values(values: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            prefix: String::new(),
            values: values.into_iter().collect(),
        }
    }

    pub fn env_name(&self, variable: &str) -> String {
        format!("{}{}", self.prefix, variable.to_ascii_uppercase())
    }

    fn get(&self, variable: &str) -> Option<&str> {
        self.values.get(variable).map(String::as_str)
    }
}

/// Resolves application variables: the first provider with a value wins,
/// then the declared default.
#[derive(Debug, Clone)]
pub struct Resolver {
    declarations: BTreeMap<String, VariableDecl>,
    providers: Vec<EnvProvider>,
}

impl Resolver {
    pub fn new(declarations: BTreeMap<String, VariableDecl>, providers: Vec<EnvProvider>) -> Self {
        Self {
            declarations,
            providers,
        }
    }

    pub fn resolve(&self, name: &str) -> Result<String, VariableError> {
        let decl = self
            .declarations
            .get(name)
            .ok_or_else(|| VariableError::Undeclared(name.to_string()))?;
        if let Some(value) = self.providers.iter().find_map(|p| p.get(name)) {
            return Ok(value.to_string());
        }
        decl.default.clone().ok_or_else(|| {
            // The last provider is Spin's default environment provider.
            let hint = self
                .providers
                .last()
                .map(|p| p.env_name(name))
                .unwrap_or_else(|| "a provider".to_string());
            VariableError::RequiredMissing(name.to_string(), hint)
        })
    }

    /// Expands a template against the application variables.
    pub fn render(&self, template: &Template) -> Result<String, VariableError> {
        template.render(|name| self.resolve(name))
    }

    /// Fails if a required variable has no value, as Spin does at start.
    pub fn ensure_required_resolved(&self) -> Result<(), VariableError> {
        for (name, decl) in &self.declarations {
            if decl.required {
                self.resolve(name)?;
            }
        }
        Ok(())
    }

    /// Whether a variable is marked secret (its value must never be logged).
    pub fn is_secret(&self, name: &str) -> bool {
        self.declarations.get(name).is_some_and(|d| d.secret)
    }
}

/// Every component's variables, resolved once: what `variables.get` answers.
#[derive(Debug, Clone, Default)]
pub struct ComponentVariables {
    by_component: HashMap<String, Arc<BTreeMap<String, String>>>,
}

impl ComponentVariables {
    pub fn resolve(manifest: &Manifest, resolver: &Resolver) -> Result<Self, VariableError> {
        resolver.ensure_required_resolved()?;
        let mut by_component = HashMap::new();
        for (id, component) in &manifest.component {
            let mut values = BTreeMap::new();
            for (name, text) in &component.variables {
                let template = Template::parse(text).map_err(|source| VariableError::Template {
                    component: id.clone(),
                    name: name.clone(),
                    source,
                })?;
                values.insert(name.clone(), resolver.render(&template)?);
            }
            by_component.insert(id.clone(), Arc::new(values));
        }
        Ok(Self { by_component })
    }

    pub fn for_component(&self, id: &str) -> Arc<BTreeMap<String, String>> {
        self.by_component.get(id).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest::parse(
            r#"
spin_manifest_version = 2
[application]
name = "t"
[variables]
host = { default = "localhost" }
password = { required = true, secret = true }
[component.db]
source = "db.wasm"
variables = { url = "postgres://app:{{ password }}@{{ host }}/db", plain = "x" }
"#,
        )
        .unwrap()
    }

    fn env(pairs: &[(&str, &str)]) -> EnvProvider {
        EnvProvider::new(
            None,
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn provider_beats_default_and_fills_templates() {
        let m = manifest();
        let r = Resolver::new(
            m.variables.clone(),
            vec![env(&[
                ("SPIN_VARIABLE_PASSWORD", "s3cret"),
                ("SPIN_VARIABLE_HOST", "db.internal"),
            ])],
        );
        let vars = ComponentVariables::resolve(&m, &r).unwrap();
        let db = vars.for_component("db");
        assert_eq!(db["url"], "postgres://app:s3cret@db.internal/db");
        assert_eq!(db["plain"], "x");
        assert!(vars.for_component("other").is_empty());
        assert!(r.is_secret("password"));
    }

    #[test]
    fn default_used_when_no_provider_value() {
        let m = manifest();
        let r = Resolver::new(
            m.variables.clone(),
            vec![env(&[("SPIN_VARIABLE_PASSWORD", "p")])],
        );
        assert_eq!(r.resolve("host").unwrap(), "localhost");
    }

    #[test]
    fn missing_required_variable_names_the_env_var() {
        let m = manifest();
        let r = Resolver::new(m.variables.clone(), vec![env(&[])]);
        let err = ComponentVariables::resolve(&m, &r).unwrap_err();
        assert_eq!(
            err,
            VariableError::RequiredMissing("password".into(), "SPIN_VARIABLE_PASSWORD".into())
        );
    }

    #[test]
    fn template_naming_undeclared_variable_fails() {
        let mut m = manifest();
        m.component
            .get_mut("db")
            .unwrap()
            .variables
            .insert("bad".into(), "{{ nope }}".into());
        let r = Resolver::new(
            m.variables.clone(),
            vec![env(&[("SPIN_VARIABLE_PASSWORD", "p")])],
        );
        assert_eq!(
            ComponentVariables::resolve(&m, &r).unwrap_err(),
            VariableError::Undeclared("nope".into())
        );
    }

    #[test]
    fn custom_prefix() {
        let p = EnvProvider::new(Some("MART"), [("MART_HOST".to_string(), "h".to_string())]);
        assert_eq!(p.get("host"), Some("h"));
        assert_eq!(p.env_name("host"), "MART_HOST");
    }
}
