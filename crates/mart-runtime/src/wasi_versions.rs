//! Which WASI versions a component may use, checked before it is compiled,
//! and the one release candidate that is adapted onto WASI 0.3.0.
//!
//! Served: WASI 0.2.x (spin-sdk 5 and earlier, wasmtime's p2 host, by
//! semver) and WASI 0.3.0 (spin-sdk 7, wasmtime's p3 host). Spin 4.0's
//! SDK (spin-sdk 6, crate `wasip3` 0.6) imports the release candidate
//! `0.3.0-rc-2026-03-15`, which Spin 4.0.2 serves and Spin's main branch
//! adapts onto 0.3.0. Its WIT is 0.3.0's, interface for interface and
//! type for type: the packages `wasi:cli`, `clocks`, `filesystem`, `http`,
//! `random` and `sockets` of `wasip3` 0.6 and 0.7.1 differ only in their
//! version strings and `@since` gates (compared file by file, 2026-12-07).
//! Since component-model types are structural, renaming the component's
//! own imports and exports from the candidate to 0.3.0 is the whole
//! adaptation: the same host implementation then serves both, and any
//! difference in a type would fail linking rather than misbehave.
//!
//! Only the outermost component's names are renamed: nested components
//! and modules are wired to those by index, never by these names.
//!
//! Any other WASI version is refused here, naming the version and what to
//! do, rather than surfacing later as a parse or link error.

use anyhow::Context as _;
use wasm_encoder::reencode::{component_utils, RoundtripReencoder};
use wasm_encoder::{ComponentExportSection, ComponentImportSection, RawSection};
use wasmparser::{Parser, Payload};

/// Spin 4.0's WASIp3 release candidate, adapted onto 0.3.0.
const RELEASE_CANDIDATE: &str = "0.3.0-rc-2026-03-15";
const SERVED_P3: &str = "0.3.0";
/// The WASI packages whose candidate WIT is 0.3.0's.
const ADAPTED_PACKAGES: [&str; 6] = [
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:http/",
    "wasi:random/",
    "wasi:sockets/",
];

/// WASI's own packages, whose versions this host knows; other `wasi:`
/// proposals (keyvalue, config, otel) have versions of their own, and
/// whether the host has them is the linker's to say.
const WASI_PACKAGES: [&str; 7] = [
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:http/",
    "wasi:io/",
    "wasi:random/",
    "wasi:sockets/",
];

/// What to tell the author of a component whose WASI version is not served.
const WHAT_IS_SERVED: &str = "this host serves WASI 0.2 (spin-sdk 5 and earlier), \
     0.3.0 (spin-sdk 7) and 0.3.0-rc-2026-03-15 (spin-sdk 6, Spin 4.0's templates); \
     rebuild the component with one of those SDKs";

/// `bytes`, with Spin 4.0's release-candidate names renamed to 0.3.0's;
/// an error naming the interface if it uses a WASI version not served.
pub fn adapt(bytes: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    let names = outer_names(&bytes)?;
    if let Some(name) = names.iter().find(|name| !is_served(name)) {
        anyhow::bail!(
            "it uses `{name}`, a WASI version this host does not serve: {WHAT_IS_SERVED}"
        );
    }
    if !names.iter().any(|name| renamed(name).is_some()) {
        return Ok(bytes);
    }
    rename_outer_names(&bytes).context("adapting WASI 0.3.0-rc-2026-03-15 onto 0.3.0")
}

/// Whether the host serves the WASI version of an import or export
/// (names outside `wasi:` are the linker's to judge).
fn is_served(name: &str) -> bool {
    let Some((package, version)) = name.split_once('@') else {
        return true;
    };
    if !WASI_PACKAGES.iter().any(|p| package.starts_with(p)) {
        return true;
    }
    version.starts_with("0.2.") || version == SERVED_P3 || renamed(name).is_some()
}

/// The 0.3.0 name of a release-candidate name of an adapted package.
fn renamed(name: &str) -> Option<String> {
    let package = name.strip_suffix(RELEASE_CANDIDATE)?.strip_suffix('@')?;
    ADAPTED_PACKAGES
        .iter()
        .any(|p| package.starts_with(p))
        .then(|| format!("{package}@{SERVED_P3}"))
}

/// The names the outermost component imports and exports.
fn outer_names(bytes: &[u8]) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    visit_outer_sections(bytes, |payload| {
        match payload {
            Payload::ComponentImportSection(imports) => {
                for import in imports {
                    names.push(import?.name.0.to_string());
                }
            }
            Payload::ComponentExportSection(exports) => {
                for export in exports {
                    names.push(export?.name.0.to_string());
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    Ok(names)
}

/// Calls `visit` with each section of the outermost component; a nested
/// module or component comes as its one section, not its contents.
fn visit_outer_sections<'a>(
    bytes: &'a [u8],
    mut visit: impl FnMut(Payload<'a>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut parser = Parser::new(0);
    let mut rest = bytes;
    loop {
        let (consumed, payload) = match parser.parse(rest, true)? {
            wasmparser::Chunk::Parsed { consumed, payload } => (consumed, payload),
            wasmparser::Chunk::NeedMoreData(_) => anyhow::bail!("the component is truncated"),
        };
        rest = &rest[consumed..];
        let nested = match &payload {
            Payload::ModuleSection {
                unchecked_range, ..
            }
            | Payload::ComponentSection {
                unchecked_range, ..
            } => Some(unchecked_range.len()),
            _ => None,
        };
        let end = matches!(payload, Payload::End(_));
        visit(payload)?;
        // The parser has counted the nested section's bytes as read; they
        // are not fed to it.
        if let Some(len) = nested {
            rest = &rest[len..];
        }
        if end {
            return Ok(());
        }
    }
}

/// The component again, section for section, with the import and export
/// names of the outermost component renamed.
fn rename_outer_names(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = wasm_encoder::Component::new();
    let name = |n: &str| renamed(n).unwrap_or_else(|| n.to_string());
    let reencoder = &mut RoundtripReencoder;
    visit_outer_sections(bytes, |payload| {
        match payload {
            Payload::Version { .. } | Payload::End(_) => {}
            Payload::ComponentImportSection(imports) => {
                let mut section = ComponentImportSection::new();
                for import in imports {
                    let import = import?;
                    let ty = component_utils::component_type_ref(reencoder, import.ty)?;
                    section.import(&name(import.name.0), ty);
                }
                out.section(&section);
            }
            Payload::ComponentExportSection(exports) => {
                let mut section = ComponentExportSection::new();
                for export in exports {
                    let export = export?;
                    let kind = component_utils::component_export_kind(reencoder, export.kind);
                    let ty = export
                        .ty
                        .map(|ty| component_utils::component_type_ref(reencoder, ty))
                        .transpose()?;
                    section.export(&name(export.name.0), kind, export.index, ty);
                }
                out.section(&section);
            }
            other => {
                let (id, range) = other
                    .as_section()
                    .context("a component section without a section id")?;
                out.section(&RawSection {
                    id,
                    data: &bytes[range],
                });
            }
        }
        Ok(())
    })?;
    Ok(out.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_candidate_of_the_adapted_packages_is_renamed() {
        assert_eq!(
            renamed("wasi:http/types@0.3.0-rc-2026-03-15").as_deref(),
            Some("wasi:http/types@0.3.0")
        );
        assert_eq!(renamed("wasi:http/types@0.3.0"), None);
        assert_eq!(renamed("wasi:http/types@0.3.0-rc-2025-09-16"), None);
        assert_eq!(renamed("wasi:keyvalue/store@0.3.0-rc-2026-03-15"), None);
        assert_eq!(renamed("spin:postgres/postgres@4.2.0"), None);
    }

    #[test]
    fn versions_the_host_does_not_serve_are_named() {
        assert!(is_served("wasi:http/types@0.2.6"));
        assert!(is_served("wasi:http/handler@0.3.0"));
        assert!(is_served("wasi:cli/stdout@0.3.0-rc-2026-03-15"));
        assert!(is_served("wasi:keyvalue/store@0.2.0-draft2"));
        assert!(is_served("spin:postgres/postgres@4.2.0"));
        assert!(!is_served("wasi:http/types@0.3.0-rc-2025-09-16"));
        assert!(!is_served("wasi:clocks/monotonic-clock@0.3.1"));
        assert!(!is_served("wasi:io/streams@0.1.0"));
    }
}
