//! `husk run --image`: a container of an imported image.
//!
//! ```text
//! <data>/containers/<id>/          claimed with mkdir (one container per id)
//!   image                          the image's config digest: `image rm` refuses it
//!   layers                         the image's diff_ids, one a line: prune keeps them
//!   config.json                    husk spec's default, the image's process, a writable root
//!   rootfs/                        overlay: lowerdir = the layers, upperdir, workdir
//!                                  (or a copy of the layers: see root.rs)
//!   upper/ work/                   the container's changes, gone with it
//! ```
//!
//! The process is the image config's `Entrypoint` plus `Cmd` (or the command
//! given), its `Env` (then `-e`), `WorkingDir` and a numeric `User`. The
//! overlay is mounted in husk's own mount namespace before the container is
//! created (the container init bind-mounts it as its root, as any bundle's
//! rootfs). The container's state record names the directory
//! (`image_root`), so that whoever deletes the container (the foreground
//! `run` at exit, `husk delete`, the `-d --rm` reaper) unmounts and removes
//! it with the container, before the record itself goes.
//!
//! A crash leaves one of: the directory alone (before the record was
//! written, or after a reboot emptied the state directory): `husk delete
//! --force ID` removes it ([`remove_orphan`]); or the record and the
//! directory: `husk delete [--force] ID`. The daemon's stale-state cleanup
//! does both for its containers. Until then `prune` keeps the layers and
//! `image rm` refuses the image.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use delta_updater::Digest;
use serde::Deserialize;
use serde_json_core::str::EscapedStr;

use super::store::{Lock, Store, StoreError, MAX_LAYERS};
use super::{root, ImageError, ImageName, Pinned};
use crate::container::ContainerId;
use crate::lifecycle;
use crate::state::StateError;
use crate::sys;
use crate::wire::{self, Field, HeapCapped};

/// Most arguments (`Entrypoint` plus `Cmd`) and most `Env` entries an image may give.
pub const MAX_ARGS: usize = 256;
/// Longest argument, environment entry, `WorkingDir` or `User`, in bytes.
pub const MAX_ARG_BYTES: usize = 4096;
/// Largest image config read to run it.
pub const MAX_CONFIG_BYTES: usize = super::oci::MAX_JSON_BYTES;
/// Longest overlay mount option string the kernel takes (one page).
pub const MAX_OVERLAY_OPTIONS: usize = 4095;

/// What runs in a container of an image: the process of its `config.json`.
pub type ImageProcess = crate::template::ProcessTemplate;
pub use crate::template::{RunOptions, Volume};

#[derive(Deserialize)]
struct ConfigWire<'a> {
    #[serde(borrow)]
    config: Option<ProcessWire<'a>>,
}

#[derive(Deserialize)]
struct ProcessWire<'a> {
    #[serde(rename = "Entrypoint", borrow)]
    entrypoint: Option<HeapCapped<EscapedStr<'a>, MAX_ARGS>>,
    #[serde(rename = "Cmd", borrow)]
    cmd: Option<HeapCapped<EscapedStr<'a>, MAX_ARGS>>,
    #[serde(rename = "Env", borrow)]
    env: Option<HeapCapped<EscapedStr<'a>, MAX_ARGS>>,
    #[serde(rename = "WorkingDir", borrow)]
    working_dir: Option<EscapedStr<'a>>,
    #[serde(rename = "User", borrow)]
    user: Option<EscapedStr<'a>>,
}

const ENTRYPOINT: Field = Field::new("config.Entrypoint");
const CMD: Field = Field::new("config.Cmd");
const ENV: Field = Field::new("config.Env");

/// The process of the image config `json`, with `command` (if not empty)
/// instead of its `Cmd` and `env` added to (or replacing in) its `Env`.
pub fn image_process(
    json: &[u8],
    command: &[String],
    env: &[String],
) -> Result<ImageProcess, ImageError> {
    let file = "the image config";
    let format = |reason: String| ImageError::Format {
        file: file.into(),
        reason,
    };
    super::oci::check_depth(json).map_err(&format)?;
    let (wire, _) = serde_json_core::from_slice::<ConfigWire<'_>>(json)
        .map_err(|e| format(format!("not the JSON expected: {e}")))?;
    let wire_error = |source| ImageError::Wire {
        file: file.into(),
        source,
    };
    let list = |field: Field, value: Option<HeapCapped<EscapedStr<'_>, MAX_ARGS>>| {
        let items = match value {
            Some(value) => value.into_items(field).map_err(wire_error)?,
            None => Vec::new(),
        };
        items
            .into_iter()
            .enumerate()
            .map(|(i, s)| wire::unescape(field.at(i), s, MAX_ARG_BYTES).map_err(wire_error))
            .collect::<Result<Vec<_>, _>>()
    };
    let text = |field: &'static str, value: Option<EscapedStr<'_>>| match value {
        Some(value) => wire::unescape(Field::new(field), value, MAX_ARG_BYTES).map_err(wire_error),
        None => Ok(String::new()),
    };
    let (entrypoint, cmd, image_env, cwd, user) = match wire.config {
        Some(p) => (
            list(ENTRYPOINT, p.entrypoint)?,
            list(CMD, p.cmd)?,
            list(ENV, p.env)?,
            text("config.WorkingDir", p.working_dir)?,
            text("config.User", p.user)?,
        ),
        None => Default::default(),
    };
    let mut args = entrypoint;
    args.extend(if command.is_empty() {
        cmd
    } else {
        command.to_vec()
    });
    if args.is_empty() {
        return Err(format(
            "has neither Entrypoint nor Cmd: give a command".into(),
        ));
    }
    if args.len() > MAX_ARGS {
        return Err(format(format!(
            "the command has more than {MAX_ARGS} arguments"
        )));
    }
    let mut all_env: Vec<String> = image_env;
    for entry in env {
        let name = entry.split('=').next().unwrap_or_default();
        all_env.retain(|e| e.split('=').next() != Some(name));
        all_env.push(entry.clone());
    }
    let cwd = if cwd.is_empty() { "/".to_owned() } else { cwd };
    if !cwd.starts_with('/') {
        return Err(format(format!("config.WorkingDir {cwd:?} is not absolute")));
    }
    Ok(ImageProcess {
        args,
        env: all_env,
        cwd,
        user: parse_user(&user).ok_or_else(|| {
            format(format!(
                "config.User {user:?} is not UID or UID:GID (user names are not looked up yet)"
            ))
        })?,
    })
}

/// `""` (root), `UID` or `UID:GID`.
fn parse_user(user: &str) -> Option<(u32, u32)> {
    let number = |n: &str| {
        n.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| n.parse().ok())
            .flatten()
    };
    match user.split_once(':') {
        _ if user.is_empty() => Some((0, 0)),
        Some((uid, gid)) => Some((number(uid)?, number(gid)?)),
        None => Some((number(user)?, 0)),
    }
}

/// `husk spec`'s default `config.json` running `process` on a writable root
/// (the overlay's upper directory takes the writes), with `options`' limits,
/// volumes and network.
pub fn bundle_config(process: &ImageProcess, options: &RunOptions) -> String {
    crate::template::config(None, Some((process, options)))
}

/// The directory of container `id`'s image files.
pub fn container_dir(store: &Store, id: &ContainerId) -> PathBuf {
    store.root().join("containers").join(id.as_str())
}

/// What a container of an image holds in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRefs {
    /// The container id (its directory's name).
    pub id: String,
    /// The image config it runs (containers made by an older husk have none).
    pub config: Option<Digest>,
    /// The layers its root is made of.
    pub layers: Vec<Digest>,
}

/// What every container of an image holds, for `prune` and `image rm`.
pub fn container_refs(store: &Store) -> Result<Vec<ContainerRefs>, ImageError> {
    let dir = store.root().join("containers");
    let entries = match fs::read_dir(&dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other.map_err(io_error("list", &dir))?,
    };
    let mut refs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_error("list", &dir))?;
        let digests = |file: &str| -> Result<Vec<Digest>, ImageError> {
            let path = entry.path().join(file);
            let text = match super::store::read_capped(&path, MAX_LAYERS * 72) {
                Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                    return Ok(Vec::new())
                }
                other => other?,
            };
            String::from_utf8_lossy(&text)
                .lines()
                .map(|line| {
                    Digest::parse(line).map_err(|e| {
                        ImageError::Store(StoreError::Corrupt {
                            path: path.clone(),
                            reason: e.to_string(),
                        })
                    })
                })
                .collect()
        };
        refs.push(ContainerRefs {
            id: entry.file_name().to_string_lossy().into_owned(),
            config: digests(IMAGE_FILE)?.first().copied(),
            layers: digests(LAYERS_FILE)?,
        });
    }
    refs.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(refs)
}

const IMAGE_FILE: &str = "image";
const LAYERS_FILE: &str = "layers";

fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ImageError + 'a {
    move |source| {
        ImageError::Store(StoreError::Io {
            op,
            path: path.to_owned(),
            source,
        })
    }
}

/// Makes container `id`'s bundle for image `name` and mounts its root;
/// returns the bundle directory, absolute. On failure nothing is left.
pub fn prepare(
    store: &Store,
    name: &ImageName,
    id: &ContainerId,
    command: &[String],
    env: &[String],
    options: &RunOptions,
) -> Result<PathBuf, ImageError> {
    let lock = store.lock()?;
    let images = store.images()?;
    let image = images
        .iter()
        .find(|i| i.name == *name)
        .ok_or_else(|| ImageError::NotFound(name.clone()))?;
    let pinned = Pinned {
        name: name.to_string(),
        config: image.id,
        layers: image.layers.clone(),
    };
    prepare_locked(store, &lock, &pinned, id, command, env, options)
}

/// Makes container `id`'s bundle for an image given by its config and
/// layers (a release's image: the update agent put them in the store), as
/// [`prepare`] does for an image of the store.
pub fn prepare_pinned(
    store: &Store,
    image: &Pinned,
    id: &ContainerId,
    command: &[String],
    env: &[String],
    options: &RunOptions,
) -> Result<PathBuf, ImageError> {
    let lock = store.lock()?;
    prepare_locked(store, &lock, image, id, command, env, options)
}

fn prepare_locked(
    store: &Store,
    _lock: &Lock,
    image: &Pinned,
    id: &ContainerId,
    command: &[String],
    env: &[String],
    options: &RunOptions,
) -> Result<PathBuf, ImageError> {
    let name = &image.name;
    let config = store.blob(&image.config, MAX_CONFIG_BYTES)?;
    let process = image_process(&config, command, env)?;
    let config_json = bundle_config(&process, options);
    let mut roots = Vec::new();
    for layer in &image.layers {
        if !store.has_layer(layer) {
            return Err(StoreError::Missing {
                what: format!("layer {layer} of {name}"),
            }
            .into());
        }
        roots.push(store.layer_root(layer));
    }
    let policy = root::Policy::from_env(std::env::var_os(root::ROOT_ENV).as_deref())?;
    // Absolute: the container's record keeps it, and whoever deletes the
    // container (the reaper in /, another shell) may stand elsewhere.
    let dir = container_dir(store, id);
    let dir = std::path::absolute(&dir).map_err(io_error("resolve", &dir))?;
    let mut builder = fs::DirBuilder::new();
    builder.mode(0o700).recursive(true);
    builder
        .create(dir.parent().unwrap_or(store.root()))
        .map_err(io_error("create", &dir))?;
    builder.recursive(false);
    builder.create(&dir).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => ImageError::Format {
            file: dir.display().to_string(),
            reason: format!(
                "exists: container {} runs or was interrupted ('husk delete --force {}' removes it)",
                id.as_str(),
                id.as_str()
            ),
        },
        _ => io_error("create", &dir)(e),
    })?;
    let made = (|| -> Result<(), ImageError> {
        let mut layers = String::new();
        for layer in &image.layers {
            let _ = writeln!(layers, "{layer}");
        }
        let write = |file: &str, text: &str| {
            let path = dir.join(file);
            fs::write(&path, text).map_err(io_error("write", &path))
        };
        write(IMAGE_FILE, &format!("{}\n", image.config))?;
        write(LAYERS_FILE, &layers)?;
        write("config.json", &config_json)?;
        let rootfs = dir.join("rootfs");
        make_dir(&rootfs)?;
        let filesystems = fs::read_to_string(root::FILESYSTEMS).ok();
        let fallback = match policy.before_mount(filesystems.as_deref()) {
            Some(fallback) => Some(fallback),
            None => mount_overlay(&dir, &roots, name)?
                .map(|errno| policy.after_mount(errno).ok_or(errno))
                .transpose()
                .map_err(|errno| {
                    StoreError::Sys(sys::SysError::new("mount overlay", Some(&rootfs), errno))
                })?,
        };
        if let Some(why) = fallback {
            let bytes = root::copy_layers(&roots, &rootfs)?;
            eprintln!(
                "husk: warning: {why}: the root of {} is a copy of its {} layer{} ({})",
                id.as_str(),
                roots.len(),
                if roots.len() == 1 { "" } else { "s" },
                super::human_size(bytes)
            );
        }
        Ok(())
    })();
    if let Err(e) = made {
        let _ = remove_root(&dir);
        return Err(e);
    }
    Ok(dir)
}

fn make_dir(path: &Path) -> Result<(), ImageError> {
    fs::DirBuilder::new()
        .mode(0o755)
        .create(path)
        .map_err(io_error("create", path))
}

/// Mounts the overlay of `layers` (lowest first) at `<dir>/rootfs` with its
/// upper and work directories in `dir`; the errno if the kernel refused the
/// mount (the directories made for it removed again).
fn mount_overlay(
    dir: &Path,
    layers: &[PathBuf],
    name: &str,
) -> Result<Option<nix::errno::Errno>, ImageError> {
    let mut lower = String::new();
    // overlayfs lists the upper-most lower directory first.
    for root in layers.iter().rev() {
        let root = root.to_str().ok_or_else(|| ImageError::Format {
            file: root.display().to_string(),
            reason: "is not UTF-8".into(),
        })?;
        if !lower.is_empty() {
            lower.push(':');
        }
        lower.push_str(root);
    }
    let (upper, work) = (dir.join("upper"), dir.join("work"));
    let options = format!(
        "lowerdir={lower},upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    if options.len() > MAX_OVERLAY_OPTIONS {
        return Err(ImageError::Format {
            file: name.to_owned(),
            reason: format!(
                "its {} layers' paths are longer than the {MAX_OVERLAY_OPTIONS} bytes \
                 an overlay mount takes (a shorter --data-dir helps)",
                layers.len()
            ),
        });
    }
    make_dir(&upper)?;
    make_dir(&work)?;
    match sys::mount_overlay(&dir.join("rootfs"), &options) {
        Ok(()) => Ok(None),
        Err(e) => {
            for made in [&upper, &work] {
                fs::remove_dir_all(made).map_err(io_error("remove", made))?;
            }
            Ok(Some(e.errno()))
        }
    }
}

/// Unmounts container `id`'s root and removes its directory.
pub fn finish(store: &Store, id: &ContainerId) -> Result<(), ImageError> {
    remove_root(&container_dir(store, id))
}

/// Unmounts the root of the image container directory `dir` (if it is
/// mounted: a copy, or a mount a reboot took, is not) and removes the
/// directory; a directory already gone is not an error.
pub fn remove_root(dir: &Path) -> Result<(), ImageError> {
    let rootfs = dir.join("rootfs");
    sys::unmount(&rootfs).map_err(StoreError::Sys)?;
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error("remove", dir)(e)),
        _ => Ok(()),
    }
}

/// `husk delete --force ID` of a container with no state record: removes
/// what `husk run --image` left of it under the data directory (a crash
/// before the record was written, or a reboot that emptied the state
/// directory). Returns whether there was anything.
pub fn remove_orphan(store: &Store, id: &ContainerId) -> Result<bool, ImageError> {
    let dir = container_dir(store, id);
    if !dir.exists() {
        return Ok(false);
    }
    remove_root(&dir)?;
    Ok(true)
}

/// `husk delete [--force] ID`: the container as [`lifecycle::delete`]
/// removes it (its image root with it); with `--force`, also what `husk run
/// --image` left of an `ID` that has no record ([`remove_orphan`]).
pub fn delete(
    host: &lifecycle::Host,
    store: &Store,
    id: &ContainerId,
    force: bool,
) -> Result<(), crate::Error> {
    match lifecycle::delete(host, id, force) {
        Err(crate::Error::State(StateError::NotFound(_))) if force && remove_orphan(store, id)? => {
            Ok(())
        }
        Ok(()) if force => Ok(remove_orphan(store, id).map(drop)?),
        other => other,
    }
}

#[cfg(test)]
mod tests;
