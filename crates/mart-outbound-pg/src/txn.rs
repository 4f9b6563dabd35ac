//! Whether a pooled connection may still be inside a transaction.
//!
//! Statements reach PostgreSQL one at a time through the extended protocol,
//! so the leading keyword of each statement tells when a transaction begins
//! and ends. When in doubt this says "maybe", which costs one ROLLBACK.

#[derive(Debug, Default)]
pub(crate) struct TxnTracker {
    open: bool,
}

impl TxnTracker {
    pub(crate) fn observe(&mut self, statement: &str) {
        let words = leading_words(statement);
        match words.as_slice() {
            [first, ..] if first == "begin" || first == "start" => self.open = true,
            [first, second, ..] if first == "rollback" && (second == "to" || second == "and") => {
                // ROLLBACK TO SAVEPOINT stays inside; ROLLBACK AND CHAIN opens a new one.
            }
            [first, second, ..] if first == "commit" && second == "and" => {}
            [first, ..]
                if first == "commit"
                    || first == "end"
                    || first == "rollback"
                    || first == "abort" =>
            {
                self.open = false
            }
            [first, second, ..] if first == "prepare" && second == "transaction" => {
                self.open = false
            }
            _ => {}
        }
    }

    pub(crate) fn maybe_in_transaction(&self) -> bool {
        self.open
    }
}

/// The first two keywords of a statement, lower-cased, comments skipped.
fn leading_words(statement: &str) -> Vec<String> {
    let mut rest = statement;
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map(|(_, r)| r).unwrap_or("");
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map(|(_, r)| r).unwrap_or("");
        } else {
            break;
        }
    }
    rest.split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
        .take(2)
        .map(str::to_ascii_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(statements: &[&str]) -> bool {
        let mut t = TxnTracker::default();
        for s in statements {
            t.observe(s);
        }
        t.maybe_in_transaction()
    }

    #[test]
    fn tracks_begin_and_end() {
        assert!(!after(&[]));
        assert!(after(&["BEGIN"]));
        assert!(after(&["  -- why\n begin isolation level serializable"]));
        assert!(after(&["/* x */ START TRANSACTION"]));
        assert!(!after(&["BEGIN", "INSERT INTO t VALUES (1)", "COMMIT"]));
        assert!(!after(&["begin", "rollback"]));
        assert!(!after(&["begin", "END"]));
        assert!(after(&["begin", "ROLLBACK TO SAVEPOINT a"]));
        assert!(after(&["begin", "COMMIT AND CHAIN"]));
        assert!(!after(&["SELECT 1"]));
    }
}
