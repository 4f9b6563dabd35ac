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
        .prefix(&format!("{STAGING_PREFIX}{}-", std::process::id()))
        .tempdir()
        .context("creating a folder for the component's files")?;
    let stage = Stage {
        base_dir,
        excluded: &excluded,
    };
    for mount in mounts {
        match mount {
            FileMount::Pattern(pattern) => {
                stage
                    .pattern(pattern, dir.path())
                    .with_context(|| format!("files: `{pattern}`"))?;
            }
            FileMount::Mapping {
                source,
                destination,
            } => {
                let target = guest_path(dir.path(), destination)
                    .with_context(|| format!("files: destination `{destination}`"))?;
                let relative =
                    inside_app(source).with_context(|| format!("files: source `{source}`"))?;
                stage
                    .tree(&relative, &target)
                    .with_context(|| format!("files: source `{source}`"))?;
            }
        }
    }
    Ok(Some(StagedFiles { dir }))
}

const STAGING_PREFIX: &str = "mart-files-";

/// Removes the staging folders of hosts that are gone (killed before they
/// could remove theirs). Named `mart-files-<pid>-…`; only dead pids' go.
/// Called once per load, before any component is staged.
pub fn remove_stale_staging() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(STAGING_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A path from the manifest, relative to the app folder and inside it: no
/// absolute paths, no `..` (Spin's files are the app's own).
fn inside_app(path: &str) -> anyhow::Result<PathBuf> {
    let relative = Path::new(path);
    anyhow::ensure!(
        relative.components().all(|c| matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )),
        "must be a path inside the app's folder (relative, without `..`)"
    );
    Ok(relative.to_path_buf())
}

/// Copies into the staging folder, leaving out `exclude_files` matches.
struct Stage<'a> {
    base_dir: &'a Path,
    excluded: &'a [glob::Pattern],
}

impl Stage<'_> {
    /// Every match of `pattern` keeps its path relative to the app folder;
    /// a folder that matches is copied whole. A pattern without wildcards
    /// must exist, as in Spin.
    fn pattern(&self, pattern: &str, root: &Path) -> anyhow::Result<()> {
        inside_app(pattern)?;
        let full = self.base_dir.join(pattern);
        let full = full.to_str().context("the path is not UTF-8")?;
        let mut matched = false;
        for entry in glob::glob(full).context("bad glob pattern")? {
            let path = entry.context("reading a matched path")?;
            let relative = path
                .strip_prefix(self.base_dir)
                .context("a match outside the app folder")?
                .to_path_buf();
            matched = true;
            self.tree(&relative, &root.join(&relative))?;
        }
        let wildcard = pattern.contains(['*', '?', '[']);
        anyhow::ensure!(matched || wildcard, "no such file or folder");
        Ok(())
    }

    /// Copies `relative` (a file or a folder, relative to the app folder)
    /// to `target`. Symbolic links to files are followed; links to folders
    /// are refused (they could loop).
    fn tree(&self, relative: &Path, target: &Path) -> anyhow::Result<()> {
        if self.excluded.iter().any(|p| p.matches_path(relative)) {
            return Ok(());
        }
        let source = self.base_dir.join(relative);
        let link = std::fs::symlink_metadata(&source)
            .with_context(|| format!("cannot read {}", relative.display()))?;
        let meta = std::fs::metadata(&source)
            .with_context(|| format!("cannot read {}", relative.display()))?;
        if meta.is_file() {
            return copy_file(&source, target);
        }
        anyhow::ensure!(
            !link.file_type().is_symlink(),
            "{} links to a folder; copy it instead",
            relative.display()
        );
        std::fs::create_dir_all(target)?;
        for entry in std::fs::read_dir(&source)? {
            let name = entry?.file_name();
            self.tree(&relative.join(&name), &target.join(&name))?;
        }
        Ok(())
    }
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
    fn paths_outside_the_app_folder_are_refused() {
        let app = app_dir();
        for mount in [
            FileMount::Pattern("../*".into()),
            FileMount::Pattern("/etc/*".into()),
            FileMount::Mapping {
                source: "../".into(),
                destination: "/".into(),
            },
            FileMount::Mapping {
                source: "/etc".into(),
                destination: "/".into(),
            },
        ] {
            let err = stage(app.path(), std::slice::from_ref(&mount), &[]).unwrap_err();
            assert!(
                format!("{err:#}").contains("inside the app"),
                "{mount:?}: {err:#}"
            );
        }
    }

    #[test]
    fn a_folder_pattern_copies_the_folder_and_exclusions_apply_to_mappings() {
        let app = app_dir();
        let staged = stage(app.path(), &[FileMount::Pattern("web".into())], &[])
            .unwrap()
            .unwrap();
        assert!(staged.root().join("web/css/site.css").is_file());
        let staged = stage(
            app.path(),
            &[FileMount::Mapping {
                source: "web".into(),
                destination: "/".into(),
            }],
            &["web/*.md".into()],
        )
        .unwrap()
        .unwrap();
        assert!(staged.root().join("index.html").is_file());
        assert!(!staged.root().join("notes.md").exists());
        let missing = stage(app.path(), &[FileMount::Pattern("nope.txt".into())], &[]).unwrap_err();
        assert!(
            format!("{missing:#}").contains("no such file"),
            "{missing:#}"
        );
    }

    #[test]
    fn no_files_means_nothing_to_mount() {
        assert!(stage(Path::new("."), &[], &[]).unwrap().is_none());
    }
}
