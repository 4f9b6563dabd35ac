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
