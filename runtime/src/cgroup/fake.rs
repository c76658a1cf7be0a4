//! An in-memory cgroup v2 filesystem that follows the kernel's rules, for tests.
//!
//! - A new cgroup gets the core interface files and those of the controllers
//!   enabled in its parent's `cgroup.subtree_control`; enabling a controller
//!   there adds its files to existing children.
//! - Writing a file that does not exist fails with `ENOENT`; nothing is created.
//! - `+controller` must be in the cgroup's `cgroup.controllers` (else `ENOENT`);
//!   a non-root cgroup with processes cannot enable controllers for its children,
//!   and one with controllers enabled for its children cannot take processes
//!   (both `EBUSY`, "no internal processes").
//! - `rmdir` fails with `EBUSY` while the cgroup has processes or children.
//! - A device program set on a cgroup replaces the one before; the kernel can
//!   be made to refuse them, as one without eBPF does.
//! - Time only passes in [`CgroupFs::pause`]: a freeze takes effect, and killed
//!   processes leave, `settle` after the write.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;

use super::devices::Insn;
use super::CgroupFs;
use crate::sys::SysError;

/// Controllers in the order the kernel lists them.
const CONTROLLERS: &[&str] = &[
    "cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc",
];

#[derive(Debug)]
pub struct FakeKernel {
    root: PathBuf,
    state: RefCell<State>,
}

#[derive(Debug)]
struct State {
    dirs: BTreeMap<PathBuf, Dir>,
    now: Duration,
    settle: Duration,
    has_kill: bool,
    writes: Vec<String>,
    fail: Option<(PathBuf, Errno)>,
    /// The device program of each cgroup that has one.
    programs: BTreeMap<PathBuf, Vec<Insn>>,
    /// What loading a device program fails with, if it does.
    bpf_error: Option<Errno>,
}

#[derive(Debug, Default)]
struct Dir {
    files: BTreeMap<String, String>,
    /// Processes, each with the time it leaves if it was killed.
    procs: Vec<(i32, Option<Duration>)>,
    /// The requested freezer state and when it takes effect.
    freeze: (bool, Duration),
}

impl FakeKernel {
    /// A cgroup2 root at `root` offering `controllers` (space-separated),
    /// none enabled for children yet.
    pub fn new(root: &str, controllers: &str) -> Self {
        let mut files = BTreeMap::new();
        for (name, content) in [
            ("cgroup.controllers", controllers),
            ("cgroup.subtree_control", ""),
            ("cgroup.procs", ""),
            ("cgroup.max.depth", "max"),
            ("cgroup.max.descendants", "max"),
            ("cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\n"),
        ] {
            files.insert(name.to_owned(), content.to_owned());
        }
        let mut dirs = BTreeMap::new();
        dirs.insert(
            PathBuf::from(root),
            Dir {
                files,
                ..Dir::default()
            },
        );
        Self {
            root: PathBuf::from(root),
            state: RefCell::new(State {
                dirs,
                now: Duration::ZERO,
                settle: Duration::ZERO,
                has_kill: true,
                writes: Vec::new(),
                fail: None,
                programs: BTreeMap::new(),
                bpf_error: None,
            }),
        }
    }

    /// The cgroup2 root of a guest in the lab: every controller, all enabled.
    pub fn lab(root: &str) -> Self {
        let fake = Self::new(root, &CONTROLLERS.join(" "));
        fake.set_file(root, "cgroup.subtree_control", &CONTROLLERS.join(" "));
        fake
    }

    /// Freezes and kills take `settle` to take effect.
    pub fn settle(self, settle: Duration) -> Self {
        self.state.borrow_mut().settle = settle;
        self
    }

    /// A kernel before 5.14: new cgroups have no `cgroup.kill`.
    pub fn without_cgroup_kill(self) -> Self {
        self.state.borrow_mut().has_kill = false;
        self
    }

    /// Writes to `file` fail with `errno`.
    pub fn fail_writes(&self, file: &str, errno: Errno) {
        self.state.borrow_mut().fail = Some((PathBuf::from(file), errno));
    }

    /// Loading device programs fails with `errno`.
    pub fn fail_bpf(&self, errno: Errno) {
        self.state.borrow_mut().bpf_error = Some(errno);
    }

    /// The device program attached to the cgroup `dir`, if any.
    pub fn device_program(&self, dir: &str) -> Option<Vec<Insn>> {
        self.state.borrow().programs.get(Path::new(dir)).cloned()
    }

    /// Every successful write so far as `<path> <- <value>`, and forgets them.
    pub fn take_writes(&self) -> Vec<String> {
        std::mem::take(&mut self.state.borrow_mut().writes)
    }

    /// How much time has passed in pauses.
    pub fn now(&self) -> Duration {
        self.state.borrow().now
    }

    /// Puts process `pid` into the cgroup `dir`, bypassing the kernel's checks.
    pub fn add_proc(&self, dir: &str, pid: i32) {
        let mut state = self.state.borrow_mut();
        state
            .dirs
            .get_mut(Path::new(dir))
            .unwrap()
            .procs
            .push((pid, None));
    }

    /// Process `pid` leaves its cgroup `settle` from now, as if killed.
    pub fn exit_later(&self, pid: i32) {
        let mut state = self.state.borrow_mut();
        let at = state.now + state.settle;
        for dir in state.dirs.values_mut() {
            for proc in dir.procs.iter_mut().filter(|(p, _)| *p == pid) {
                proc.1.get_or_insert(at);
            }
        }
    }

    /// Sets a file's content directly, bypassing the kernel's checks; for
    /// `cgroup.procs` and `cgroup.events`, a non-empty content replaces what the
    /// fake generates.
    pub fn set_file(&self, dir: &str, name: &str, content: &str) {
        let mut state = self.state.borrow_mut();
        let dir = state.dirs.get_mut(Path::new(dir)).unwrap();
        dir.files.insert(name.to_owned(), content.to_owned());
    }

    /// Whether `dir` is a cgroup.
    pub fn is_dir(&self, dir: &str) -> bool {
        self.state.borrow().dirs.contains_key(Path::new(dir))
    }

    /// A file's content, as a read would return it.
    pub fn file(&self, path: &str) -> String {
        self.read_to_string(Path::new(path)).unwrap()
    }
}

impl State {
    fn live_procs(&self, dir: &Dir) -> Vec<i32> {
        dir.procs
            .iter()
            .filter(|(_, leaves)| leaves.is_none_or(|at| at > self.now))
            .map(|&(pid, _)| pid)
            .collect()
    }

    fn subtree_control(&self, dir: &Path) -> Vec<String> {
        self.dirs[dir].files["cgroup.subtree_control"]
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    fn children(&self, dir: &Path) -> Vec<PathBuf> {
        self.dirs
            .keys()
            .filter(|d| d.parent() == Some(dir))
            .cloned()
            .collect()
    }

    fn enable(&mut self, dir: &Path, value: &str, is_root: bool) -> io::Result<()> {
        let available = self.dirs[dir].files["cgroup.controllers"].clone();
        let mut enabled = self.subtree_control(dir);
        for token in value.split_whitespace() {
            let (on, controller) = match token.split_at(1) {
                ("+", c) => (true, c),
                ("-", c) => (false, c),
                _ => return Err(Errno::EINVAL.into()),
            };
            if !available.split_whitespace().any(|a| a == controller) {
                return Err(Errno::ENOENT.into());
            }
            if on && !is_root && !self.live_procs(&self.dirs[dir]).is_empty() {
                return Err(Errno::EBUSY.into());
            }
            enabled.retain(|c| c != controller);
            if on {
                enabled.push(controller.to_owned());
            }
        }
        enabled.sort_by_key(|c| CONTROLLERS.iter().position(|k| k == c));
        let enabled = enabled.join(" ");
        self.dirs
            .get_mut(dir)
            .unwrap()
            .files
            .insert("cgroup.subtree_control".into(), enabled.clone());
        for child in self.children(dir) {
            let child = self.dirs.get_mut(&child).unwrap();
            child
                .files
                .insert("cgroup.controllers".into(), enabled.clone());
            for controller in CONTROLLERS {
                let files = controller_files(controller);
                if enabled.split_whitespace().any(|e| e == *controller) {
                    for (name, content) in files {
                        child.files.entry(name).or_insert(content);
                    }
                } else {
                    for (name, _) in files {
                        child.files.remove(&name);
                    }
                }
            }
        }
        Ok(())
    }
}

impl CgroupFs for FakeKernel {
    fn read_to_string(&self, file: &Path) -> io::Result<String> {
        let state = self.state.borrow();
        let (dir, name) = split(file)?;
        let dir = state.dirs.get(dir).ok_or(Errno::ENOENT)?;
        let content = dir.files.get(name).ok_or(Errno::ENOENT)?;
        Ok(match name {
            // Generated, unless a test set them.
            "cgroup.procs" | "cgroup.events" if !content.is_empty() => content.clone(),
            "cgroup.procs" => state
                .live_procs(dir)
                .iter()
                .map(|pid| format!("{pid}\n"))
                .collect(),
            "cgroup.events" => {
                let (target, at) = dir.freeze;
                let frozen = if state.now >= at { target } else { !target };
                let populated = !state.live_procs(dir).is_empty();
                format!(
                    "populated {}\nfrozen {}\n",
                    u8::from(populated),
                    u8::from(frozen)
                )
            }
            _ => content.clone(),
        })
    }

    fn write(&self, file: &Path, value: &str) -> io::Result<()> {
        let mut state = self.state.borrow_mut();
        let (dir, name) = split(file)?;
        let is_root = dir == self.root;
        let exists = state
            .dirs
            .get(dir)
            .is_some_and(|d| d.files.contains_key(name));
        if !exists {
            return Err(Errno::ENOENT.into());
        }
        if let Some((failing, errno)) = &state.fail {
            if failing == file {
                return Err((*errno).into());
            }
        }
        let now = state.now;
        let settle = state.settle;
        match name {
            "cgroup.subtree_control" => state.enable(dir, value, is_root)?,
            "cgroup.procs" => {
                let pid: i32 = value.trim().parse().map_err(|_| Errno::EINVAL)?;
                if !is_root && !state.subtree_control(dir).is_empty() {
                    return Err(Errno::EBUSY.into());
                }
                for d in state.dirs.values_mut() {
                    d.procs.retain(|&(p, _)| p != pid);
                }
                state.dirs.get_mut(dir).unwrap().procs.push((pid, None));
            }
            "cgroup.freeze" => {
                let target = match value.trim() {
                    "0" => false,
                    "1" => true,
                    _ => return Err(Errno::EINVAL.into()),
                };
                state.dirs.get_mut(dir).unwrap().freeze = (target, now + settle);
            }
            "cgroup.kill" => {
                if value.trim() != "1" {
                    return Err(Errno::EINVAL.into());
                }
                for proc in &mut state.dirs.get_mut(dir).unwrap().procs {
                    proc.1.get_or_insert(now + settle);
                }
            }
            _ => {
                let d = state.dirs.get_mut(dir).unwrap();
                d.files.insert(name.to_owned(), value.to_owned());
            }
        }
        state.writes.push(format!("{} <- {value}", file.display()));
        Ok(())
    }

    fn mkdir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state.borrow_mut();
        let (parent, name) = split(dir)?;
        let Some(parent_dir) = state.dirs.get(parent) else {
            return Err(Errno::ENOENT.into());
        };
        if state.dirs.contains_key(dir) || parent_dir.files.contains_key(name) {
            return Err(Errno::EEXIST.into());
        }
        let enabled = parent_dir.files["cgroup.subtree_control"].clone();
        let mut files: BTreeMap<String, String> = [
            ("cgroup.controllers", enabled.as_str()),
            ("cgroup.subtree_control", ""),
            ("cgroup.procs", ""),
            ("cgroup.events", ""),
            ("cgroup.freeze", "0"),
            ("cgroup.max.depth", "max"),
            ("cgroup.max.descendants", "max"),
            ("cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\n"),
        ]
        .into_iter()
        .map(|(name, content)| (name.to_owned(), content.to_owned()))
        .collect();
        if state.has_kill {
            files.insert("cgroup.kill".into(), String::new());
        }
        for controller in enabled.split_whitespace() {
            files.extend(controller_files(controller));
        }
        state.dirs.insert(
            dir.to_path_buf(),
            Dir {
                files,
                ..Dir::default()
            },
        );
        Ok(())
    }

    fn rmdir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state.borrow_mut();
        let d = state.dirs.get(dir).ok_or(Errno::ENOENT)?;
        if dir == self.root || !state.live_procs(d).is_empty() || !state.children(dir).is_empty() {
            return Err(Errno::EBUSY.into());
        }
        state.dirs.remove(dir);
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        let state = self.state.borrow();
        state.dirs.contains_key(path)
            || split(path).is_ok_and(|(dir, name)| {
                state
                    .dirs
                    .get(dir)
                    .is_some_and(|d| d.files.contains_key(name))
            })
    }

    fn pause(&self, interval: Duration) {
        self.state.borrow_mut().now += interval;
    }

    fn set_device_program(
        &self,
        dir: &Path,
        program: Option<&[Insn]>,
        replace: bool,
    ) -> Result<(), SysError> {
        let mut state = self.state.borrow_mut();
        if !state.dirs.contains_key(dir) {
            return Err(SysError::new("open", Some(dir), Errno::ENOENT));
        }
        // Attaching without replacing would leave the old filter there too.
        if !replace && state.programs.contains_key(dir) {
            return Err(SysError::new(
                "bpf(BPF_PROG_ATTACH)",
                Some(dir),
                Errno::EEXIST,
            ));
        }
        match (program, state.bpf_error) {
            (Some(_), Some(errno)) => Err(SysError::new("bpf(BPF_PROG_LOAD)", None, errno)),
            (Some(program), None) => {
                state.programs.insert(dir.to_path_buf(), program.to_vec());
                Ok(())
            }
            (None, _) => {
                state.programs.remove(dir);
                Ok(())
            }
        }
    }
}

fn split(path: &Path) -> io::Result<(&Path, &str)> {
    let dir = path.parent().ok_or(Errno::ENOENT)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or(Errno::ENOENT)?;
    Ok((dir, name))
}

/// The interface files a controller adds to a cgroup, with their initial content.
fn controller_files(controller: &str) -> Vec<(String, String)> {
    let files: &[(&str, &str)] = match controller {
        "memory" => &[
            ("memory.current", "0"),
            ("memory.min", "0"),
            ("memory.low", "0"),
            ("memory.high", "max"),
            ("memory.max", "max"),
            ("memory.swap.current", "0"),
            ("memory.swap.max", "max"),
            (
                "memory.events",
                "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
            ),
        ],
        "pids" => &[("pids.max", "max"), ("pids.current", "0")],
        "cpu" => &[
            ("cpu.weight", "100"),
            ("cpu.weight.nice", "0"),
            ("cpu.max", "max 100000"),
            ("cpu.max.burst", "0"),
            ("cpu.idle", "0"),
        ],
        "cpuset" => &[
            ("cpuset.cpus", ""),
            ("cpuset.mems", ""),
            ("cpuset.cpus.effective", "0"),
            ("cpuset.mems.effective", "0"),
        ],
        "io" => &[
            ("io.weight", "default 100"),
            ("io.max", ""),
            ("io.stat", ""),
        ],
        "hugetlb" => &[
            ("hugetlb.2MB.max", "max"),
            ("hugetlb.2MB.current", "0"),
            ("hugetlb.1GB.max", "max"),
            ("hugetlb.1GB.current", "0"),
        ],
        "rdma" => &[("rdma.max", ""), ("rdma.current", "")],
        "misc" => &[("misc.max", ""), ("misc.current", "")],
        _ => &[],
    };
    files
        .iter()
        .map(|&(name, content)| (name.to_owned(), content.to_owned()))
        .collect()
}
