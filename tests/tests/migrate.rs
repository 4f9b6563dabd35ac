//! `mart migrate`: creates databases, applies once, safe to run concurrently,
//! refuses edited migrations.

use std::process::{Command, Output};

use mart_integration_tests::{mart_bin, postgres};

fn migrate(dir: &std::path::Path) -> Output {
    Command::new(mart_bin())
        .args([
            "migrate",
            "--database-url",
            &postgres().server_url(),
            "--migrations",
        ])
        .arg(dir)
        .output()
        .expect("running mart migrate")
}

#[test]
fn concurrent_runs_apply_each_migration_once_and_edits_are_refused() {
    let pg = postgres();
    let database = format!("migtest_{}", std::process::id());
    let root = std::env::temp_dir().join(format!("mart-migrations-{}", std::process::id()));
    let dir = root.join(&database);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("0001_create.sql"),
        "CREATE TABLE things (id int PRIMARY KEY);",
    )
    .unwrap();
    std::fs::write(
        dir.join("0002_fill.sql"),
        "INSERT INTO things VALUES (1), (2);",
    )
    .unwrap();

    let runs: Vec<_> = (0..3)
        .map(|_| {
            let root = root.clone();
            std::thread::spawn(move || migrate(&root))
        })
        .collect();
    for run in runs {
        let out = run.join().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let count: i64 = pg.query(&database, "SELECT count(*) FROM things")[0].get(0);
    assert_eq!(count, 2, "each migration ran exactly once");
    let applied: i64 = pg.query(&database, "SELECT count(*) FROM mart_migrations")[0].get(0);
    assert_eq!(applied, 2);

    let again = migrate(&root);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("0 migration(s) applied"));

    std::fs::write(dir.join("0002_fill.sql"), "INSERT INTO things VALUES (3);").unwrap();
    let edited = migrate(&root);
    assert!(!edited.status.success());
    assert!(String::from_utf8_lossy(&edited.stderr).contains("was changed after it was applied"));

    std::fs::write(
        dir.join("0002_fill.sql"),
        "INSERT INTO things VALUES (1), (2);",
    )
    .unwrap();
    std::fs::write(
        dir.join("0003_broken.sql"),
        "INSERT INTO things VALUES (4); SELECT nonsense FROM nowhere;",
    )
    .unwrap();
    let broken = migrate(&root);
    assert!(!broken.status.success());
    assert!(String::from_utf8_lossy(&broken.stderr).contains("0003_broken.sql"));
    let count: i64 = pg.query(&database, "SELECT count(*) FROM things")[0].get(0);
    assert_eq!(count, 2, "a failing migration leaves nothing behind");

    std::fs::remove_dir_all(&root).unwrap();
}

/// Runs `sql` on `database` as `role`; the error's message if it fails.
fn as_role(role: &str, database: &str, sql: &str) -> Result<(), String> {
    postgres().execute_as(role, database, sql)
}

#[test]
fn each_service_reaches_its_own_database_only() {
    // The test cluster is migrated at start, roles and grants included.
    postgres();
    // Its own tables: read and write.
    as_role(
        "mart_catalog",
        "catalog",
        "SELECT count(*) FROM products; \
         INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, payload) \
           VALUES (gen_random_uuid(), 'test', 'x', 'role.test', '{}'); \
         DELETE FROM outbox WHERE event_type = 'role.test';",
    )
    .unwrap();
    // Another service's database: not even a connection.
    let refused = as_role("mart_catalog", "users", "SELECT 1").unwrap_err();
    assert!(
        refused.contains("permission denied for database"),
        "{refused}"
    );
    let refused = as_role("mart_orders", "payments", "SELECT 1").unwrap_err();
    assert!(
        refused.contains("permission denied for database"),
        "{refused}"
    );
    // No schema changes, no rewriting the migration records.
    let ddl = as_role("mart_catalog", "catalog", "DROP TABLE products").unwrap_err();
    assert!(ddl.contains("must be owner"), "{ddl}");
    let ddl = as_role("mart_catalog", "catalog", "CREATE TABLE t (x int)").unwrap_err();
    assert!(ddl.contains("permission denied for schema"), "{ddl}");
    let records = as_role("mart_catalog", "catalog", "DELETE FROM mart_migrations").unwrap_err();
    assert!(records.contains("permission denied"), "{records}");
}

#[test]
fn the_relay_reaches_outboxes_and_processed_events_only() {
    postgres();
    // What the relay does: read and mark the outbox, delete sent rows,
    // prune processed events (carts has no outbox, only the record).
    as_role(
        "mart_relay",
        "orders",
        "SELECT seq FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT 1; \
         UPDATE outbox SET sent_at = sent_at WHERE seq = -1; \
         DELETE FROM outbox WHERE sent_at < now() - interval '100 years'; \
         DELETE FROM processed_events WHERE processed_at < now() - interval '100 years';",
    )
    .unwrap();
    as_role(
        "mart_relay",
        "carts",
        "DELETE FROM processed_events WHERE processed_at < now() - interval '100 years'",
    )
    .unwrap();
    // Not the services' data, not writing events, not the schema.
    for (database, sql) in [
        ("orders", "SELECT count(*) FROM orders"),
        ("payments", "SELECT count(*) FROM payments"),
        ("users", "SELECT count(*) FROM users"),
        (
            "orders",
            "INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, payload) \
             VALUES (gen_random_uuid(), 'payments', 'x', 'payment.succeeded', '{}')",
        ),
        ("orders", "UPDATE outbox SET payload = '{}' WHERE seq = -1"),
        ("orders", "CREATE TABLE t (x int)"),
    ] {
        let refused = as_role("mart_relay", database, sql).unwrap_err();
        assert!(
            refused.contains("permission denied"),
            "{database}: {sql}: {refused}"
        );
    }
}

#[test]
fn the_manifest_gives_each_component_its_services_role() {
    let manifest: toml::Table = toml::from_str(
        &std::fs::read_to_string(mart_integration_tests::repo_root().join("spin.toml")).unwrap(),
    )
    .unwrap();
    let mut seen = 0;
    for (id, component) in manifest["component"].as_table().unwrap() {
        let Some(url) = component
            .get("variables")
            .and_then(|v| v.get("db_url"))
            .and_then(|v| v.as_str())
        else {
            continue;
        };
        let (credentials, database) = url
            .trim_start_matches("postgres://")
            .split_once('@')
            .map(|(c, rest)| (c, rest.rsplit('/').next().unwrap()))
            .unwrap();
        let user = credentials.split(':').next().unwrap();
        assert_eq!(user, format!("mart_{database}"), "component `{id}`: {url}");
        assert!(
            credentials.ends_with(&format!(":{{{{ {database}_db_password }}}}")),
            "component `{id}` has its service's password variable: {url}"
        );
        seen += 1;
    }
    assert!(seen >= 7, "every service's components");
}
