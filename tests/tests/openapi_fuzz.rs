//! The API document and the code agree under fuzzing: Schemathesis
//! (tests/fuzz/requirements.txt, installed by scripts/schemathesis.sh)
//! generates requests from openapi/openapi.json, valid and invalid, for
//! every operation, and checks each answer: no server error, a documented
//! status, content type, headers and body, valid requests accepted and
//! invalid ones refused, 405 with `Allow` for undocumented methods, the
//! documented authentication required. A fixed seed keeps the inputs the
//! same from run to run.

use std::process::Command;

use mart_integration_tests::{repo_root, Host};
use serde_json::json;

const ADMIN_EMAIL: &str = "fuzz-admin@mart.test";
const ADMIN_PASSWORD: &str = "fuzz-admin-password";

/// The document as this deployment serves it, with what no schema can say
/// made explicit:
/// - the shop's one currency is a setting (`shop_currency`), which the
///   published document can only describe; here it is the test host's;
/// - so are the payment providers it enables (`payment_providers`; the
///   test host enables `fake`);
/// - a paging cursor is opaque: only a value the API returned is one, so
///   the fuzzer sends none (paging by cursor is tested in catalog.rs and
///   saga.rs, and tampered cursors are refused there);
/// - changing the password needs the current one, and revokes the token
///   the fuzzer signs in with: the fuzzer changes names only (passwords
///   are tested in users.rs).
fn document_for_this_deployment() -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo_root().join("openapi/openapi.json")).unwrap();
    let mut document: serde_json::Value = serde_json::from_str(&text).unwrap();
    let schemas = &mut document["components"]["schemas"];
    schemas["CurrencyCode"]["enum"] = serde_json::json!(["EUR"]);
    schemas["ProductInput"]["properties"]["currency"]["enum"] = serde_json::json!(["EUR"]);
    schemas["PaymentProvider"]["enum"] = serde_json::json!(["fake"]);
    let profile = &mut schemas["ProfileUpdate"];
    for secret in ["password", "current_password"] {
        profile["properties"]
            .as_object_mut()
            .unwrap()
            .remove(secret);
    }
    profile.as_object_mut().unwrap().remove("anyOf");
    profile["required"] = serde_json::json!(["name"]);
    profile["properties"]["name"]["type"] = serde_json::json!("string");
    for operations in document["paths"].as_object_mut().unwrap().values_mut() {
        for operation in operations.as_object_mut().unwrap().values_mut() {
            if let Some(parameters) = operation
                .get_mut("parameters")
                .and_then(|p| p.as_array_mut())
            {
                parameters.retain(|p| p["name"] != "cursor");
            }
        }
    }
    let path = std::env::temp_dir().join(format!("mart-openapi-{}.json", std::process::id()));
    std::fs::write(&path, serde_json::to_vec(&document).unwrap()).unwrap();
    path
}

/// A fuzzing setting: the fixed default, or a deeper run's from the
/// environment (`MART_FUZZ_SEED=7 MART_FUZZ_EXAMPLES=200`).
fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

fn schemathesis() -> String {
    let out = Command::new(repo_root().join("scripts/schemathesis.sh"))
        .arg("bin")
        .output()
        .expect("running scripts/schemathesis.sh");
    assert!(
        out.status.success(),
        "schemathesis is not installed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn fuzzing_the_document_finds_no_disagreement_with_the_code() {
    // A real admin (created at its first login), so that the operations on
    // the caller's own account have an account to work on.
    let host = Host::start(
        "spin.toml",
        &[
            ("SPIN_VARIABLE_ADMIN_EMAIL", ADMIN_EMAIL.into()),
            ("SPIN_VARIABLE_ADMIN_PASSWORD", ADMIN_PASSWORD.into()),
        ],
    );
    let login = host.send_json(
        "POST",
        "/auth/token",
        &json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
    );
    assert_eq!(login.status, 200, "{}", login.text());
    let token = login.json()["access_token"].as_str().unwrap().to_string();
    let document = document_for_this_deployment();
    let out = Command::new(schemathesis())
        .arg("run")
        .arg(&document)
        .args(["--url", &host.base])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "all"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", &setting("MART_FUZZ_EXAMPLES", "20")])
        .args(["--seed", &setting("MART_FUZZ_SEED", "1")])
        // The document says once, for every text, that NUL is refused.
        .args(["--generation-allow-x00", "false"])
        .args(["--generation-database", "none"])
        .args(["--workers", "2", "--request-timeout", "30"])
        .args(["--no-color"])
        .current_dir(std::env::temp_dir())
        .output()
        .expect("running schemathesis");
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("Tested: 47"), "every operation: {report}");
    let _ = std::fs::remove_file(&document);
}
