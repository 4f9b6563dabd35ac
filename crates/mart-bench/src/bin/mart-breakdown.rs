//! Where one request's instructions go: reads the self cost of every
//! function from `callgrind_annotate --inclusive=no` (a callgrind run of
//! `mart-overhead` collecting only its measured requests) and sums it into
//! the stages of a request, per request. Instruction counts, unlike times,
//! repeat from run to run on a noisy machine, so a change shows as a
//! difference here.
//!
//! Each line is `count (pct) file:function [object]`. A function's cost is
//! put in a stage by the crate and file its instructions come from; code
//! inlined from the standard library is put where the function that
//! inlined it belongs.

use std::io::Read;

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Requests the profile collected.
    #[arg(long)]
    requests: u64,
    /// Title of the table's count column.
    #[arg(long, default_value = "instructions / request")]
    title: String,
}

/// The stages of a request, in the order they are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Stage {
    Routing,
    MartHost,
    WasiContext,
    WasiHttp,
    Instantiate,
    Guest,
    Boundary,
    Postgres,
    Teardown,
    Allocator,
    AsyncRuntime,
    Other,
}

impl Stage {
    const ALL: [Stage; 12] = [
        Stage::Routing,
        Stage::MartHost,
        Stage::WasiContext,
        Stage::WasiHttp,
        Stage::Instantiate,
        Stage::Guest,
        Stage::Boundary,
        Stage::Postgres,
        Stage::Teardown,
        Stage::Allocator,
        Stage::AsyncRuntime,
        Stage::Other,
    ];

    fn name(self) -> &'static str {
        match self {
            Stage::Routing => "routing and spin-* headers (Mart)",
            Stage::MartHost => "other host code of Mart (trigger, runtime, trace context, metrics)",
            Stage::WasiContext => "store and WASI context (wasmtime-wasi)",
            Stage::WasiHttp => "wasi:http request and response (wasmtime-wasi-http, http)",
            Stage::Instantiate => "instantiate (wasmtime: imports, vmctx, code registry)",
            Stage::Guest => "guest code (the component's own Wasm)",
            Stage::Boundary => "calls across the boundary (lifting, lowering, fibers)",
            Stage::Postgres => "PostgreSQL, client side (mart-outbound-pg, tokio-postgres, pool)",
            Stage::Teardown => "instance teardown and memory reset (store drop, memset)",
            Stage::Allocator => "allocator (malloc, free) and memcpy",
            Stage::AsyncRuntime => "async runtime (tokio, futures)",
            Stage::Other => "other (std formatting, hashing, ...)",
        }
    }
}

/// The crate of a path (`.../index.crates.io-<hash>/<crate>-<version>/src/...`
/// or our `crates/<crate>/src/...`) or of a symbol (`crate::module::...`).
fn crate_of(path: &str) -> String {
    if let Some(rest) = path.split("index.crates.io-").nth(1) {
        let dir = rest.split('/').nth(1).unwrap_or_default();
        return dir
            .rsplit_once('-')
            .map_or(dir, |(name, _version)| name)
            .replace('-', "_");
    }
    if path.contains("crates/mart-") {
        let rest = path.rsplit("crates/").next().unwrap_or_default();
        return rest.split('/').next().unwrap_or_default().replace('-', "_");
    }
    path.trim_start_matches('<')
        .split("::")
        .next()
        .unwrap_or_default()
        .to_string()
}

fn stage(file: &str, function: &str) -> Stage {
    if function.starts_with("0x") {
        return Stage::Guest;
    }
    if file.contains("memset") {
        return Stage::Teardown;
    }
    let allocating = [
        "__rdl_alloc",
        "__rdl_dealloc",
        "__rust_alloc",
        "__rust_dealloc",
        "raw_vec",
    ];
    if file.contains("malloc")
        || file.contains("memmove")
        || allocating.iter().any(|a| function.contains(a))
    {
        return Stage::Allocator;
    }
    // Inlined standard library code counts where its caller belongs.
    let from_std = file.starts_with("/rustc/") || file.starts_with("./");
    let (krate, place) = if from_std {
        (crate_of(function), function.replace("::", "/"))
    } else {
        (crate_of(file), file.to_string())
    };
    let any_of = |parts: &[&str]| parts.iter().any(|p| place.contains(p));
    match krate.as_str() {
        "mart_trigger_http" if any_of(&["routes", "headers"]) => Stage::Routing,
        "mart_outbound_pg" | "tokio_postgres" | "postgres_protocol" | "postgres_types"
        | "deadpool" | "deadpool_postgres" => Stage::Postgres,
        k if k.starts_with("mart_") => Stage::MartHost,
        "wasmtime_wasi" | "wasmtime_wasi_io" | "cap_std" | "cap_primitives" => Stage::WasiContext,
        "wasmtime_wasi_http" | "http" | "http_body" | "http_body_util" | "hyper" | "bytes" => {
            Stage::WasiHttp
        }
        "wasmtime_internal_fiber" => Stage::Boundary,
        "wasmtime_environ" | "cranelift_bforest" | "wasmtime_internal_math" => Stage::Instantiate,
        "wasmtime" if any_of(&["store", "cow", "pagemap", "pooling", "allocator"]) => {
            Stage::Teardown
        }
        "wasmtime" if any_of(&["func", "fiber", "trap", "libcalls", "trampoline"]) => {
            Stage::Boundary
        }
        "wasmtime" => Stage::Instantiate,
        "tokio" | "futures_util" | "futures_core" | "futures" => Stage::AsyncRuntime,
        _ => Stage::Other,
    }
}

/// `(count, file, function)` of one line of callgrind_annotate's table.
fn parse_line(line: &str) -> Option<(u64, &str, &str)> {
    let line = line.trim_start();
    let (count, rest) = line.split_once(' ')?;
    let count: u64 = count.replace(',', "").parse().ok()?;
    let rest = rest.trim_start();
    let rest = match rest.strip_prefix('(') {
        Some(r) => r.split_once(')')?.1.trim_start(),
        None => rest,
    };
    let rest = rest.split(" [").next().unwrap_or(rest);
    if rest == "PROGRAM TOTALS" {
        return None;
    }
    let (file, function) = match rest.split_once(':') {
        Some((file, function)) if !file.contains("::") => (file, function),
        _ => ("", rest),
    };
    Some((count, file, function))
}

fn breakdown(text: &str) -> Vec<(Stage, u64)> {
    let mut totals: std::collections::HashMap<Stage, u64> = std::collections::HashMap::new();
    for (count, file, function) in text.lines().filter_map(parse_line) {
        *totals.entry(stage(file, function)).or_default() += count;
    }
    Stage::ALL
        .iter()
        .map(|s| (*s, totals.get(s).copied().unwrap_or(0)))
        .collect()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    let stages = breakdown(&text);
    let total: u64 = stages.iter().map(|(_, c)| c).sum();
    anyhow::ensure!(total > 0, "no costs in the profile: was it collected?");
    println!("| stage | {} | share |", args.title);
    println!("|---|---:|---:|");
    for (stage, count) in &stages {
        println!(
            "| {} | {} | {:.0} % |",
            stage.name(),
            group(count / args.requests),
            100.0 * *count as f64 / total as f64
        );
    }
    println!("| **total** | **{}** | |", group(total / args.requests));
    Ok(())
}

fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_land_in_the_stage_their_code_belongs_to() {
        let profile = "\
1,208,781,062 (100.0%)  PROGRAM TOTALS
81,270,030 ( 6.72%)  ./string/../sysdeps/x86_64/multiarch/memset-vec-unaligned-erms.S:__memset_avx2_unaligned_erms [/usr/lib/libc.so.6]
53,163,000 ( 4.40%)  /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/wasmtime-environ-48.0.8/src/module_artifacts.rs:wasmtime_environ::module_artifacts::CompiledFunctionsTable::func_loc [/x]
39,038,249 ( 3.23%)  ./malloc/./malloc/malloc.c:_int_free [/usr/lib/libc.so.6]
9,931 ( 1.11%)  ???:0x0000000005c5aae0 [???]
1,000 ( 0.1%)  /work/main/crates/mart-trigger-http/src/headers.rs:mart_trigger_http::headers::set_spin_headers [/x]
2,000 ( 0.1%)  /rustc/5980/library/core/src/slice/index.rs:wasmtime::runtime::component::instance::lookup_vmdef [/x]
3,000 ( 0.1%)  /root/.cargo/registry/src/index.crates.io-1/wasmtime-48.0.8/src/runtime/store.rs:<wasmtime::runtime::store::StoreOpaque as core::ops::drop::Drop>::drop [/x]
4,000 ( 0.1%)  /tmp/ci/main/crates/mart-runtime/src/engine.rs:mart_runtime::engine::Runtime::new_store [/x]
";
        let stages: std::collections::HashMap<_, _> = breakdown(profile).into_iter().collect();
        assert_eq!(
            stages[&Stage::Teardown],
            81_270_030 + 3_000,
            "memset and the store's drop"
        );
        assert_eq!(
            stages[&Stage::Instantiate],
            53_163_000 + 2_000,
            "wasmtime's instantiation"
        );
        assert_eq!(stages[&Stage::Allocator], 39_038_249);
        assert_eq!(stages[&Stage::Guest], 9_931, "JIT code has no symbol");
        assert_eq!(stages[&Stage::Routing], 1_000);
        assert_eq!(stages[&Stage::MartHost], 4_000);
        assert_eq!(group(1_234_567), "1,234,567");
    }
}
