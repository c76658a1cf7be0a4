//! Where a cgroup lives: `<root>/<parent>/<name>`.

use std::path::PathBuf;
use std::str::FromStr;

use super::CgroupError;

/// Longest cgroup directory name, in bytes (Linux `NAME_MAX`).
pub const MAX_NAME: usize = 255;
/// Most directories in a cgroup parent path.
pub const MAX_PARENT_DEPTH: usize = 32;

/// One cgroup directory name: not empty, `.` or `..`, without `/`, NUL or newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupName(String);

/// A path of cgroup names below the cgroup root, possibly empty (the root itself).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelativeCgroupPath(Vec<CgroupName>);

/// Where one cgroup lives below the cgroup root: its parent and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupPath {
    parent: RelativeCgroupPath,
    name: CgroupName,
}

/// Where the cgroup of the container `id` lives, from `linux.cgroupsPath`:
///
/// - absent: `<default_parent>/<id>`;
/// - absolute (`/a/b/c`): that path below the cgroup root (parent `a/b`, name `c`);
/// - relative (`a/c`): below `default_parent` (`<default_parent>/a/c`);
/// - systemd's `slice:prefix:name`: an error, husk manages cgroupfs directly.
pub fn resolve_path(
    cgroups_path: Option<&str>,
    default_parent: &str,
    id: &str,
) -> Result<CgroupPath, CgroupError> {
    const FIELD: &str = "linux.cgroupsPath";
    let default_parent = RelativeCgroupPath::parse("cgroup parent", default_parent)?;
    let Some(path) = cgroups_path else {
        return Ok(CgroupPath::new(
            default_parent,
            CgroupName::parse("cgroup name", id)?,
        ));
    };
    let (mut parent, relative) = match path.strip_prefix('/') {
        Some(below_root) => (RelativeCgroupPath::default(), below_root),
        None if path.split(':').count() == 3 => {
            return Err(CgroupError::SystemdPath { path: path.into() });
        }
        None => (default_parent, path),
    };
    let invalid = |reason| CgroupError::InvalidPath {
        what: FIELD,
        path: path.into(),
        reason,
    };
    if relative.is_empty() {
        return Err(invalid("must name a cgroup below the cgroup root"));
    }
    let mut names = split(relative).map_err(invalid)?;
    let name = names.pop().ok_or(invalid("must name a cgroup"))?;
    parent.0.extend(names);
    if parent.0.len() > MAX_PARENT_DEPTH {
        return Err(invalid("has too many components"));
    }
    Ok(CgroupPath { parent, name })
}

impl CgroupName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn parse(what: &'static str, name: &str) -> Result<Self, CgroupError> {
        if name.contains('/') {
            return Err(CgroupError::InvalidPath {
                what,
                path: name.into(),
                reason: "must not contain '/'",
            });
        }
        component(name)
            .map(|()| Self(name.to_owned()))
            .map_err(|reason| CgroupError::InvalidPath {
                what,
                path: name.into(),
                reason,
            })
    }
}

impl FromStr for CgroupName {
    type Err = CgroupError;

    fn from_str(name: &str) -> Result<Self, CgroupError> {
        Self::parse("cgroup name", name)
    }
}

impl RelativeCgroupPath {
    /// The names, outermost first.
    pub fn components(&self) -> impl Iterator<Item = &CgroupName> {
        self.0.iter()
    }

    /// The path, such as `husk/group`; empty for the root.
    pub fn to_path_buf(&self) -> PathBuf {
        self.0.iter().map(CgroupName::as_str).collect()
    }

    fn parse(what: &'static str, path: &str) -> Result<Self, CgroupError> {
        let invalid = |reason| CgroupError::InvalidPath {
            what,
            path: path.into(),
            reason,
        };
        if path.starts_with('/') {
            return Err(invalid("must be relative to the cgroup root"));
        }
        if path.is_empty() {
            return Ok(Self::default());
        }
        let names = split(path).map_err(invalid)?;
        if names.len() > MAX_PARENT_DEPTH {
            return Err(invalid("has too many components"));
        }
        Ok(Self(names))
    }
}

impl FromStr for RelativeCgroupPath {
    type Err = CgroupError;

    fn from_str(path: &str) -> Result<Self, CgroupError> {
        Self::parse("cgroup parent", path)
    }
}

impl CgroupPath {
    /// The cgroup `name` inside `parent`.
    pub fn new(parent: RelativeCgroupPath, name: CgroupName) -> Self {
        Self { parent, name }
    }

    /// The directories above the cgroup, below the root.
    pub fn parent(&self) -> &RelativeCgroupPath {
        &self.parent
    }

    /// The cgroup's own directory name.
    pub fn name(&self) -> &CgroupName {
        &self.name
    }

    /// `<parent>/<name>`, relative to the cgroup root.
    pub fn relative(&self) -> PathBuf {
        self.parent.to_path_buf().join(self.name.as_str())
    }
}

/// The names of a `/`-separated relative path, each a valid [`CgroupName`].
fn split(path: &str) -> Result<Vec<CgroupName>, &'static str> {
    path.split('/')
        .map(|name| component(name).map(|()| CgroupName(name.to_owned())))
        .collect()
}

/// Why `name` cannot be one directory name of a cgroup path, if it cannot.
fn component(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("must not have an empty component")
    } else if name == "." || name == ".." {
        Err("must not contain '.' or '..' components")
    } else if name.contains('\0') {
        Err("must not contain a NUL byte")
    } else if name.contains('\n') {
        Err("must not contain a newline")
    } else if name.len() > MAX_NAME {
        Err("has a component longer than 255 bytes")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn resolve(cgroups_path: Option<&str>) -> Result<PathBuf, String> {
        resolve_path(cgroups_path, "husk", "c1")
            .map(|p| p.relative())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn resolves_oci_cgroups_path() {
        assert_eq!(resolve(None).unwrap(), Path::new("husk/c1"));
        assert_eq!(
            resolve(Some("/machine/app/c9")).unwrap(),
            Path::new("machine/app/c9")
        );
        assert_eq!(resolve(Some("/c9")).unwrap(), Path::new("c9"));
        assert_eq!(resolve(Some("app/c9")).unwrap(), Path::new("husk/app/c9"));
        let path = resolve_path(Some("/a/b/c"), "husk", "c1").unwrap();
        let parent: Vec<_> = path.parent().components().map(CgroupName::as_str).collect();
        assert_eq!(parent, ["a", "b"]);
        assert_eq!(path.name().as_str(), "c");
        assert_eq!(
            resolve_path(None, "", "c1").unwrap().relative(),
            Path::new("c1")
        );
        assert_eq!(
            resolve_path(None, "a/b", "c1").unwrap().relative(),
            Path::new("a/b/c1")
        );
        // Not the systemd form: a colon is a valid name character.
        assert_eq!(resolve(Some("/a:b:c")).unwrap(), Path::new("a:b:c"));
        assert_eq!(resolve(Some("a:b")).unwrap(), Path::new("husk/a:b"));
    }

    #[test]
    fn rejects_bad_paths_naming_them() {
        let cases = [
            (
                Some("system.slice:husk:c1"),
                "linux.cgroupsPath \"system.slice:husk:c1\": systemd cgroup paths are not supported",
            ),
            (
                Some("/"),
                "linux.cgroupsPath \"/\" must name a cgroup below the cgroup root",
            ),
            (
                Some("/a/../b"),
                "linux.cgroupsPath \"/a/../b\" must not contain '.' or '..' components",
            ),
            (
                Some("../escape"),
                "linux.cgroupsPath \"../escape\" must not contain '.' or '..' components",
            ),
            (
                Some("/a//b"),
                "linux.cgroupsPath \"/a//b\" must not have an empty component",
            ),
            (
                Some("/a/b/"),
                "linux.cgroupsPath \"/a/b/\" must not have an empty component",
            ),
            (
                Some("/a\0b"),
                "linux.cgroupsPath \"/a\\0b\" must not contain a NUL byte",
            ),
        ];
        for (path, message) in cases {
            assert_eq!(resolve(path).unwrap_err(), message, "{path:?}");
        }
        let deep = "/x".repeat(MAX_PARENT_DEPTH + 2);
        assert!(resolve(Some(&deep))
            .unwrap_err()
            .ends_with("has too many components"));
        let long = format!("/{}", "x".repeat(MAX_NAME + 1));
        assert!(resolve(Some(&long))
            .unwrap_err()
            .ends_with("has a component longer than 255 bytes"));
    }

    #[test]
    fn validates_parent_and_name() {
        let error = |parent: &str, id: &str| {
            resolve_path(None, parent, id)
                .map(|_| ())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            error("/husk", "c1"),
            "cgroup parent \"/husk\" must be relative to the cgroup root"
        );
        assert_eq!(
            error("husk/..", "c1"),
            "cgroup parent \"husk/..\" must not contain '.' or '..' components"
        );
        assert_eq!(
            error("husk", "a/b"),
            "cgroup name \"a/b\" must not contain '/'"
        );
        assert_eq!(
            error("husk", ".."),
            "cgroup name \"..\" must not contain '.' or '..' components"
        );
        assert_eq!(
            error("husk", ""),
            "cgroup name \"\" must not have an empty component"
        );
        assert_eq!(
            error("husk", "a\nb"),
            "cgroup name \"a\\nb\" must not contain a newline"
        );
        assert!("husk/apps".parse::<RelativeCgroupPath>().is_ok());
        assert!(
            "a..b".parse::<CgroupName>().is_ok(),
            "only whole '..' components"
        );
        assert!("a/b".parse::<CgroupName>().is_err());
    }
}
