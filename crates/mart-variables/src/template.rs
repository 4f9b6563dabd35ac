use mart_manifest::check_variable_name;

/// A string with `{{ variable }}` references, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Variable(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unclosed `{{{{` in `{0}`")]
    Unclosed(String),
    #[error("in `{template}`: {message}")]
    BadName { template: String, message: String },
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            push_literal(&mut parts, &rest[..open]);
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| TemplateError::Unclosed(text.to_string()))?;
            let name = after[..close].trim();
            check_variable_name(name).map_err(|message| TemplateError::BadName {
                template: text.to_string(),
                message,
            })?;
            parts.push(Part::Variable(name.to_string()));
            rest = &after[close + 2..];
        }
        push_literal(&mut parts, rest);
        Ok(Self { parts })
    }

    /// Names of the variables this template refers to.
    pub fn references(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Variable(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Fills the template, asking `lookup` for each referenced variable.
    pub fn render<E>(
        &self,
        mut lookup: impl FnMut(&str) -> Result<String, E>,
    ) -> Result<String, E> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Variable(name) => out.push_str(&lookup(name)?),
            }
        }
        Ok(out)
    }
}

/// Spin has no escapes: a lone `}}` is literal text.
fn push_literal(parts: &mut Vec<Part>, literal: &str) {
    if !literal.is_empty() {
        parts.push(Part::Literal(literal.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(text: &str) -> String {
        Template::parse(text)
            .unwrap()
            .render(|name| Ok::<_, ()>(format!("<{name}>")))
            .unwrap()
    }

    #[test]
    fn renders_literals_and_references() {
        assert_eq!(render("plain"), "plain");
        assert_eq!(render("{{a}}"), "<a>");
        assert_eq!(
            render("postgres://{{ user }}@{{host}}:5432/db"),
            "postgres://<user>@<host>:5432/db"
        );
        assert_eq!(render(""), "");
    }

    #[test]
    fn lists_references() {
        let t = Template::parse("{{ a }}-{{ b }}-{{ a }}").unwrap();
        assert_eq!(t.references().collect::<Vec<_>>(), ["a", "b", "a"]);
    }

    #[test]
    fn rejects_malformed_templates() {
        assert!(matches!(
            Template::parse("{{ a "),
            Err(TemplateError::Unclosed(_))
        ));
        assert_eq!(render("a }}"), "a }}");
        assert!(matches!(
            Template::parse("{{ A }}"),
            Err(TemplateError::BadName { .. })
        ));
        assert!(matches!(
            Template::parse("{{}}"),
            Err(TemplateError::BadName { .. })
        ));
    }
}
