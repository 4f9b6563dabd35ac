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

/// The documents of `kind`, by their name.
fn by_name<'a>(docs: &'a [Value], kind: &str) -> BTreeMap<&'a str, &'a Value> {
    of_kind(docs, kind)
        .into_iter()
        .map(|d| (d["metadata"]["name"].as_str().unwrap(), d))
        .collect()
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
        (
            "SpinApp/mart-catalog",
            "must NOT have additional properties",
        ),
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
    let app = app();
    let routes = kong::routes();
    let global = kong::global_plugins();
    let kong_yml = kong::rendered();
    for overlay in OVERLAYS {
        let docs = documents(overlay);
        let plugins: BTreeMap<&str, &Value> = by_name(docs, "KongPlugin");
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
                    let path = p["path"].as_str().unwrap();
                    let component = http_component_for(&app, path);
                    let spin_app = backend["name"].as_str().unwrap();
                    assert!(
                        spin_app_components(docs, spin_app).contains(&component),
                        "{at}: {path} goes to SpinApp {spin_app}, which does not run {component}"
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
fn the_spinapps_serve_every_http_component_on_spin_with_the_variables_it_needs() {
    let app = app();
    let declared = &app.manifest.variables;
    let required: BTreeSet<&str> = declared
        .iter()
        .filter(|(_, v)| v.required)
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(!required.is_empty());
    let http_components: BTreeSet<String> = app
        .manifest
        .trigger
        .http
        .iter()
        .map(|t| t.component.clone())
        .collect();
    for overlay in OVERLAYS {
        let docs = documents(overlay);
        let spin_apps = of_kind(docs, "SpinApp");
        let mut served = BTreeSet::new();
        for spin_app in &spin_apps {
            let name = spin_app["metadata"]["name"].as_str().unwrap();
            let at = format!("{overlay}: SpinApp {name}");
            assert_eq!(spin_app["spec"]["executor"], "containerd-shim-spin");
            // Spin's selective deployment: each SpinApp runs its own
            // components, and every component one of them calls through
            // local service chaining.
            let components = spin_app_components(docs, name);
            assert!(!components.is_empty(), "{at}: names its components");
            for component in &components {
                assert!(http_components.contains(component), "{at}: {component}");
                for target in chained(&app, component) {
                    assert!(
                        components.contains(&target),
                        "{at}: {component} calls {target}.spin.internal, which is not beside it"
                    );
                }
            }
            served.extend(components);
            let variables: BTreeMap<&str, &Value> = spin_app["spec"]["variables"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| (v["name"].as_str().unwrap(), v))
                .collect();
            for name in variables.keys() {
                assert!(
                    declared.contains_key(*name),
                    "{at}: {name} is not a spin.toml variable"
                );
            }
            for name in &required {
                let variable = variables
                    .get(name)
                    .unwrap_or_else(|| panic!("{at}: lacks required {name}"));
                assert_ne!(
                    variable["valueFrom"]["secretKeyRef"]["optional"], true,
                    "{at}: {name} is required"
                );
            }
            // Autoscaled on CPU, with a disruption budget.
            let hpa = named(docs, "HorizontalPodAutoscaler", name);
            assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], name);
            assert_eq!(spin_app["spec"]["enableAutoscaling"], true);
            assert!(
                spin_app["spec"]["resources"]["requests"]["cpu"].is_string(),
                "{at}: HPA needs a CPU request"
            );
            let pdb = named(docs, "PodDisruptionBudget", name);
            assert_eq!(
                pdb["spec"]["selector"]["matchLabels"]["core.spinkube.dev/app-name"],
                name
            );
        }
        assert_eq!(
            served, http_components,
            "{overlay}: every HTTP component runs in a SpinApp"
        );
    }
}

/// The components SpinApp `name` runs.
fn spin_app_components(docs: &[Value], name: &str) -> BTreeSet<String> {
    strings(&named(docs, "SpinApp", name)["spec"]["components"])
        .into_iter()
        .collect()
}

/// The components `component` calls through Spin's local service chaining.
fn chained(app: &App, component: &str) -> Vec<String> {
    app.manifest.component[component]
        .allowed_outbound_hosts
        .iter()
        .filter_map(|h| {
            h.strip_prefix("http://")?
                .strip_suffix(".spin.internal")
                .map(String::from)
        })
        .collect()
}

/// The spin.toml component that serves `path` (a Kong or Ingress path; a
/// `~`/`/~` regex path is taken literally without its anchors).
fn http_component_for(app: &App, path: &str) -> String {
    let path = path
        .trim_start_matches("/~")
        .trim_start_matches('~')
        .trim_end_matches('$');
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    app.manifest
        .trigger
        .http
        .iter()
        .find(|t| {
            let mart_manifest::HttpRoute::Path(route) = &t.route else {
                return false;
            };
            match route.strip_suffix("/...") {
                Some(prefix) => path == prefix || path.starts_with(&format!("{prefix}/")),
                None => path == *route,
            }
        })
        .map(|t| t.component.clone())
        .unwrap_or_else(|| panic!("no spin.toml route serves {path}"))
}

#[test]
fn no_secret_is_in_the_manifests_and_every_one_named_is_made_by_the_script_or_strimzi() {
    let script = create_secrets_script();
    let made_by_script = |name: &str| -> bool {
        match name.strip_prefix("mart-db-") {
            Some(service) if service != "owner" && service != "relay" => {
                databases().iter().any(|s| s == service)
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
        // Strimzi makes a Secret per KafkaUser (its password) and the
        // cluster CA's certificate.
        let by_strimzi: BTreeSet<String> = of_kind(docs, "KafkaUser")
            .iter()
            .map(|u| u["metadata"]["name"].as_str().unwrap().to_string())
            .chain(["mart-kafka-cluster-ca-cert".to_string()])
            .collect();
        let mut named_secrets = BTreeSet::new();
        collect_secret_names(&Value::Array(docs.to_vec()), &mut named_secrets);
        for name in &named_secrets {
            assert!(
                made_by_script(name) || by_strimzi.contains(name),
                "{overlay}: Secret {name} is made neither by create-secrets.sh nor by Strimzi"
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
                if key == "secretName" || key == "secretTargetRef" {
                    if let Some(name) = value.as_str() {
                        names.insert(name.to_string());
                    }
                    for r in value.as_array().into_iter().flatten() {
                        if let Some(name) = r["name"].as_str() {
                            names.insert(name.to_string());
                        }
                    }
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
        for spin_app in of_kind(docs, "SpinApp") {
            assert!(wave(spin_app) > wave(migrate), "{overlay}");
        }
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
        // The owner creates the service databases (`mart migrate`), not
        // roles: CloudNativePG makes them all before the migrations run.
        assert_eq!(roles["mart"]["createdb"], true);
        assert_ne!(
            roles["mart"]["createrole"], true,
            "{overlay}: the owner needs no CREATEROLE"
        );
        // The outbox relay's role: outboxes and processed events only
        // (`mart migrate` grants them), its password its own.
        let relay = roles
            .get("mart_relay")
            .unwrap_or_else(|| panic!("{overlay}: no role mart_relay"));
        assert_eq!(relay["login"], true);
        assert_eq!(relay["passwordSecret"]["name"], "mart-db-relay");
        for power in [
            "createdb",
            "createrole",
            "superuser",
            "replication",
            "bypassrls",
        ] {
            assert_ne!(relay[power], true, "{overlay}: mart_relay has {power}");
        }
        assert_eq!(
            roles.len(),
            databases().len() + 2,
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

// ---- Secure by default (issue 27): what a deployment made the documented
// way must not allow, checked on the rendered overlays.

/// One thing that runs Mart's code: a Deployment or Job running the host, or
/// a SpinApp, as the policy checks see it.
struct Workload {
    kind: String,
    name: String,
    /// The spin.toml components it runs.
    components: Vec<String>,
    /// Whether it runs the outbox relay (a host without `--no-outbox-relay`).
    relays: bool,
    /// Whether it talks to Kafka (a host with brokers).
    kafka: bool,
    /// (variable or env name, Secret, key) of every value from a Secret.
    secret_refs: Vec<SecretRef>,
    /// Env names and values given inline.
    literals: BTreeMap<String, String>,
    /// Secrets loaded whole (envFrom).
    whole_secrets: Vec<String>,
    pod_labels: BTreeMap<String, String>,
}

fn labels_of(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn workloads(docs: &[Value]) -> Vec<Workload> {
    let mut all = Vec::new();
    for (workload, pod) in mart_pods(docs) {
        let container = container(workload);
        let args = strings(&container["args"]);
        let components: Vec<String> = args
            .windows(2)
            .filter(|w| w[0] == "--component-id")
            .map(|w| w[1].clone())
            .collect();
        let (secret_refs, literals) = secret_refs_and_literals(
            container["env"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| (e["name"].as_str().unwrap().to_string(), e)),
        );
        let whole_secrets = container["envFrom"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["secretRef"]["name"].as_str().map(String::from))
            .collect();
        let brokers = literals
            .get("SPIN_VARIABLE_KAFKA_BROKERS")
            .cloned()
            .unwrap_or_else(|| {
                configured(docs, "SPIN_VARIABLE_KAFKA_BROKERS")
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            });
        let is_host = workload["kind"] == "Deployment" && args.first().is_some_and(|a| a == "up");
        all.push(Workload {
            kind: workload["kind"].as_str().unwrap().to_string(),
            name: workload["metadata"]["name"].as_str().unwrap().to_string(),
            components,
            relays: is_host
                && !args.iter().any(|a| a == "--no-outbox-relay")
                && !brokers.is_empty(),
            kafka: is_host && !brokers.is_empty(),
            secret_refs,
            literals,
            whole_secrets,
            pod_labels: labels_of(&pod["metadata"]["labels"]),
        });
    }
    for spin_app in of_kind(docs, "SpinApp") {
        let name = spin_app["metadata"]["name"].as_str().unwrap().to_string();
        let (secret_refs, literals) = secret_refs_and_literals(
            spin_app["spec"]["variables"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| {
                    let name = v["name"].as_str().unwrap().to_uppercase();
                    (format!("SPIN_VARIABLE_{name}"), v)
                }),
        );
        all.push(Workload {
            kind: "SpinApp".into(),
            components: spin_app_components(docs, &name).into_iter().collect(),
            name,
            relays: false,
            kafka: false,
            secret_refs,
            literals,
            whole_secrets: Vec::new(),
            pod_labels: labels_of(&spin_app["spec"]["podLabels"]),
        });
    }
    all
}

/// The variables a `{{ … }}` template names.
fn template_variables(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(end) = rest[start..].find("}}") else {
            break;
        };
        found.insert(rest[start + 2..start + end].trim().to_string());
        rest = &rest[start + end + 2..];
    }
    found
}

/// The app variables `w` uses: its components' variables and hosts, the
/// brokers if it talks to Kafka, the outbox server if it relays.
fn needed_variables(app: &App, w: &Workload) -> BTreeSet<String> {
    let mut needed = BTreeSet::new();
    for id in &w.components {
        let component = &app.manifest.component[id];
        for text in component
            .variables
            .values()
            .chain(&component.allowed_outbound_hosts)
        {
            needed.extend(template_variables(text));
        }
    }
    let kafka = app.manifest.kafka_config().unwrap();
    if w.kafka {
        needed.extend(template_variables(
            kafka.brokers.as_deref().unwrap_or_default(),
        ));
    }
    if w.relays {
        needed.extend(template_variables(&kafka.outbox.unwrap().server));
    }
    needed
}

fn create_secrets_script() -> String {
    std::fs::read_to_string(repo_root().join("deploy/k8s/create-secrets.sh")).unwrap()
}

/// The keys of each `<workload>-env` Secret create-secrets.sh makes
/// (`env_secret NAME VARIABLE...`), as the pods read them.
fn script_env_secrets() -> BTreeMap<String, BTreeSet<String>> {
    let script = create_secrets_script().replace("\\\n", " ");
    script
        .lines()
        .filter_map(|l| l.trim().strip_prefix("env_secret "))
        .map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next().unwrap().to_string();
            let keys = words
                .map(|k| match k {
                    "MART_DATABASE_URL" => k.to_string(),
                    k => format!("SPIN_VARIABLE_{k}"),
                })
                .collect();
            (name, keys)
        })
        .collect()
}

#[test]
fn no_deployment_enables_the_fake_payment_provider() {
    // Nothing outside the dev overlay may name `fake` or the development
    // switch that lets it work.
    let prod = serde_json::to_string(documents(OVERLAYS[1])).unwrap();
    assert!(
        !prod.to_lowercase().contains("allow_fake_payments"),
        "prod sets the development switch allow_fake_payments"
    );
    for w in workloads(documents(OVERLAYS[1])) {
        if let Some(v) = w.literals.get("SPIN_VARIABLE_PAYMENT_PROVIDERS") {
            assert!(!v.contains("fake"), "{}: payment_providers = {v}", w.name);
        }
    }
    // The providers come from the .env template through create-secrets.sh:
    // the template must not name `fake`, the script must not default to it
    // and must refuse it.
    let example = std::fs::read_to_string(repo_root().join(".env.example")).unwrap();
    let providers = example
        .lines()
        .find_map(|l| l.strip_prefix("MART_PAYMENT_PROVIDERS="))
        .expect(".env.example sets MART_PAYMENT_PROVIDERS");
    assert!(
        !providers.contains("fake"),
        ".env.example enables the fake provider: {providers}"
    );
    let script = create_secrets_script();
    assert!(
        !script.contains(":-fake"),
        "create-secrets.sh defaults to fake"
    );
    assert!(
        !script.to_lowercase().contains("allow_fake_payments"),
        "create-secrets.sh sets allow_fake_payments"
    );
    assert!(
        script.contains("*,fake,*)"),
        "create-secrets.sh refuses MART_PAYMENT_PROVIDERS naming fake"
    );
}

#[test]
fn every_workload_holds_only_the_secret_keys_it_needs() {
    let app = app();
    let declared = &app.manifest.variables;
    let made = script_env_secrets();
    let runs = |w: &Workload, ids: &[&str]| w.components.iter().any(|c| ids.contains(&c.as_str()));
    for overlay in OVERLAYS {
        let docs = documents(overlay);
        let kafka_users: BTreeSet<&str> = of_kind(docs, "KafkaUser")
            .iter()
            .map(|u| u["metadata"]["name"].as_str().unwrap())
            .collect();
        let all = workloads(docs);
        assert_eq!(
            all.iter().filter(|w| w.relays).count(),
            1,
            "{overlay}: one Deployment relays the outboxes (the others pass --no-outbox-relay)"
        );
        for w in &all {
            let at = format!("{overlay}: {} {}", w.kind, w.name);
            assert!(
                w.whole_secrets.is_empty(),
                "{at} loads whole Secrets {:?}: list each key",
                w.whole_secrets
            );
            let own = format!("{}-env", w.name);
            let needed = needed_variables(&app, w);
            let mut from_own = BTreeSet::new();
            for (env, secret, key) in &w.secret_refs {
                if *secret == w.name {
                    // Its Kafka password, from its own KafkaUser's Secret.
                    assert_eq!(env, "MART_KAFKA_SASL_PASSWORD", "{at}");
                    assert_eq!(key, "password", "{at}");
                    assert!(kafka_users.contains(w.name.as_str()), "{at}: no KafkaUser");
                    continue;
                }
                assert_eq!(*secret, own, "{at}: {env} from another workload's Secret");
                from_own.insert(key.clone());
                if key == "MART_DATABASE_URL" {
                    assert_eq!(
                        w.name, "mart-migrate",
                        "{at}: only the migrations hold the owner's URL"
                    );
                    continue;
                }
                let var = key
                    .strip_prefix("SPIN_VARIABLE_")
                    .unwrap_or_else(|| panic!("{at}: key {key}"))
                    .to_lowercase();
                assert!(
                    needed.contains(&var),
                    "{at} holds {key}, which nothing it runs uses"
                );
            }
            // Every secret variable it uses comes from its Secret, never inline.
            for var in &needed {
                let key = format!("SPIN_VARIABLE_{}", var.to_uppercase());
                if declared[var].secret {
                    assert!(from_own.contains(&key), "{at} lacks {key}");
                }
            }
            for (env, value) in &w.literals {
                if let Some(var) = env.strip_prefix("SPIN_VARIABLE_") {
                    let var = var.to_lowercase();
                    if declared.get(&var).is_some_and(|d| d.secret || d.required)
                        && !needed.contains(&var)
                    {
                        assert_eq!(value, "unused", "{at}: {env} inline");
                    }
                    assert!(
                        !declared.get(&var).is_some_and(|d| d.secret) || value == "unused",
                        "{at}: secret {env} given inline"
                    );
                }
            }
            // create-secrets.sh makes exactly these keys.
            if !from_own.is_empty() {
                assert_eq!(
                    made.get(&own),
                    Some(&from_own),
                    "{at}: create-secrets.sh's {own} holds other keys than the pod reads"
                );
            }
            // The secrets that matter most, by name.
            for (env, _, key) in &w.secret_refs {
                if key.contains("JWT_PRIVATE_KEY") {
                    assert!(runs(w, &["users"]), "{at}: the token signing key");
                }
                if key.contains("STRIPE_") || key.contains("PAYFAST_") {
                    assert!(
                        runs(w, &["payments", "payments-events"]),
                        "{at}: payment provider keys ({env})"
                    );
                }
                if key == "SPIN_VARIABLE_PG_PASSWORD" || key == "MART_DATABASE_URL" {
                    assert_eq!(
                        w.name, "mart-migrate",
                        "{at}: only the migrate Job holds the owner's credentials"
                    );
                }
                if key == "SPIN_VARIABLE_RELAY_DB_PASSWORD" {
                    assert!(w.relays, "{at}: the relay's database password");
                }
            }
            // The relay connects as mart_relay, with its own password.
            if w.relays {
                assert!(
                    w.secret_refs.iter().any(|(env, secret, key)| env
                        == "SPIN_VARIABLE_RELAY_DB_PASSWORD"
                        && *secret == own
                        && key == env),
                    "{at}: relays without relay_db_password from {own}"
                );
            }
        }
    }
    // The owner's basic-auth Secret is CloudNativePG's alone: no pod reads it.
    for overlay in OVERLAYS {
        for doc in documents(overlay) {
            if doc["kind"] == "Cluster" {
                continue;
            }
            let mut names = BTreeSet::new();
            collect_secret_names(doc, &mut names);
            assert!(
                !names.contains("mart-db-owner"),
                "{overlay}: {} {} reads mart-db-owner",
                doc["kind"],
                doc["metadata"]["name"]
            );
        }
    }
    // create-secrets.sh puts the owner's URL in the Job's Secret alone,
    // and the relay role's password in the relay's.
    for (secret, keys) in &made {
        assert_eq!(
            keys.contains("MART_DATABASE_URL"),
            secret == "mart-migrate-env",
            "create-secrets.sh: {secret} {keys:?}"
        );
        assert!(
            !keys.contains("SPIN_VARIABLE_PG_PASSWORD"),
            "create-secrets.sh: {secret} holds the owner's password"
        );
    }
    assert_eq!(
        made["mart-outbox-relay-env"],
        BTreeSet::from(["SPIN_VARIABLE_RELAY_DB_PASSWORD".to_string()])
    );
    let script = create_secrets_script();
    assert!(
        script.contains("basic_auth mart-db-relay mart_relay \"${MART_RELAY_DB_PASSWORD:?"),
        "create-secrets.sh makes mart-db-relay from MART_RELAY_DB_PASSWORD, required"
    );
}

/// Whether `entry` is an IP address or a CIDR block (`address/prefix`).
fn is_ip_or_cidr(entry: &str) -> bool {
    let (address, prefix) = match entry.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (entry, None),
    };
    let Ok(address) = address.parse::<std::net::IpAddr>() else {
        return false;
    };
    let max = if address.is_ipv4() { 32 } else { 128 };
    prefix.is_none_or(|p| p.parse::<u8>().is_ok_and(|p| p <= max))
}

#[test]
fn the_users_login_throttle_believes_x_forwarded_for_from_kongs_network_only() {
    assert!(is_ip_or_cidr("10.244.0.0/16") && is_ip_or_cidr("fd00::1"));
    assert!(!is_ip_or_cidr("10.244.0.0/33") && !is_ip_or_cidr("kong"));
    for overlay in OVERLAYS {
        let docs = documents(overlay);
        let users: Vec<&Value> = of_kind(docs, "SpinApp")
            .into_iter()
            .filter(|a| {
                spin_app_components(docs, a["metadata"]["name"].as_str().unwrap()).contains("users")
            })
            .collect();
        assert_eq!(users.len(), 1, "{overlay}: one SpinApp runs users");
        let at = format!("{overlay}: SpinApp {}", users[0]["metadata"]["name"]);
        let variable = users[0]["spec"]["variables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "trusted_proxies")
            .unwrap_or_else(|| {
                panic!("{at}: no trusted_proxies (the throttle would see Kong as every client)")
            });
        let reference = &variable["valueFrom"]["configMapKeyRef"];
        let value = if reference.is_object() {
            named(docs, "ConfigMap", reference["name"].as_str().unwrap())["data"]
                [reference["key"].as_str().unwrap()]
            .as_str()
            .unwrap_or_else(|| panic!("{at}: {reference} is not in its ConfigMap"))
        } else {
            variable["value"]
                .as_str()
                .unwrap_or_else(|| panic!("{at}: trusted_proxies has no value"))
        };
        let entries: Vec<&str> = value.split(',').map(str::trim).collect();
        for entry in &entries {
            assert!(is_ip_or_cidr(entry), "{at}: trusted_proxies {entry:?}");
            assert!(
                !entry.ends_with("/0"),
                "{at}: trusted_proxies {entry} trusts everyone"
            );
        }
        assert!(!value.trim().is_empty(), "{at}: trusted_proxies is empty");
    }
}

/// Whether a NetworkPolicy admits pods with `labels` of this namespace
/// (a `from` podSelector without a namespaceSelector).
fn admits(policy: &Value, labels: &BTreeMap<String, String>) -> bool {
    policy["spec"]["ingress"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|rule| rule["from"].as_array().into_iter().flatten())
        .any(|peer| {
            peer["namespaceSelector"].is_null()
                && peer["podSelector"].is_object()
                && labels_of(&peer["podSelector"]["matchLabels"])
                    .iter()
                    .all(|(k, v)| labels.get(k) == Some(v))
        })
}

fn selects(policy: &Value, key: &str, value: &str) -> bool {
    policy["spec"]["podSelector"]["matchLabels"][key] == value
}

#[test]
fn network_policies_deny_ingress_and_open_postgres_and_kafka_to_their_clients_only() {
    let app = app();
    for overlay in OVERLAYS {
        let docs = documents(overlay);
        let policies = of_kind(docs, "NetworkPolicy");
        assert!(
            policies.iter().any(|p| {
                p["spec"]["podSelector"].as_object().is_some_and(|s| {
                    s.values()
                        .all(|v| v.as_object().is_none_or(|m| m.is_empty()))
                }) && strings(&p["spec"]["policyTypes"]).contains(&"Ingress".to_string())
                    && p["spec"]["ingress"].as_array().is_none_or(|i| i.is_empty())
            }),
            "{overlay}: no default-deny ingress policy"
        );
        let postgres = policies
            .iter()
            .find(|p| selects(p, "cnpg.io/cluster", "mart-pg"))
            .unwrap_or_else(|| panic!("{overlay}: no NetworkPolicy for PostgreSQL"));
        let kafka = policies
            .iter()
            .find(|p| selects(p, "strimzi.io/cluster", "mart-kafka"))
            .unwrap_or_else(|| panic!("{overlay}: no NetworkPolicy for Kafka"));
        for w in workloads(docs) {
            let at = format!("{overlay}: {} {}", w.kind, w.name);
            let uses_postgres = w.kind == "Job"
                || w.relays
                || w.components.iter().any(|c| {
                    app.manifest.component[c]
                        .allowed_outbound_hosts
                        .iter()
                        .any(|h| h.starts_with("postgres://"))
                });
            assert_eq!(
                admits(postgres, &w.pod_labels),
                uses_postgres,
                "{at}: reaches PostgreSQL exactly when it uses it"
            );
            assert_eq!(
                admits(kafka, &w.pod_labels),
                w.kafka,
                "{at}: reaches Kafka exactly when it uses it"
            );
            if w.kind == "SpinApp" {
                let open: Vec<&&Value> = policies
                    .iter()
                    .filter(|p| {
                        labels_of(&p["spec"]["podSelector"]["matchLabels"])
                            .iter()
                            .all(|(k, v)| w.pod_labels.get(k) == Some(v))
                            && p["spec"]["ingress"]
                                .as_array()
                                .is_some_and(|i| !i.is_empty())
                    })
                    .collect();
                assert!(
                    open.iter()
                        .any(|p| p["spec"]["ingress"][0]["from"][0]["namespaceSelector"]
                            ["matchLabels"]["kubernetes.io/metadata.name"]
                            == "kong"),
                    "{at}: Kong reaches it"
                );
            }
        }
        // Strimzi's own generated policy opens the listeners to the same
        // peers only, and every listener authenticates.
        let cluster = named(docs, "Kafka", "mart-kafka");
        assert_eq!(cluster["spec"]["kafka"]["authorization"]["type"], "simple");
        for listener in cluster["spec"]["kafka"]["listeners"].as_array().unwrap() {
            let at = format!("{overlay}: listener {}", listener["name"]);
            assert_eq!(listener["authentication"]["type"], "scram-sha-512", "{at}");
            assert_eq!(listener["tls"], true, "{at}");
            assert_eq!(
                listener["networkPolicyPeers"], kafka["spec"]["ingress"][0]["from"],
                "{at}: the peers the Kafka NetworkPolicy admits"
            );
        }
    }
}

#[test]
fn every_kafka_client_has_its_own_identity_with_the_acls_spin_toml_implies() {
    type Acl = (String, String, String); // (resource type, name, operation)
    let app = app();
    let triggers = app.manifest.kafka_triggers().unwrap();
    let application = &app.manifest.application.name;
    let creatable: Vec<String> = mart_host::events::topics_to_create(&app).unwrap();
    let event_topics: BTreeSet<String> = mart_domain::events::EventType::ALL
        .iter()
        .map(|t| t.topic())
        .collect();
    let acl = |kind: &str, name: &str, ops: &[&str]| -> Vec<Acl> {
        ops.iter()
            .map(|op| (kind.to_string(), name.to_string(), op.to_string()))
            .collect()
    };
    let create = || -> Vec<Acl> {
        creatable
            .iter()
            .flat_map(|t| acl("topic", t, &["Create"]))
            .collect()
    };
    // What spin.toml implies for each identity.
    let mut expected: BTreeMap<String, BTreeSet<Acl>> = BTreeMap::new();
    for t in &triggers {
        let group = t.group_id(application);
        let mut acls: BTreeSet<Acl> = create().into_iter().collect();
        for topic in &t.topics {
            acls.extend(acl("topic", topic, &["Read", "Describe"]));
            acls.extend(acl(
                "topic",
                &t.dead_letter_topic_for(topic),
                &["Read", "Write", "Describe"],
            ));
        }
        acls.extend(acl("group", &group, &["Read"]));
        acls.extend(acl("group", &format!("mart.parking.{group}"), &["Read"]));
        expected.insert(format!("mart-{}", t.component), acls);
    }
    let mut relay: BTreeSet<Acl> = create().into_iter().collect();
    for topic in &event_topics {
        relay.extend(acl("topic", topic, &["Write", "Describe"]));
    }
    expected.insert("mart-outbox-relay".into(), relay);
    let mut keda = BTreeSet::new();
    for t in &triggers {
        for topic in &t.topics {
            keda.extend(acl("topic", topic, &["Describe"]));
        }
        keda.extend(acl("group", &t.group_id(application), &["Describe"]));
    }
    expected.insert("mart-keda".into(), keda);

    for overlay in OVERLAYS {
        let docs = documents(overlay);
        let mut actual: BTreeMap<String, BTreeSet<Acl>> = BTreeMap::new();
        for user in of_kind(docs, "KafkaUser") {
            let name = user["metadata"]["name"].as_str().unwrap().to_string();
            let at = format!("{overlay}: KafkaUser {name}");
            assert_eq!(
                user["metadata"]["labels"]["strimzi.io/cluster"],
                "mart-kafka"
            );
            assert_eq!(
                user["spec"]["authentication"]["type"], "scram-sha-512",
                "{at}"
            );
            assert_eq!(user["spec"]["authorization"]["type"], "simple", "{at}");
            let mut acls = BTreeSet::new();
            for a in user["spec"]["authorization"]["acls"].as_array().unwrap() {
                assert_ne!(a["type"], "deny", "{at}");
                assert_eq!(a["resource"]["patternType"], "literal", "{at}: no prefixes");
                let kind = a["resource"]["type"].as_str().unwrap();
                let resource = a["resource"]["name"].as_str().unwrap_or("*");
                let mut ops = strings(&a["operations"]);
                ops.extend(a["operation"].as_str().map(String::from));
                for op in ops {
                    assert_ne!(op, "All", "{at}");
                    acls.insert((kind.to_string(), resource.to_string(), op));
                }
            }
            actual.insert(name, acls);
        }
        assert_eq!(
            actual.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "{overlay}: a KafkaUser per Kafka client"
        );
        for (name, acls) in &expected {
            assert_eq!(&actual[name], acls, "{overlay}: {name}'s ACLs");
        }
        // Who may write what: the event topics (mart.payments above all)
        // only the relay; a dead-letter topic only the handlers reading
        // its topic.
        for topic in &event_topics {
            let writers: Vec<&String> = actual
                .iter()
                .filter(|(_, acls)| acls.contains(&("topic".into(), topic.clone(), "Write".into())))
                .map(|(n, _)| n)
                .collect();
            assert_eq!(
                writers,
                ["mart-outbox-relay"],
                "{overlay}: writers of {topic}"
            );
        }
        // Each Kafka client authenticates as its own user.
        for w in workloads(docs).iter().filter(|w| w.kafka) {
            let at = format!("{overlay}: {}", w.name);
            assert!(
                actual.contains_key(&w.name),
                "{at}: no KafkaUser of its name"
            );
            let username = w
                .literals
                .get("MART_KAFKA_SASL_USERNAME")
                .unwrap_or_else(|| panic!("{at}: no MART_KAFKA_SASL_USERNAME"));
            assert_eq!(username, &w.name, "{at}");
            assert!(
                w.secret_refs
                    .iter()
                    .any(|(env, s, k)| env == "MART_KAFKA_SASL_PASSWORD"
                        && *s == w.name
                        && k == "password"),
                "{at}: its password from its KafkaUser's Secret"
            );
        }
        for key in ["MART_KAFKA_SECURITY_PROTOCOL", "MART_KAFKA_SASL_MECHANISM"] {
            assert!(configured(docs, key).is_string(), "{overlay}: {key}");
        }
        assert_eq!(
            configured(docs, "MART_KAFKA_SASL_MECHANISM"),
            "SCRAM-SHA-512"
        );
        // KEDA measures lag as mart-keda.
        let auth = named(docs, "TriggerAuthentication", "mart-keda-kafka");
        assert!(auth["spec"]["secretTargetRef"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["parameter"] == "password" && r["name"] == "mart-keda"));
        for scaler in of_kind(docs, "ScaledObject") {
            for t in scaler["spec"]["triggers"].as_array().unwrap() {
                assert_eq!(
                    t["authenticationRef"]["name"], "mart-keda-kafka",
                    "{overlay}"
                );
            }
        }
    }
}

#[test]
fn argo_cd_syncs_images_pinned_by_digest_and_no_pod_mounts_a_token() {
    let synced = rendered()[ARGO_APPLICATION][0]["spec"]["source"]["path"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(synced, OVERLAYS[1], "Argo CD syncs the prod overlay");
    let pinned = |image: &str| {
        image.split_once("@sha256:").is_some_and(|(_, digest)| {
            digest.len() == 64
                && digest
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        })
    };
    let mut images = Vec::new();
    for doc in documents(OVERLAYS[1]) {
        let name = format!("{}/{}", doc["kind"], doc["metadata"]["name"]);
        if doc["kind"] == "SpinApp" {
            images.push((
                name.clone(),
                doc["spec"]["image"].as_str().unwrap().to_string(),
            ));
        }
        let pod = &doc["spec"]["template"]["spec"];
        for list in ["containers", "initContainers"] {
            for c in pod[list].as_array().into_iter().flatten() {
                images.push((name.clone(), c["image"].as_str().unwrap().to_string()));
            }
        }
    }
    assert!(images.len() > 10);
    for (name, image) in &images {
        assert!(pinned(image), "{name}: {image} is not pinned by digest");
    }
    for overlay in OVERLAYS {
        let docs = documents(overlay);
        let accounts: BTreeMap<&str, &Value> = by_name(docs, "ServiceAccount");
        for (workload, pod) in mart_pods(docs) {
            assert_eq!(
                pod["spec"]["automountServiceAccountToken"], false,
                "{overlay}: {} mounts a service-account token",
                workload["metadata"]["name"]
            );
        }
        for spin_app in of_kind(docs, "SpinApp") {
            let account = spin_app["spec"]["serviceAccountName"]
                .as_str()
                .unwrap_or("default");
            assert_eq!(
                accounts
                    .get(account)
                    .map(|a| &a["automountServiceAccountToken"]),
                Some(&Value::Bool(false)),
                "{overlay}: SpinApp {} runs as {account}, which mounts its token",
                spin_app["metadata"]["name"]
            );
        }
    }
}

#[test]
fn the_pages_get_hsts_and_a_referrer_policy_at_the_gateway() {
    let app = app();
    for overlay in OVERLAYS {
        let docs = documents(overlay);
        let plugins: BTreeMap<&str, &Value> = by_name(docs, "KongPlugin");
        for page in ["shop", "dashboard"] {
            let ingresses: Vec<&Value> = of_kind(docs, "Ingress")
                .into_iter()
                .filter(|i| {
                    i["spec"]["rules"][0]["http"]["paths"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|p| http_component_for(&app, p["path"].as_str().unwrap()) == page)
                })
                .collect();
            assert!(!ingresses.is_empty(), "{overlay}: no Ingress for {page}");
            for ingress in ingresses {
                let headers: Vec<String> = ingress["metadata"]["annotations"]["konghq.com/plugins"]
                    .as_str()
                    .unwrap()
                    .split(',')
                    .filter_map(|n| plugins.get(n))
                    .filter(|p| p["plugin"] == "response-transformer")
                    .flat_map(|p| strings(&p["config"]["add"]["headers"]))
                    .collect();
                for header in ["Strict-Transport-Security:max-age=", "Referrer-Policy:"] {
                    assert!(
                        headers.iter().any(|h| h.starts_with(header)),
                        "{overlay}: {page} lacks {header} ({headers:?})"
                    );
                }
            }
        }
    }
}

/// An environment variable taken from a Secret: (variable, secret, key).
type SecretRef = (String, String, String);

/// Environment entries (a container's `env`, a SpinApp's `variables`, each
/// named as the host sees it): those taken from a Secret, as (name, secret,
/// key), and those given as values.
fn secret_refs_and_literals<'a>(
    entries: impl Iterator<Item = (String, &'a Value)>,
) -> (Vec<SecretRef>, BTreeMap<String, String>) {
    let mut secret_refs = Vec::new();
    let mut literals = BTreeMap::new();
    for (env, entry) in entries {
        let r = &entry["valueFrom"]["secretKeyRef"];
        if r.is_object() {
            secret_refs.push((
                env,
                r["name"].as_str().unwrap().to_string(),
                r["key"].as_str().unwrap().to_string(),
            ));
        } else if let Some(value) = entry["value"].as_str() {
            literals.insert(env, value.to_string());
        }
    }
    (secret_refs, literals)
}
