//! Core Wasm modules, as Spin runs them: a `wasm32-wasip1` build (Spin's
//! own Rust template, and the modules its conformance suite publishes) is
//! a core module, which Spin turns into a component at load time with
//! WASI's preview1 adapter. So does this host; a component passes through.

use anyhow::Context as _;
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER,
    WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};

/// The component in `bytes`: itself, or the core module it holds adapted.
pub fn componentize_if_needed(bytes: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    if !wasmparser::Parser::is_core_wasm(&bytes) {
        return Ok(bytes);
    }
    // A module with `_start` is a command (it runs once); otherwise a
    // reactor whose exports are called, as an HTTP handler's are.
    let adapter = if exports_start(&bytes)? {
        WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER
    } else {
        WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER
    };
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&bytes)
        .context("reading the core module's component type")?
        .adapter(WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, adapter)
        .context("adding the WASI preview1 adapter")?
        .encode()
        .context("turning the core module into a component")
}

fn exports_start(bytes: &[u8]) -> anyhow::Result<bool> {
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let wasmparser::Payload::ExportSection(exports) = payload? {
            for export in exports {
                if export?.name == "_start" {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_core_module_becomes_a_component_and_a_component_passes_through() {
        let empty_module = b"\0asm\x01\0\0\0".to_vec();
        let adapted = componentize_if_needed(empty_module).unwrap();
        assert!(wasmparser::Parser::is_component(&adapted));
        // The smallest component: its preamble only.
        let component = b"\0asm\x0d\0\x01\0".to_vec();
        assert_eq!(
            componentize_if_needed(component.clone()).unwrap(),
            component
        );
    }
}
