//! A component's `files`, as Spin provides them: copied once, when the app
//! loads, into a staging folder that every instance of the component sees
//! read-only as `/`. Copying (Spin's default for local apps, too) gives each
//! run one consistent snapshot, whatever happens to the sources meanwhile.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use mart_manifest::FileMount;

/// The staged files of one component; the folder goes when this is dropped.
#[derive(Debug)]
pub struct StagedFiles {
    dir: tempfile::TempDir,
}

impl StagedFiles {
    /// The host folder mounted as the guest's `/`.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

/// Copies what `mounts` names (relative to `base_dir`, without what
/// `exclude` matches) into a fresh folder; `None` when there is nothing to
/// mount. Fails, naming the entry, on a missing source or a bad pattern.
pub fn stage(
    base_dir: &Path,
    mounts: &[FileMount],
    exclude: &[String],
) -> anyhow::Result<Option<StagedFiles>> {
    if mounts.is_empty() {
        return Ok(None);
    }
    let excluded = exclude
        .iter()
        .map(|p| glob::Pattern::new(p).with_context(|| format!("exclude_files: bad pattern `{p}`")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let dir = tempfile::Builder::new()
        .prefix("mart-files-")
        .tempdir()
        .context("creating a folder for the component's files")?;
    for mount in mounts {
        match mount {
            FileMount::Pattern(pattern) => {
                stage_pattern(base_dir, pattern, &excluded, dir.path())
                    .with_context(|| format!("files: `{pattern}`"))?;
            }
            FileMount::Mapping {
                source,
                destination,
            } => {
                let target = guest_path(dir.path(), destination)
                    .with_context(|| format!("files: destination `{destination}`"))?;
                copy_tree(&base_dir.join(source), &target)
                    .with_context(|| format!("files: source `{source}`"))?;
            }
        }
    }
    Ok(Some(StagedFiles { dir }))
}

/// Every file matching `pattern` keeps its path relative to `base_dir`.
fn stage_pattern(
    base_dir: &Path,
    pattern: &str,
    excluded: &[glob::Pattern],
    root: &Path,
) -> anyhow::Result<()> {
    let full = base_dir.join(pattern);
    let full = full.to_str().context("the path is not UTF-8")?;
    for entry in glob::glob(full).context("bad glob pattern")? {
        let path = entry.context("reading a matched path")?;
        if !path.is_file() {
            continue;
        }
        let relative = path
            .strip_prefix(base_dir)
            .context("a match outside the app folder")?;
        if excluded.iter().any(|p| p.matches_path(relative)) {
            continue;
        }
        copy_file(&path, &root.join(relative))?;
    }
    Ok(())
}

/// `destination` (absolute, in the guest) as a path under `root`; refuses
/// anything that would climb out of it.
fn guest_path(root: &Path, destination: &str) -> anyhow::Result<PathBuf> {
    let relative = destination
        .strip_prefix('/')
        .context("must be an absolute path")?;
    let mut path = root.to_path_buf();
    for part in relative.split('/').filter(|p| !p.is_empty() && *p != ".") {
        anyhow::ensure!(part != "..", "must not contain `..`");
        path.push(part);
    }
    Ok(path)
}

fn copy_tree(source: &Path, target: &Path) -> anyhow::Result<()> {
    let meta = std::fs::metadata(source).context("cannot read it")?;
    if meta.is_file() {
        return copy_file(source, target);
    }
    std::fs::create_dir_all(target)?;
    for entry in std::fs::read_dir(source)? {
        let entry = entry?;
        copy_tree(&entry.path(), &target.join(entry.file_name()))?;
    }
    Ok(())
}

fn copy_file(source: &Path, target: &Path) -> anyhow::Result<()> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(source, target).with_context(|| format!("copying {}", source.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("web/css")).unwrap();
        std::fs::write(dir.path().join("web/index.html"), "<h1>hi</h1>").unwrap();
        std::fs::write(dir.path().join("web/css/site.css"), "body{}").unwrap();
        std::fs::write(dir.path().join("web/notes.md"), "draft").unwrap();
        std::fs::write(dir.path().join("api.json"), "{}").unwrap();
        dir
    }

    #[test]
    fn mappings_place_folders_and_files_at_their_destination() {
        let app = app_dir();
        let staged = stage(
            app.path(),
            &[
                FileMount::Mapping {
                    source: "web".into(),
                    destination: "/".into(),
                },
                FileMount::Mapping {
                    source: "api.json".into(),
                    destination: "/spec/openapi.json".into(),
                },
            ],
            &[],
        )
        .unwrap()
        .unwrap();
        let root = staged.root();
        assert_eq!(
            std::fs::read_to_string(root.join("index.html")).unwrap(),
            "<h1>hi</h1>"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("css/site.css")).unwrap(),
            "body{}"
        );
        assert!(root.join("spec/openapi.json").is_file());
    }

    #[test]
    fn patterns_keep_relative_paths_and_honour_exclusions() {
        let app = app_dir();
        let staged = stage(
            app.path(),
            &[FileMount::Pattern("web/**/*".into())],
            &["web/*.md".into()],
        )
        .unwrap()
        .unwrap();
        assert!(staged.root().join("web/index.html").is_file());
        assert!(staged.root().join("web/css/site.css").is_file());
        assert!(!staged.root().join("web/notes.md").exists());
    }

    #[test]
    fn a_missing_source_or_a_climbing_destination_is_refused() {
        let app = app_dir();
        let missing = stage(
            app.path(),
            &[FileMount::Mapping {
                source: "nope".into(),
                destination: "/".into(),
            }],
            &[],
        )
        .unwrap_err();
        assert!(
            format!("{missing:#}").contains("source `nope`"),
            "{missing:#}"
        );
        let climbing = stage(
            app.path(),
            &[FileMount::Mapping {
                source: "web".into(),
                destination: "/../etc".into(),
            }],
            &[],
        )
        .unwrap_err();
        assert!(format!("{climbing:#}").contains(".."), "{climbing:#}");
    }

    #[test]
    fn no_files_means_nothing_to_mount() {
        assert!(stage(Path::new("."), &[], &[]).unwrap().is_none());
    }
}
