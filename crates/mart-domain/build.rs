//! Generates the Rust types of Mart's Protobuf events (proto/) with prost.
//! protox parses the .proto files in Rust, so the build needs no `protoc`.

use std::path::PathBuf;

const FILES: [&str; 2] = [
    "mart/events/v1/events.proto",
    "io/cloudevents/v1/cloudevents.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    println!("cargo:rerun-if-changed={}", root.display());
    let descriptors = protox::compile(FILES, [&root])?;
    prost_build::Config::new()
        // `prost::Name`, for the type URL of `google.protobuf.Any`.
        .enable_type_names()
        // The domain every Protobuf runtime expects in an `Any`'s type URL.
        .type_name_domain(["."], "type.googleapis.com")
        .compile_fds(descriptors)?;
    Ok(())
}
