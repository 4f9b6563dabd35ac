//! deploy/k8s cannot be applied here (no cluster), so what a cluster would
//! refuse, or run other than the app means, is checked: every manifest of
//! both overlays against its kind's published schema (tests/k8s/check.mjs),
//! and the rendered overlays against spin.toml, kong/kong.yml, the
//! migrations and deploy/k8s/create-secrets.sh.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use mart_integration_tests::{kong, repo_root};
use mart_manifest::App;
use serde_json::Value;

const OVERLAYS: [&str; 2] = ["deploy/k8s/overlays/dev", "deploy/k8s/overlays/prod"];
const ARGO_APPLICATION: &str = "deploy/k8s/argocd/application.yaml";

/// Runs the schema check over `paths` (kustomizations or YAML files):
/// whether it passed, what it printed, and the documents it rendered.
fn check(paths: &[&Path]) -> (bool, String, BTreeMap<String, Vec<Value>>) {
    let out = std::env::temp_dir().join(format!(
        "mart-k8s-{}-{}.json",
        std::process::id(),
        paths.len()
    ));
    let output = Command::new("node")
        .current_dir(repo_root())
        .arg("tests/k8s/check.mjs")
        .arg("--out")
        .arg(&out)
        .args(paths)
        .output()
        .expect("node runs tests/k8s/check.mjs (make test installs its packages)");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let rendered = std::fs::read_to_string(&out)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    (output.status.success(), printed, rendered)
}

/// Both overlays, rendered and checked once per test binary.
fn rendered() -> &'static BTreeMap<String, Vec<Value>> {
    static RENDERED: OnceLock<BTreeMap<String, Vec<Value>>> = OnceLock::new();
    RENDERED.get_or_init(|| {
        let root = repo_root();
        let paths: Vec<_> = OVERLAYS
            .iter()
            .chain([&ARGO_APPLICATION])
            .map(|p| root.join(p))
            .collect();
        let (passed, printed, rendered) =
            check(&paths.iter().map(|p| p.as_path()).collect::<Vec<_>>());
        assert!(
            passed,
            "the manifests do not pass their schemas:\n{printed}"
        );
        rendered
            .into_iter()
            .map(|(path, docs)| {
                let relative = Path::new(&path).strip_prefix(&root).unwrap().to_owned();
                (relative.display().to_string(), docs)
            })
            .collect()
    })
}

/// The documents of `overlay`.
fn documents(overlay: &str) -> &'static [Value] {
    &rendered()[overlay]
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn named<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn app() -> App {
    App::load(&repo_root().join("spin.toml")).expect("spin.toml")
}

/// The app's one container of a Deployment.
fn container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1, "one container per Mart pod");
    &containers[0]
}

/// Every Deployment and Job that runs Mart's host, with its pod template.
fn mart_pods(docs: &[Value]) -> Vec<(&Value, &Value)> {
    docs.iter()
        .filter(|d| d["kind"] == "Deployment" || d["kind"] == "Job")
        .map(|d| (d, &d["spec"]["template"]))
        .collect()
}

#[test]
fn every_manifest_passes_its_kinds_published_schema() {
    // rendered() fails the test with the findings if any; what passed is
    // the whole app, and the Argo CD Application.
    for overlay in OVERLAYS {
        assert!(
            documents(overlay).len() > 30,
            "{overlay} renders the whole app"
        );
    }
    assert_eq!(
        of_kind(&rendered()[ARGO_APPLICATION], "Application").len(),
        1
    );
}

#[test]
fn the_schema_check_refuses_what_the_api_server_would() {
    // A copy of the base with one mistake per kind of validator.
    let dir = std::env::temp_dir().join(format!("mart-k8s-broken-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let base = repo_root().join("deploy/k8s/base");
    for entry in std::fs::read_dir(&base).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    let spoil = |file: &str, from: &str, to: &str| {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has {from}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    };
    // A misspelt field (kubectl's strict validation refuses it).
    spoil(
        "timer.yaml",
        "terminationGracePeriodSeconds",
        "terminationGracePeriodSecond",
    );
    // A wrong type in a CRD (Strimzi's schema).
    spoil("topics.yaml", "partitions: 4", "partitions: four");
    // An unknown field in a SpinApp (the schema written here).
    spoil(
        "http.yaml",
        "enableAutoscaling: true",
        "enableAutoscale: true",
    );
    // A KongPlugin without its plugin.
    spoil("kong.yaml", "plugin: jwt", "plugins: jwt");
    let (passed, printed, _) = check(&[dir.as_path()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!passed, "{printed}");
    for (object, why) in [
        (
            "Deployment/mart-orders-expiry",
            "terminationGracePeriodSecond",
        ),
        ("KafkaTopic/mart-catalog", "must be integer"),
        ("SpinApp/mart-http", "must NOT have additional properties"),
        (
            "KongPlugin/mart-jwt",
            "must have required property 'plugin'",
        ),
    ] {
        assert!(
            printed
                .lines()
                .any(|l| l.contains(object) && l.contains(why)),
            "{object}: {why} not found in:\n{printed}"
        );
    }
}

#[test]
fn every_kafka_handler_runs_alone_and_scales_on_its_own_groups_lag() {
    let app = app();
    let partitions = app.manifest.kafka_config().unwrap().partitions.unwrap();
    let triggers = app.manifest.kafka_triggers().unwrap();
    assert!(!triggers.is_empty());
    for overlay in OVERLAYS {
        let docs = documents(overlay);
        for trigger in &triggers {
            let name = format!("mart-{}", trigger.component);
            let deployment = named(docs, "Deployment", &name);
            let args = strings(&container(deployment)["args"]);
            assert_eq!(
                args.windows(2)
                    .filter(|w| w[0] == "--component-id")
                    .map(|w| w[1].as_str())
                    .collect::<Vec<_>>(),
                [trigger.component.as_str()],
                "{overlay}: {name} runs its handler alone: {args:?}"
            );
            let scaler = named(docs, "ScaledObject", &name);
            assert_eq!(scaler["spec"]["scaleTargetRef"]["name"], name.as_str());
            let max = scaler["spec"]["maxReplicaCount"].as_i64().unwrap();
            assert!(
                (1..=i64::from(partitions)).contains(&max),
                "{overlay}: {name} scales to {max}, the topics have {partitions} partitions"
            );
            assert!(scaler["spec"]["minReplicaCount"].as_i64().unwrap() >= 1);
            let kafka: Vec<&Value> = scaler["spec"]["triggers"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["type"] == "kafka")
                .collect();
            let group = trigger.group_id(&app.manifest.application.name);
            for t in &kafka {
                assert_eq!(
                    t["metadata"]["consumerGroup"],
                    group.as_str(),
                    "{overlay}: {name}"
                );
                assert_eq!(
                    t["metadata"]["bootstrapServers"],
                    *configured(docs, "SPIN_VARIABLE_KAFKA_BROKERS"),
                    "{overlay}: {name} measures lag where the handler consumes"
                );
            }
            let scaled_topics: BTreeSet<String> = kafka
                .iter()
                .map(|t| t["metadata"]["topic"].as_str().unwrap().to_string())
                .collect();
            let read: BTreeSet<String> = trigger.topics.iter().cloned().collect();
            assert_eq!(
                scaled_topics, read,
                "{overlay}: {name} scales on every topic it reads"
            );
        }
        // Nothing else is scaled on Kafka lag.
        assert_eq!(
            of_kind(docs, "ScaledObject").len(),
            triggers.len(),
            "{overlay}"
        );
    }
}

/// A value of the `mart-config` ConfigMap.
fn configured<'a>(docs: &'a [Value], key: &str) -> &'a Value {
    &named(docs, "ConfigMap", "mart-config")["data"][key]
}

#[test]
fn the_timer_runs_in_one_pod_only() {
    let timers = app().manifest.timer_triggers().unwrap();
    assert!(!timers.is_empty());
    for overlay in OVERLAYS {
        let docs = documents(overlay);
        for timer in &timers {
            let name = format!("mart-{}", timer.component);
            let deployment = named(docs, "Deployment", &name);
            assert_eq!(deployment["spec"]["replicas"], 1, "{overlay}: {name}");
            assert_eq!(
                deployment["spec"]["strategy"]["type"], "Recreate",
                "{overlay}: {name}: no second pod during a rollout"
            );
            let args = strings(&container(deployment)["args"]);
            assert!(args
                .windows(2)
                .any(|w| w == ["--component-id", timer.component.as_str()]));
            for scaler in ["ScaledObject", "HorizontalPodAutoscaler"] {
                assert!(
                    of_kind(docs, scaler)
                        .iter()
                        .all(|s| s["spec"]["scaleTargetRef"]["name"] != name.as_str()),
                    "{overlay}: {name} is scaled by a {scaler}"
                );
            }
        }
    }
}

#[test]
fn every_topic_the_host_would_create_is_a_kafka_topic_with_its_partitions() {
    let app = app();
    let partitions = app.manifest.kafka_config().unwrap().partitions.unwrap();
    let expected: BTreeSet<String> = mart_host::events::topics_to_create(&app)
        .unwrap()
        .into_iter()
        .collect();
    for overlay in OVERLAYS {
        let docs = documents(overlay);
        let topics = of_kind(docs, "KafkaTopic");
        let declared: BTreeSet<String> = topics
            .iter()
            .map(|t| t["spec"]["topicName"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(declared, expected, "{overlay}");
        let brokers = named(docs, "KafkaNodePool", "mart-kafka-nodes")["spec"]["replicas"]
            .as_i64()
            .unwrap();
        for topic in topics {
            let name = &topic["spec"]["topicName"];
            assert_eq!(topic["spec"]["partitions"], partitions, "{overlay}: {name}");
            assert_eq!(
                topic["metadata"]["labels"]["strimzi.io/cluster"],
                "mart-kafka"
            );
            let replicas = topic["spec"]["replicas"].as_i64().unwrap();
            assert!(
                replicas <= brokers,
                "{overlay}: {name} on {replicas} of {brokers} brokers"
            );
            // acks=all must not stop when one replica is away (with more than one).
            let min_isr = topic["spec"]["config"]["min.insync.replicas"]
                .as_i64()
                .unwrap();
            assert!(min_isr < replicas || replicas == 1, "{overlay}: {name}");
        }
    }
    // Production survives a lost broker.
    let prod = documents(OVERLAYS[1]);
    assert!(of_kind(prod, "KafkaTopic")
        .iter()
        .all(|t| t["spec"]["replicas"] == 3));
}

#[test]
fn kong_ingresses_are_kong_ymls_routes_with_the_same_plugins() {
    let routes = kong::routes();
    let global = kong::global_plugins();
    let kong_yml = kong::rendered();
    for overlay in OVERLAYS {
        let docs = documents(overlay);
        let plugins: BTreeMap<&str, &Value> = of_kind(docs, "KongPlugin")
            .into_iter()
            .map(|p| (p["metadata"]["name"].as_str().unwrap(), p))
            .collect();
        let ingresses = of_kind(docs, "Ingress");
        assert_eq!(
            ingresses.len(),
            routes.len(),
            "{overlay}: one Ingress per kong.yml route"
        );
        for route in &routes {
            let ingress = named(docs, "Ingress", &format!("mart-{}", route.name));
            let at = format!("{overlay}: Ingress for route {}", route.name);
            let annotations = &ingress["metadata"]["annotations"];
            assert_eq!(ingress["spec"]["ingressClassName"], "kong", "{at}");
            assert_eq!(annotations["konghq.com/strip-path"], "false", "{at}");
            let methods: Vec<&str> = annotations["konghq.com/methods"]
                .as_str()
                .map(|m| m.split(',').collect())
                .unwrap_or_default();
            assert_eq!(methods, route.methods, "{at}");
            let paths: Vec<(String, &str)> = ingress["spec"]["rules"][0]["http"]["paths"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    let backend = &p["backend"]["service"];
                    assert_eq!(
                        backend["name"], "mart-http",
                        "{at}: to the SpinApp's Service"
                    );
                    assert_eq!(backend["port"]["number"], 80, "{at}");
                    (
                        p["path"].as_str().unwrap().to_string(),
                        p["pathType"].as_str().unwrap(),
                    )
                })
                .collect();
            let expected: Vec<(String, &str)> = route
                .paths
                .iter()
                .map(|p| match p.strip_prefix('~') {
                    // Kong Ingress Controller 3: a regex path starts with /~.
                    Some(regex) => (format!("/~{regex}"), "ImplementationSpecific"),
                    None => (p.clone(), "Prefix"),
                })
                .collect();
            assert_eq!(paths, expected, "{at}");
            // The plugins the route gets: kong.yml's global ones and its own,
            // each with kong.yml's config.
            let attached: Vec<&Value> = annotations["konghq.com/plugins"]
                .as_str()
                .unwrap()
                .split(',')
                .map(|name| {
                    *plugins
                        .get(name)
                        .unwrap_or_else(|| panic!("{at}: no KongPlugin {name}"))
                })
                .collect();
            let mut kinds: Vec<String> = attached
                .iter()
                .map(|p| p["plugin"].as_str().unwrap().to_string())
                .collect();
            // A route's own plugin replaces the global one of its kind.
            let mut wanted: Vec<String> = global
                .iter()
                .filter(|g| !route.plugins.contains(g))
                .chain(&route.plugins)
                .cloned()
                .collect();
            kinds.sort();
            wanted.sort();
            assert_eq!(kinds, wanted, "{at}");
            for plugin in attached {
                let kind = plugin["plugin"].as_str().unwrap();
                let config = yaml_to_json(&kong_plugin_config(&kong_yml, &route.name, kind));
                assert_eq!(
                    plugin["config"], config,
                    "{at}: {kind}'s config as in kong.yml"
                );
            }
        }
        // The consumer whose credential checks tokens.
        let consumer = named(docs, "KongConsumer", "mart-token-issuer");
        assert_eq!(
            consumer["username"],
            kong_yml["consumers"][0]["username"].as_str().unwrap()
        );
        assert_eq!(strings(&consumer["credentials"]), ["mart-kong-jwt"]);
    }
}

/// The config kong.yml gives plugin `kind` on route `route` (its own, else
/// the global one).
fn kong_plugin_config(kong_yml: &serde_yaml::Value, route: &str, kind: &str) -> serde_yaml::Value {
    let find = |plugins: &serde_yaml::Value| {
        plugins.as_sequence().and_then(|ps| {
            ps.iter()
                .find(|p| p["name"] == kind)
                .map(|p| p["config"].clone())
        })
    };
    let own = kong_yml["services"][0]["routes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|r| r["name"] == route)
        .and_then(|r| find(&r["plugins"]));
    own.or_else(|| find(&kong_yml["plugins"]))
        .unwrap_or_else(|| panic!("kong.yml has no {kind} for {route}"))
}

fn yaml_to_json(v: &serde_yaml::Value) -> Value {
    serde_json::to_value(v).unwrap()
}

#[test]
fn the_spinapp_serves_every_http_route_on_spin_with_the_variables_it_needs() {
    let app = app();
    let declared = &app.manifest.variables;
    let required: BTreeSet<&str> = declared
        .iter()
        .filter(|(_, v)| v.required)
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(!required.is_empty());
    for overlay in OVERLAYS {
        let docs = documents(overlay);
        let spin_apps = of_kind(docs, "SpinApp");
        assert_eq!(
            spin_apps.len(),
            1,
            "{overlay}: the HTTP components run as one SpinApp"
        );
        let spin_app = spin_apps[0];
        assert_eq!(spin_app["spec"]["executor"], "containerd-shim-spin");
        // Every HTTP route is the SpinApp's: the Ingresses send everything
        // to its Service, and the HTTP-only manifest keeps every route.
        assert!(
            spin_app["spec"].get("components").is_none(),
            "all the artifact's components"
        );
        let variables: BTreeMap<&str, &Value> = spin_app["spec"]["variables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["name"].as_str().unwrap(), v))
            .collect();
        for name in variables.keys() {
            assert!(
                declared.contains_key(*name),
                "{overlay}: {name} is not a spin.toml variable"
            );
        }
        for name in &required {
            let variable = variables
                .get(name)
                .unwrap_or_else(|| panic!("{overlay}: the SpinApp lacks required {name}"));
            assert_ne!(
                variable["valueFrom"]["secretKeyRef"]["optional"], true,
                "{overlay}: {name} is required"
            );
        }
        // Autoscaled on CPU, with a disruption budget.
        let hpa = named(docs, "HorizontalPodAutoscaler", "mart-http");
        assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "mart-http");
        assert_eq!(spin_app["spec"]["enableAutoscaling"], true);
        assert!(
            spin_app["spec"]["resources"]["requests"]["cpu"].is_string(),
            "HPA needs a CPU request"
        );
        let pdb = named(docs, "PodDisruptionBudget", "mart-http");
        assert_eq!(
            pdb["spec"]["selector"]["matchLabels"]["core.spinkube.dev/app-name"],
            "mart-http"
        );
    }
}

#[test]
fn no_secret_is_in_the_manifests_and_every_one_named_is_made_by_the_script() {
    let script = std::fs::read_to_string(repo_root().join("deploy/k8s/create-secrets.sh")).unwrap();
    let services: Vec<String> = databases();
    let made = |name: &str| -> bool {
        match name.strip_prefix("mart-db-") {
            Some(service) if service != "owner" => {
                services.iter().any(|s| s == service)
                    && script.contains("basic_auth \"mart-db-$s\"")
            }
            _ => script.contains(&format!(" {name} ")) || script.contains(&format!(" {name}\n")),
        }
    };
    let declared = app().manifest.variables;
    for overlay in OVERLAYS {
        let docs = documents(overlay);
        assert!(
            of_kind(docs, "Secret").is_empty(),
            "{overlay}: a Secret in git"
        );
        let mut named_secrets = BTreeSet::new();
        collect_secret_names(&Value::Array(docs.to_vec()), &mut named_secrets);
        for name in &named_secrets {
            assert!(
                made(name),
                "{overlay}: Secret {name} is not made by create-secrets.sh"
            );
        }
        for key in named(docs, "ConfigMap", "mart-config")["data"]
            .as_object()
            .unwrap()
            .keys()
        {
            if let Some(var) = key.strip_prefix("SPIN_VARIABLE_") {
                assert!(
                    declared.contains_key(&var.to_lowercase()),
                    "{overlay}: {key}"
                );
            }
        }
        // Every Mart pod reads the same variables.
        for (workload, pod) in mart_pods(docs) {
            if workload["kind"] == "Job" {
                continue;
            }
            let from: Vec<String> = pod["spec"]["containers"][0]["envFrom"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    e["configMapRef"]["name"]
                        .as_str()
                        .or(e["secretRef"]["name"].as_str())
                        .unwrap()
                        .to_string()
                })
                .collect();
            assert_eq!(
                from,
                ["mart-config", "mart-app"],
                "{overlay}: {}",
                workload["metadata"]["name"]
            );
        }
    }
}

/// Every `name` of a secretKeyRef, secretRef, passwordSecret or credential.
fn collect_secret_names(v: &Value, names: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            for (key, value) in map {
                if matches!(
                    key.as_str(),
                    "secretKeyRef" | "secretRef" | "passwordSecret" | "secret"
                ) {
                    if let Some(name) = value["name"].as_str() {
                        names.insert(name.to_string());
                    }
                }
                if key == "credentials" {
                    names.extend(strings(value));
                }
                collect_secret_names(value, names);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_secret_names(i, names)),
        _ => {}
    }
}

/// The service databases (one migrations folder each).
fn databases() -> Vec<String> {
    let mut dbs: Vec<String> = std::fs::read_dir(repo_root().join("migrations"))
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            e.file_type()
                .unwrap()
                .is_dir()
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect();
    dbs.sort();
    dbs
}

#[test]
fn every_mart_pod_is_probed_on_its_admin_listener_and_bounded() {
    for overlay in OVERLAYS {
        let docs = documents(overlay);
        let admin_port: u16 = configured(docs, "MART_ADMIN_LISTEN")
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        for (workload, pod) in mart_pods(docs) {
            let name = format!("{overlay}: {}", workload["metadata"]["name"]);
            let container = &pod["spec"]["containers"][0];
            assert!(
                container["resources"]["requests"]["cpu"].is_string(),
                "{name}"
            );
            assert!(
                container["resources"]["limits"]["memory"].is_string(),
                "{name}"
            );
            assert_eq!(
                container["securityContext"]["allowPrivilegeEscalation"], false,
                "{name}"
            );
            assert_eq!(
                pod["spec"]["securityContext"]["runAsNonRoot"], true,
                "{name}"
            );
            if workload["kind"] == "Job" {
                continue;
            }
            let port = container["ports"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == "admin")
                .unwrap_or_else(|| panic!("{name}: no admin port"));
            assert_eq!(port["containerPort"], admin_port, "{name}");
            assert_eq!(
                container["readinessProbe"]["httpGet"]["path"], "/readyz",
                "{name}"
            );
            assert_eq!(
                container["livenessProbe"]["httpGet"]["path"], "/healthz",
                "{name}"
            );
            // A pod that may have company (scaled) keeps one through a drain.
            if workload["spec"]["strategy"]["type"] != "Recreate" {
                let pdb = named(
                    docs,
                    "PodDisruptionBudget",
                    workload["metadata"]["name"].as_str().unwrap(),
                );
                assert_eq!(
                    pdb["spec"]["selector"]["matchLabels"],
                    workload["spec"]["selector"]["matchLabels"],
                    "{name}"
                );
            }
        }
        // Migrations run before the app: Argo CD's wave order.
        let wave = |d: &Value| -> i64 {
            d["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
                .as_str()
                .map_or(0, |w| w.parse().unwrap())
        };
        let migrate = named(docs, "Job", "mart-migrate");
        for (workload, _) in mart_pods(docs) {
            if workload["kind"] == "Deployment" {
                assert!(
                    wave(workload) > wave(migrate),
                    "{overlay}: {}",
                    workload["metadata"]["name"]
                );
            }
        }
        assert!(wave(named(docs, "SpinApp", "mart-http")) > wave(migrate));
        assert!(wave(migrate) > wave(named(docs, "Cluster", "mart-pg")));
    }
}

#[test]
fn postgres_has_a_role_per_service_database_with_its_own_password() {
    for overlay in OVERLAYS {
        let cluster = named(documents(overlay), "Cluster", "mart-pg");
        let roles: BTreeMap<&str, &Value> = cluster["spec"]["managed"]["roles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["name"].as_str().unwrap(), r))
            .collect();
        for database in databases() {
            let role = format!("mart_{database}");
            let r = roles
                .get(role.as_str())
                .unwrap_or_else(|| panic!("{overlay}: no role {role}"));
            assert_eq!(r["login"], true);
            assert_eq!(r["passwordSecret"]["name"], format!("mart-db-{database}"));
            assert_ne!(
                r["createdb"], true,
                "{role} holds one database, creates none"
            );
        }
        // The owner creates the service databases (`mart migrate`).
        assert_eq!(roles["mart"]["createdb"], true);
        assert_eq!(
            roles.len(),
            databases().len() + 1,
            "{overlay}: no other role"
        );
        let host = configured(documents(overlay), "SPIN_VARIABLE_PG_HOST");
        assert_eq!(host, "mart-pg-rw", "the app talks to the primary");
    }
    // Production has replicas to fail over to.
    assert_eq!(
        named(documents(OVERLAYS[1]), "Cluster", "mart-pg")["spec"]["instances"],
        3
    );
}
