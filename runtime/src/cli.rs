//! Command-line arguments: argh parses the raw arguments, [`parse`] turns them
//! into an [`Invocation`] of validated values.
//!
//! The commands and options are runc's and crun's, so OCI tooling can drive
//! husk: global options before the command, then the command and its id.

use std::ffi::{CString, OsString};
use std::path::{Path, PathBuf};

use argh::FromArgs;
use nix::sys::signal::Signal;

use crate::container::ContainerId;
use crate::image::extract::{self, MAX_LAYER_BYTES};
use crate::image::oci::ImportOptions;
use crate::image::run::{RunOptions, Volume};
use crate::image::store::DEFAULT_DATA_DIR;
use crate::image::ImageName;
use crate::lifecycle;
use crate::spec::{ContainerPath, ProcessOverrides};

/// A parsed command line: the global options and the command.
#[derive(Debug, PartialEq, Eq)]
pub struct Invocation {
    /// The state directory (`--root`); `None` for the default
    /// ([`crate::state::default_root`]).
    pub root: Option<PathBuf>,
    /// The data directory, where images are stored (`--data-dir`).
    pub data_dir: PathBuf,
    /// Where errors are also written (`--log`), and how (`--log-format`).
    pub log: Option<(PathBuf, LogFormat)>,
    /// What to do.
    pub command: Command,
}

/// How `--log` lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `<time> error: <message>`
    Text,
    /// `{"level":"error","msg":"<message>","time":"<time>"}`, as runc writes.
    Json,
}

/// What husk was asked to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Print the version.
    Version,
    /// Set a container up, ready for `start`.
    Create(CreateArgs),
    /// Start a created container.
    Start(ContainerId),
    /// Print a container's OCI state.
    State(ContainerId),
    /// Send a signal to a container's init, or with `all` to all its processes.
    Kill {
        /// The container.
        id: ContainerId,
        /// The signal.
        signal: Signal,
        /// Every process in the container's cgroup.
        all: bool,
    },
    /// Freeze a running container.
    Pause(ContainerId),
    /// Thaw a paused container.
    Resume(ContainerId),
    /// List a container's processes.
    Ps {
        /// The container.
        id: ContainerId,
        /// As a JSON array of pids.
        json: bool,
    },
    /// Remove a container.
    Delete {
        /// The container.
        id: ContainerId,
        /// Kill it first if it runs.
        force: bool,
    },
    /// Create and start a container.
    Run(RunArgs),
    /// Run a new process in a running container.
    Exec(ExecCommand),
    /// Change a container's cgroup limits.
    Update {
        /// The container.
        id: ContainerId,
        /// Where the `linux.resources` JSON comes from.
        resources: ResourcesSource,
    },
    /// A command of the update agent.
    Agent {
        /// The data directory.
        data_dir: PathBuf,
        /// Which.
        command: AgentCommand,
    },
    /// Print the OCI features document.
    Features,
    /// Write a default config.json into a bundle directory.
    Spec {
        /// The bundle directory.
        bundle: PathBuf,
        /// For the user husk runs as, mapped to root in a user namespace.
        rootless: bool,
    },
    /// List containers.
    List {
        /// As JSON instead of a table.
        json: bool,
        /// Ids only.
        quiet: bool,
    },
    /// Report what the running kernel offers husk.
    Check {
        /// A board's kernel config fragment, or its board TOML, to compare with.
        board: Option<PathBuf>,
        /// As JSON instead of text.
        json: bool,
    },
    /// Supervise the desired state (`husk daemon`).
    Daemon(crate::daemon::Options),
    /// Print the supervisor's published status.
    DaemonStatus {
        /// The supervisor's data directory.
        data_dir: PathBuf,
        /// As JSON instead of a table.
        json: bool,
    },
    /// Print a supervised container's logs.
    Logs {
        /// The supervisor's data directory.
        data_dir: PathBuf,
        /// The container.
        name: ContainerId,
        /// Which lines, how.
        options: crate::daemon::LogsOptions,
    },
    /// Work with the image store.
    Image(ImageCommand),
    /// A request to the running daemon (`husk stop|restart NAME`).
    Control(crate::daemon::control::Request),
    /// `husk config show|check`.
    Config {
        /// The data directory.
        data_dir: PathBuf,
        /// Which.
        command: ConfigCommand,
    },
    /// A field engineer's view of the supervised device.
    Field {
        /// The supervisor's data directory.
        data_dir: PathBuf,
        /// Which.
        command: FieldCommand,
    },
}

/// `husk status`, `ps` (no id), `inspect`, `stats`.
#[derive(Debug, PartialEq, Eq)]
pub enum FieldCommand {
    /// Is this device healthy?
    Status {
        /// As JSON.
        json: bool,
    },
    /// The supervised containers.
    Ps {
        /// As JSON.
        json: bool,
    },
    /// Everything known of one supervised container.
    Inspect {
        /// The container.
        name: ContainerId,
        /// As JSON.
        json: bool,
    },
    /// CPU, memory and pids per container.
    Stats {
        /// Again every 2 s.
        watch: bool,
        /// As JSON lines.
        json: bool,
    },
}

/// `husk config show|check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigCommand {
    /// Print the configuration in effect.
    Show {
        /// As JSON.
        json: bool,
    },
    /// Validate every configuration file.
    Check,
}

/// The `husk image` commands.
#[derive(Debug, PartialEq, Eq)]
pub enum ImageCommand {
    /// Import an OCI layout, OCI archive or `docker save` archive.
    Import {
        /// The directory or archive.
        path: PathBuf,
        /// How.
        options: ImportOptions,
    },
    /// List images.
    List {
        /// As JSON instead of a table.
        json: bool,
    },
    /// Forget an image.
    Remove(ImageName),
    /// Remove layers and blobs no image references.
    Prune,
    /// Print the store's disk usage.
    Usage,
}

/// `exec`'s arguments, validated.
#[derive(Debug, PartialEq, Eq)]
pub struct ExecCommand {
    /// The container.
    pub id: ContainerId,
    /// A file holding the process (`--process`), instead of `config.json`'s.
    pub process_file: Option<PathBuf>,
    /// What the command line changes in that process.
    pub overrides: ProcessOverrides,
    /// Return once the process runs.
    pub detach: bool,
    /// Where to write the process's pid.
    pub pid_file: Option<PathBuf>,
    /// The unix socket to send the terminal's master to.
    pub console_socket: Option<PathBuf>,
    /// The data directory of the daemon that may supervise the container.
    pub data_dir: PathBuf,
}

/// `husk update check|apply|status|history|rollback`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentCommand {
    /// Ask for a new release.
    Check {
        /// A repository directory instead of the server.
        from: Option<PathBuf>,
    },
    /// Install the newest release.
    Apply {
        /// A repository directory instead of the server.
        from: Option<PathBuf>,
        /// As the daemon polls: with the last `If-None-Match`.
        poll: bool,
    },
    /// Print the agent's state.
    Status {
        /// As JSON.
        json: bool,
    },
    /// Print the history.
    History {
        /// As JSON.
        json: bool,
    },
    /// Switch back to the previous release.
    Rollback,
}

/// Where `update` takes the new limits from.
#[derive(Debug, PartialEq, Eq)]
pub enum ResourcesSource {
    /// A file of `linux.resources` JSON; `-` is standard input.
    File(PathBuf),
    /// `linux.resources` JSON built from the command-line flags.
    Flags(String),
}

/// How parsing ended early.
#[derive(Debug, PartialEq, Eq)]
pub enum EarlyExit {
    /// Help was asked for: print this text and exit successfully.
    Help(String),
    /// The arguments are wrong: this one-line message says why.
    Usage(String),
}

/// husk: a minimal OCI container runtime for small devices.
#[derive(FromArgs, Debug)]
#[argh(
    note = "Field commands: status, ps (no id), inspect, stats, logs, exec NAME,
config show|check, update status. Listing commands take --json (schemas:
man husk). run and exec (in the foreground) exit with the container
process's status (128 + signal); usage errors exit 1.",
    error_code(0, "success; status: the device is healthy"),
    error_code(1, "husk failed (a one-line error on stderr)"),
    error_code(
        2,
        "check: a required kernel feature is missing; config check: a bad file"
    ),
    error_code(3, "check: the kernel differs from --board"),
    error_code(4, "update apply: nothing new"),
    error_code(5, "status: the daemon is not running"),
    error_code(6, "status: a container or file needs attention"),
    error_code(7, "status: the release is on probation")
)]
struct Husk {
    /// print the version and exit
    #[argh(switch)]
    version: bool,
    /// state directory (default: /run/husk; $XDG_RUNTIME_DIR/husk when not root)
    #[argh(option)]
    root: Option<PathBuf>,
    /// also write errors to this file
    #[argh(option)]
    log: Option<PathBuf>,
    /// format of --log lines: text (default) or json
    #[argh(option)]
    log_format: Option<String>,
    /// data directory for images (default: /var/lib/husk)
    #[argh(option)]
    data_dir: Option<PathBuf>,
    #[argh(subcommand)]
    command: Option<Subcommand>,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum Subcommand {
    Create(CreateArgs),
    Start(StartArgs),
    State(StateArgs),
    Kill(KillArgs),
    Delete(DeleteArgs),
    Pause(PauseArgs),
    Resume(ResumeArgs),
    Ps(PsArgs),
    Spec(SpecArgs),
    Update(UpdateArgs),
    Features(FeaturesArgs),
    Run(RunArgs),
    Exec(ExecArgs),
    List(ListArgs),
    Image(ImageArgs),
    Daemon(DaemonArgs),
    Logs(LogsArgs),
    Check(CheckArgs),
    Status(StatusArgs),
    Inspect(InspectArgs),
    Stats(StatsArgs),
    Stop(StopArgs),
    Restart(RestartArgs),
    Config(ConfigArgs),
}

/// Print or check the configuration in effect: desired state, updates, board.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "config",
    note = "Reads <data-dir>/desired.json (and each bundle's config.json), the update
config (<data-dir>/update/config.json, else /etc/husk/update.json), the
trusted root (<data-dir>/update/root.json, else /etc/husk/root.json; its
self-signature and expiry checked) and /etc/husk/board.toml, with the parsers
the daemon and the update agent use. Changes nothing."
)]
struct ConfigArgs {
    #[argh(subcommand)]
    command: ConfigSubcommand,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum ConfigSubcommand {
    Show(ConfigShowArgs),
    Check(ConfigCheckArgs),
}

/// Print the configuration in effect, and which file each part comes from.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "show")]
struct ConfigShowArgs {
    /// data directory (default: /var/lib/husk)
    #[argh(option)]
    data_dir: Option<PathBuf>,
    /// print JSON instead of text
    #[argh(switch)]
    json: bool,
}

/// Validate every configuration file: one line each, ok or bad and why.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "check",
    error_code(0, "every file is good (or absent where that is allowed)"),
    error_code(1, "husk failed"),
    error_code(
        2,
        "a file is bad, or the trusted root the update config needs is missing"
    )
)]
struct ConfigCheckArgs {
    /// data directory (default: /var/lib/husk)
    #[argh(option)]
    data_dir: Option<PathBuf>,
}

/// Ask the daemon to stop a supervised container and keep it stopped.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "stop",
    note = "Through the daemon's control socket, <root>/daemon.sock: needs root
or the group of 'husk daemon --group'. The container stays stopped until
'husk start NAME', 'husk restart NAME', a changed desired entry or a new
daemon."
)]
struct StopArgs {
    /// the supervised container's name
    #[argh(positional)]
    name: ContainerId,
}

/// Ask the daemon to stop a supervised container, if it runs, and start it.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "restart",
    note = "Through the daemon's control socket, as 'husk stop'."
)]
struct RestartArgs {
    /// the supervised container's name
    #[argh(positional)]
    name: ContainerId,
}

/// Is this device healthy? Version, release, daemon, containers, disk.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "status",
    note = "Reads update/config.json, update/state.json and status.json of the data
directory, and each running container's cgroup. CPU is the average since
the container started, in % of one CPU. Unwell: unhealthy, given up or
backing off; disk full: under 5% free.",
    error_code(0, "all is well"),
    error_code(5, "the daemon is not running, or its status cannot be read"),
    error_code(6, "a container unwell, desired state refused, a bad file, disk full"),
    error_code(7, "the running release is on probation")
)]
struct StatusArgs {
    /// data directory (default: /var/lib/husk)
    #[argh(option)]
    data_dir: Option<PathBuf>,
    /// print JSON instead of text
    #[argh(switch)]
    json: bool,
}

/// Print everything known of one supervised container.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "inspect")]
struct InspectArgs {
    /// data directory (default: /var/lib/husk)
    #[argh(option)]
    data_dir: Option<PathBuf>,
    /// print JSON instead of text
    #[argh(switch)]
    json: bool,
    /// the container's name
    #[argh(positional)]
    name: ContainerId,
}

/// Print CPU, memory and pids of each supervised container.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "stats",
    note = "CPU is measured over 1 s, then over each 2 s of --watch, in % of one
CPU. --watch redraws in place on a terminal, else prints one block per
sample (one JSON line per sample with --json)."
)]
struct StatsArgs {
    /// data directory (default: /var/lib/husk)
    #[argh(option)]
    data_dir: Option<PathBuf>,
    /// sample again every 2 s until interrupted
    #[argh(switch, short = 'w')]
    watch: bool,
    /// print JSON instead of a table
    #[argh(switch)]
    json: bool,
}

/// Supervise the containers of <data-dir>/desired.json.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "daemon",
    note = "Restarts, health checks and logs as desired.json says; status.json
shows them ('husk daemon status'). SIGHUP reads desired.json again (a bad
file is reported and the running state kept); SIGTERM stops every container."
)]
struct DaemonArgs {
    /// data directory: desired.json, logs/, status.json (default: /var/lib/husk)
    #[argh(option)]
    data_dir: Option<PathBuf>,
    /// most bytes of one log file before it is rotated (default: 1048576)
    #[argh(option)]
    log_max_bytes: Option<u64>,
    /// rotated log files kept per container (default: 3)
    #[argh(option)]
    log_files: Option<u32>,
    /// group that may use the control socket (stop, start, restart) besides root
    #[argh(option)]
    group: Option<String>,
    /// group that may read the device's state (status, ps, logs, inspect,
    /// update status, config show) besides root
    #[argh(option)]
    read_group: Option<String>,
    #[argh(subcommand)]
    command: Option<DaemonSubcommand>,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum DaemonSubcommand {
    Status(DaemonStatusArgs),
}

/// Print the supervised containers as the daemon last published them.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "status")]
struct DaemonStatusArgs {
    /// data directory (default: /var/lib/husk)
    #[argh(option)]
    data_dir: Option<PathBuf>,
    /// print JSON instead of a table
    #[argh(switch)]
    json: bool,
}

/// Print a supervised container's output (stdout and stderr).
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "logs",
    note = "The daemon stamps each line with the UTC time it read it; --since T
keeps the lines stamped at or after T, a duration back from now (30s, 10m,
2h, 1d) or a UTC time (2026-11-28T03:00:00Z). With --tail N, the last N of
those. Lines written before stamps existed count as older than any T."
)]
struct LogsArgs {
    /// data directory (default: /var/lib/husk)
    #[argh(option)]
    data_dir: Option<PathBuf>,
    /// keep printing what the container writes
    #[argh(switch, short = 'f')]
    follow: bool,
    /// print only the last N lines
    #[argh(option)]
    tail: Option<usize>,
    /// print only lines written since T (10m, 2h, 2026-11-28T03:00:00Z)
    #[argh(option)]
    since: Option<String>,
    /// print each line's time, as the file has it
    #[argh(switch, short = 't')]
    timestamps: bool,
    /// the container's name
    #[argh(positional)]
    name: ContainerId,
}

/// Import, list and remove images (stored under --data-dir).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "image")]
struct ImageArgs {
    #[argh(subcommand)]
    command: ImageSubcommand,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum ImageSubcommand {
    Import(ImageImportArgs),
    Ls(ImageLsArgs),
    Rm(ImageRmArgs),
    Prune(ImagePruneArgs),
    Df(ImageDfArgs),
}

/// Import an OCI image layout, OCI archive or docker save archive.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "import",
    note = "Layers may be tar, gzip or zstd. Device nodes in layers are refused
and setuid/setgid bits cleared unless allowed. On a terminal (TERM not
dumb), stderr shows the layer being extracted on one line; the summary
line is all otherwise."
)]
struct ImageImportArgs {
    /// record the image as NAME[:TAG] (default: the name the source gives)
    #[argh(option)]
    name: Option<ImageName>,
    /// take the image for this OCI architecture (default: this device's)
    #[argh(option)]
    arch: Option<String>,
    /// make the character and block devices layers hold
    #[argh(switch)]
    allow_devices: bool,
    /// keep setuid/setgid bits and file capabilities
    #[argh(switch)]
    allow_setid: bool,
    /// largest uncompressed layer in bytes (default: 4 GiB)
    #[argh(option, default = "MAX_LAYER_BYTES")]
    max_layer_size: u64,
    /// the OCI layout directory or the archive
    #[argh(positional)]
    path: PathBuf,
}

/// List images.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "ls")]
struct ImageLsArgs {
    /// print JSON instead of a table
    #[argh(switch)]
    json: bool,
}

/// Forget an image; its layers stay until 'husk image prune'.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "rm")]
struct ImageRmArgs {
    /// the image, NAME[:TAG]
    #[argh(positional)]
    name: ImageName,
}

/// Remove layers and configs no image references.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "prune")]
struct ImagePruneArgs {}

/// Print how much disk the image store takes.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "df")]
struct ImageDfArgs {}

/// Set a container up from an OCI bundle; it waits for 'husk start'.
#[derive(FromArgs, Debug, PartialEq, Eq)]
#[argh(subcommand, name = "create")]
pub struct CreateArgs {
    /// the OCI bundle directory holding config.json (default: .)
    #[argh(option, short = 'b', default = "PathBuf::from(\".\")")]
    pub bundle: PathBuf,
    /// write the container's pid to this file
    #[argh(option)]
    pub pid_file: Option<PathBuf>,
    /// the unix socket to send the terminal's master to (process.terminal)
    #[argh(option)]
    pub console_socket: Option<PathBuf>,
    /// run a small init as PID 1 that reaps and forwards signals
    #[argh(switch)]
    pub init: bool,
    /// container id: 1 to 64 of A-Z a-z 0-9 _ . -, not starting with '.'
    #[argh(positional)]
    pub id: ContainerId,
}

/// Create and start a container, wait for it and exit with its status.
#[derive(FromArgs, Debug, PartialEq, Eq)]
#[argh(
    subcommand,
    name = "run",
    note = "With --image, the bundle is made from an imported image: its root an
overlay of the image's layers and a writable layer (where overlayfs is
missing, a copy of the layers: HUSK_IMAGE_ROOT=copy forces it, =overlay
forbids it), its process the image's Entrypoint and Cmd (or COMMAND), Env
(and --env), WorkingDir and numeric User. 'husk run --name N [OPTIONS]
IMAGE [COMMAND...]' is 'husk run --image IMAGE [OPTIONS] N [COMMAND...]'.

As runc's run, a container run in the foreground is removed when it exits,
writable layer included (--rm says so and changes nothing). With -d it is
left when it exits, stopped, until 'husk delete ID' removes it; with -d --rm
a reaper process waits for it and removes it when it exits."
)]
pub struct RunArgs {
    /// run a container of this imported image (NAME[:TAG])
    #[argh(option)]
    pub image: Option<ImageName>,
    /// with --image: set an environment variable, NAME=VALUE (repeatable)
    #[argh(option, short = 'e')]
    pub env: Vec<String>,
    /// with --image: bind HOST into the container at CTR, read-only with :ro
    #[argh(option, short = 'v', arg_name = "HOST:CTR[:ro]")]
    pub volume: Vec<String>,
    /// with --image: memory limit, bytes or with k, m, g (1024-based)
    #[argh(option)]
    pub memory: Option<String>,
    /// with --image: CPU limit, in CPUs (0.01 to 1024, e.g. 0.5)
    #[argh(option)]
    pub cpus: Option<String>,
    /// with --image: most processes (pids.max)
    #[argh(option)]
    pub pids_limit: Option<u64>,
    /// with --image: none (a network namespace of its own, default) or host
    #[argh(option)]
    pub net: Option<String>,
    /// the OCI bundle directory holding config.json (default: .)
    #[argh(option, short = 'b', default = "PathBuf::from(\".\")")]
    pub bundle: PathBuf,
    /// write the container's pid to this file
    #[argh(option)]
    pub pid_file: Option<PathBuf>,
    /// return once the container runs, leaving it running
    #[argh(switch, short = 'd')]
    pub detach: bool,
    /// remove the container when it exits (with -d: by a reaper process)
    #[argh(switch)]
    pub rm: bool,
    /// the unix socket to send the terminal's master to (process.terminal)
    #[argh(option)]
    pub console_socket: Option<PathBuf>,
    /// run a small init as PID 1 that reaps and forwards signals
    #[argh(switch)]
    pub init: bool,
    /// container id: 1 to 64 of A-Z a-z 0-9 _ . -, not starting with '.'
    #[argh(positional)]
    pub id: ContainerId,
    /// with --image: the command and its arguments, instead of the image's Cmd
    #[argh(positional, greedy)]
    pub command: Vec<String>,
}

/// Run a new process in a running container.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "exec",
    note = "The process is the container's config.json process with COMMAND as
its args, or the process object in --process FILE; --env (added or
replaced), --cwd and --user then change it.
ID is first a container of --root, as runc has it; if --root holds none,
the container of that name 'husk daemon' supervises (its status.json in
--data-dir says where its containers are), if it runs."
)]
struct ExecArgs {
    /// for a supervised container: data directory (default: /var/lib/husk)
    #[argh(option)]
    data_dir: Option<PathBuf>,
    /// a JSON file holding an OCI process object to run
    #[argh(option, short = 'p')]
    process: Option<PathBuf>,
    /// set an environment variable, NAME=VALUE (repeatable)
    #[argh(option, short = 'e')]
    env: Vec<String>,
    /// the working directory inside the container
    #[argh(option)]
    cwd: Option<String>,
    /// run as UID or UID:GID
    #[argh(option, short = 'u')]
    user: Option<String>,
    /// return once the process runs, leaving it running
    #[argh(switch, short = 'd')]
    detach: bool,
    /// write the process's pid to this file
    #[argh(option)]
    pid_file: Option<PathBuf>,
    /// the unix socket to send the terminal's master to (process.terminal)
    #[argh(option)]
    console_socket: Option<PathBuf>,
    /// the container id
    #[argh(positional)]
    id: ContainerId,
    /// the command and its arguments
    #[argh(positional, greedy)]
    command: Vec<String>,
}

/// Start a created container, or ask the daemon to start a supervised one.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "start",
    note = "A container of --root is started as runc does; a name --root does not
hold is asked of the daemon, if one runs (see 'husk stop')."
)]
struct StartArgs {
    /// the container id
    #[argh(positional)]
    id: ContainerId,
}

/// Print a container's OCI state as JSON.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "state")]
struct StateArgs {
    /// the container id
    #[argh(positional)]
    id: ContainerId,
}

/// Freeze every process of a running container.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "pause")]
struct PauseArgs {
    /// the container id
    #[argh(positional)]
    id: ContainerId,
}

/// Thaw a paused container.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "resume")]
struct ResumeArgs {
    /// the container id
    #[argh(positional)]
    id: ContainerId,
}

/// List supervised containers; with an id, a container's pids (as runc).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "ps")]
struct PsArgs {
    /// table (default) or json
    #[argh(option, short = 'f', default = "String::from(\"table\")")]
    format: String,
    /// print JSON (the same as --format json)
    #[argh(switch)]
    json: bool,
    /// without an id: data directory (default: /var/lib/husk)
    #[argh(option)]
    data_dir: Option<PathBuf>,
    /// the container id
    #[argh(positional)]
    id: Option<ContainerId>,
}

/// Send a signal (default TERM) to a container.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "kill")]
struct KillArgs {
    /// signal every process in the container, not only its init
    #[argh(switch, short = 'a')]
    all: bool,
    /// the container id
    #[argh(positional)]
    id: ContainerId,
    /// the signal: a name (TERM, SIGTERM) or a number (default: TERM)
    #[argh(positional, default = "String::from(\"TERM\")")]
    signal: String,
}

/// Remove a stopped or created container.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "delete",
    note = "A container of 'husk run --image' goes with its root (unmounted) and
writable layer. With --force, what such a run left under --data-dir of an
ID with no state (a crash, or a reboot that emptied --root) is removed too."
)]
struct DeleteArgs {
    /// kill the container first if it runs
    #[argh(switch, short = 'f')]
    force: bool,
    /// the container id
    #[argh(positional)]
    id: ContainerId,
}

/// Print what husk supports, as the OCI features JSON document.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "features")]
struct FeaturesArgs {}

/// Change a container's cgroup limits (runc's update ID), or update the device.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "update",
    note = "The device's releases come from the repository <data-dir>/update/config.json
names, checked against <data-dir>/update/root.json. 'husk daemon' polls it
itself; these verbs do it by hand. A new release is on probation until its
containers are healthy, and is rolled back by the daemon if they are not."
)]
struct UpdateArgs {
    /// linux.resources JSON to apply, from a file or - for stdin
    #[argh(option, short = 'r')]
    resources: Option<PathBuf>,
    /// memory limit in bytes (-1: none)
    #[argh(option)]
    memory: Option<i64>,
    /// memory plus swap limit in bytes (-1: none)
    #[argh(option)]
    memory_swap: Option<i64>,
    /// most processes (0 or -1: none)
    #[argh(option)]
    pids_limit: Option<i64>,
    /// CPU time in microseconds per period (-1: none)
    #[argh(option)]
    cpu_quota: Option<i64>,
    /// CPU period in microseconds
    #[argh(option)]
    cpu_period: Option<u64>,
    /// CPU shares, the relative weight
    #[argh(option)]
    cpu_shares: Option<u64>,
    /// CPUs the container may run on, e.g. 0-1,3
    #[argh(option)]
    cpuset_cpus: Option<String>,
    /// memory nodes the container may use, e.g. 0
    #[argh(option)]
    cpuset_mems: Option<String>,
    /// the container id
    #[argh(positional)]
    id: Option<ContainerId>,
    #[argh(subcommand)]
    command: Option<AgentSubcommand>,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum AgentSubcommand {
    Check(AgentCheckArgs),
    Apply(AgentApplyArgs),
    Status(AgentStatusArgs),
    History(AgentHistoryArgs),
    Rollback(AgentRollbackArgs),
}

/// Ask the update server (or a directory) for a new release; install nothing.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "check")]
struct AgentCheckArgs {
    /// a repository directory or uncompressed tarball (a USB stick)
    /// instead of the server
    #[argh(option)]
    from: Option<PathBuf>,
}

/// Download, verify and switch to the newest release, on probation.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "apply",
    note = "Exit status: 0 a release was installed, 1 an error (the running release
is untouched), 4 nothing new. On a terminal (TERM not dumb), stderr shows
the layer being downloaded on one line; the summary line is all otherwise."
)]
struct AgentApplyArgs {
    /// a repository directory or uncompressed tarball (a USB stick)
    /// instead of the server
    #[argh(option)]
    from: Option<PathBuf>,
    /// as husk daemon polls: "not modified" if the server's timestamp keeps
    /// the entity tag of the last check
    #[argh(switch)]
    poll: bool,
}

/// Print the running release, its probation and the last check.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "status")]
struct AgentStatusArgs {
    /// as JSON (the state file's schema)
    #[argh(switch)]
    json: bool,
}

/// Print what was installed, committed and rolled back, newest first.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "history")]
struct AgentHistoryArgs {
    /// as JSON (the state file's schema)
    #[argh(switch)]
    json: bool,
}

/// Switch back to the previous release now.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "rollback")]
struct AgentRollbackArgs {}

/// Write a default config.json (read-only root, default capabilities and
/// seccomp profile) into a bundle directory.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "spec")]
struct SpecArgs {
    /// the bundle directory (default: .)
    #[argh(option, short = 'b', default = "PathBuf::from(\".\")")]
    bundle: PathBuf,
    /// a config for the user running husk, as root of a user namespace
    #[argh(switch)]
    rootless: bool,
}

/// List containers.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "list")]
struct ListArgs {
    /// table (default) or json
    #[argh(option, short = 'f', default = "String::from(\"table\")")]
    format: String,
    /// print ids only
    #[argh(switch, short = 'q')]
    quiet: bool,
}

/// Report what the running kernel offers husk, as lxc-checkconfig does.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "check",
    note = "Each feature is marked required (husk spec's default container needs it)
or optional, with what degrades without it. Reads the kernel config from
/proc/config.gz or /boot/config-$(uname -r) and probes /proc and /sys.
--board takes a kconfig fragment, or a board TOML whose kernel_fragment =
\"FILE\" line names one (relative to the TOML).
--json prints one object: schemaVersion, kernel, arch, config, ok, exitCode,
features[] (id, name, group, required, status yes|module|missing|unknown,
note, symbols, degrades) and board (fragment, ok, symbols[] of symbol,
wanted, running, ok) or null.",
    error_code(1, "husk could not read the kernel config or the board fragment"),
    error_code(2, "a required feature is missing"),
    error_code(3, "required features present, but the kernel differs from --board")
)]
struct CheckArgs {
    /// compare with a board: its kconfig fragment or board TOML
    #[argh(option)]
    board: Option<PathBuf>,
    /// print the report as JSON
    #[argh(switch)]
    json: bool,
}

/// Parses the process arguments, program name first.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Invocation, EarlyExit> {
    let args = args
        .into_iter()
        .skip(1)
        .map(|arg| {
            arg.into_string()
                .map_err(|arg| usage(&format!("argument {arg:?} is not valid UTF-8")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let args = run_name(args)?;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let husk = Husk::from_args(&["husk"], &args).map_err(|exit| match exit.status {
        Ok(()) => EarlyExit::Help(wrap_usage(&exit.output)),
        Err(()) => usage(&exit.output),
    })?;
    let log_format = match husk.log_format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            return Err(usage(&format!(
                "--log-format must be text or json, not {other:?}"
            )))
        }
    };
    // `--data-dir` before the command, or after `daemon`/`logs` (where the
    // supervisor's users expect it).
    let global_data_dir = husk.data_dir.clone();
    let data_dir = |local: Option<PathBuf>| {
        local
            .or_else(|| global_data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
    };
    let command = match husk.command {
        _ if husk.version => Command::Version,
        None => return Err(usage("no command given")),
        Some(Subcommand::Create(args)) => Command::Create(args),
        Some(Subcommand::Run(args)) => Command::Run(run_command(args)?),
        Some(Subcommand::Exec(args)) => {
            let dir = data_dir(args.data_dir.clone());
            Command::Exec(exec_command(args, dir)?)
        }
        Some(Subcommand::Start(args)) => Command::Start(args.id),
        Some(Subcommand::State(args)) => Command::State(args.id),
        Some(Subcommand::Kill(args)) => {
            let signal =
                lifecycle::parse_signal(&args.signal).map_err(|e| usage(&format!("kill: {e}")))?;
            Command::Kill {
                id: args.id,
                signal,
                all: args.all,
            }
        }
        Some(Subcommand::Pause(args)) => Command::Pause(args.id),
        Some(Subcommand::Resume(args)) => Command::Resume(args.id),
        Some(Subcommand::Ps(args)) => {
            let json = json_format("ps", &args.format)? || args.json;
            match args.id {
                Some(id) => Command::Ps { id, json },
                None => Command::Field {
                    data_dir: data_dir(args.data_dir),
                    command: FieldCommand::Ps { json },
                },
            }
        }
        Some(Subcommand::Stop(args)) => {
            Command::Control(crate::daemon::control::Request::Stop(args.name))
        }
        Some(Subcommand::Restart(args)) => {
            Command::Control(crate::daemon::control::Request::Restart(args.name))
        }
        Some(Subcommand::Status(args)) => Command::Field {
            data_dir: data_dir(args.data_dir),
            command: FieldCommand::Status { json: args.json },
        },
        Some(Subcommand::Inspect(args)) => Command::Field {
            data_dir: data_dir(args.data_dir),
            command: FieldCommand::Inspect {
                name: args.name,
                json: args.json,
            },
        },
        Some(Subcommand::Stats(args)) => Command::Field {
            data_dir: data_dir(args.data_dir),
            command: FieldCommand::Stats {
                watch: args.watch,
                json: args.json,
            },
        },
        Some(Subcommand::Delete(args)) => Command::Delete {
            id: args.id,
            force: args.force,
        },
        Some(Subcommand::Update(args)) => update_command(args, data_dir(None))?,
        Some(Subcommand::Features(FeaturesArgs {})) => Command::Features,
        Some(Subcommand::Spec(args)) => Command::Spec {
            bundle: args.bundle,
            rootless: args.rootless,
        },
        Some(Subcommand::List(args)) => Command::List {
            json: json_format("list", &args.format)?,
            quiet: args.quiet,
        },
        Some(Subcommand::Check(args)) => Command::Check {
            board: args.board,
            json: args.json,
        },
        Some(Subcommand::Image(args)) => Command::Image(image_command(args.command)),
        Some(Subcommand::Config(ConfigArgs {
            command: ConfigSubcommand::Show(args),
        })) => Command::Config {
            data_dir: data_dir(args.data_dir),
            command: ConfigCommand::Show { json: args.json },
        },
        Some(Subcommand::Config(ConfigArgs {
            command: ConfigSubcommand::Check(args),
        })) => Command::Config {
            data_dir: data_dir(args.data_dir),
            command: ConfigCommand::Check,
        },
        Some(Subcommand::Daemon(args)) => daemon_command(args, data_dir)?,
        Some(Subcommand::Logs(args)) => Command::Logs {
            data_dir: data_dir(args.data_dir),
            name: args.name,
            options: crate::daemon::LogsOptions {
                tail: args.tail,
                since: args
                    .since
                    .as_deref()
                    .map(crate::daemon::logs::Since::parse)
                    .transpose()
                    .map_err(|e| usage(&format!("logs: {e}")))?,
                follow: args.follow,
                timestamps: args.timestamps,
            },
        },
    };
    Ok(Invocation {
        root: husk.root,
        data_dir: data_dir(None),
        log: husk.log.map(|path| (path, log_format)),
        command,
    })
}

/// Global options that take a value (before the command).
const GLOBAL_VALUES: [&str; 4] = ["--root", "--log", "--log-format", "--data-dir"];
/// Options of `run` that take a value.
const RUN_VALUES: [&str; 13] = [
    "--image",
    "-e",
    "--env",
    "-v",
    "--volume",
    "--memory",
    "--cpus",
    "--pids-limit",
    "--net",
    "-b",
    "--bundle",
    "--pid-file",
    "--console-socket",
];

/// `husk run --name N [--image] IMAGE [CMD...]`, the form of docker and of
/// the images issue, rewritten into husk's own `run --image IMAGE N
/// [CMD...]` before parsing: with `--name`, the first positional is the
/// image (unless `--image` names it) and the rest the command. Without
/// `--name`, `run ID` keeps runc's contract.
fn run_name(args: Vec<String>) -> Result<Vec<String>, EarlyExit> {
    let mut at = 0;
    while at < args.len() && args[at].starts_with('-') {
        at += if GLOBAL_VALUES.contains(&args[at].as_str()) {
            2
        } else {
            1
        };
    }
    if args.get(at).map(String::as_str) != Some("run") {
        return Ok(args);
    }
    let (head, rest) = args.split_at(at + 1);
    let mut options = Vec::new();
    let mut name = None;
    let mut image = false;
    let mut i = 0;
    while i < rest.len() && rest[i].starts_with('-') && rest[i] != "--" {
        let arg = &rest[i];
        if arg == "--name" {
            let value = rest
                .get(i + 1)
                .ok_or_else(|| usage("run: --name needs a value"))?;
            name = Some(value.clone());
            i += 2;
            continue;
        }
        image |= arg == "--image";
        let takes = RUN_VALUES.contains(&arg.as_str());
        options.push(arg.clone());
        if takes {
            options.extend(rest.get(i + 1).cloned());
            i += 1;
        }
        i += 1;
    }
    let Some(name) = name else {
        return Ok(args);
    };
    let mut positional = rest[i..].iter().skip_while(|a| *a == "--").cloned();
    let mut out = head.to_vec();
    out.extend(options);
    if !image {
        let image = positional
            .next()
            .ok_or_else(|| usage("run: --name NAME needs an IMAGE after the options"))?;
        out.extend(["--image".to_owned(), image]);
    }
    out.push(name);
    let command: Vec<String> = positional.collect();
    if !command.is_empty() {
        out.push("--".to_owned());
        out.extend(command);
    }
    Ok(out)
}

/// `run`: `--image` with its own flags, or a bundle.
fn run_command(args: RunArgs) -> Result<RunArgs, EarlyExit> {
    if args.image.is_none() {
        let image_only = !args.command.is_empty()
            || !args.env.is_empty()
            || args.image_options() != Ok(RunOptions::default());
        if image_only {
            return Err(usage(
                "run: a COMMAND, --env, -v, --memory, --cpus, --pids-limit and --net need --image",
            ));
        }
        return Ok(args);
    }
    if let Err(message) = args.image_options() {
        return Err(usage(&format!("run: {message}")));
    }
    if args.bundle != Path::new(".") {
        return Err(usage("run: give --image or --bundle, not both"));
    }
    for entry in &args.env {
        if !matches!(entry.find('='), Some(1..)) || entry.contains('\0') {
            return Err(usage(&format!(
                "run: --env takes NAME=VALUE, not {entry:?}"
            )));
        }
    }
    if args.command.iter().any(|a| a.contains('\0')) {
        return Err(usage("run: an argument contains a NUL byte"));
    }
    Ok(args)
}

impl RunArgs {
    /// The limits, volumes and network `--image` asks for, or what is wrong
    /// with them.
    pub fn image_options(&self) -> Result<RunOptions, String> {
        let memory = self.memory.as_deref().map(parse_size).transpose()?;
        if memory == Some(0) {
            return Err("--memory must be above 0".into());
        }
        let cpu_quota = self.cpus.as_deref().map(parse_cpus).transpose()?;
        if self.pids_limit == Some(0) {
            return Err("--pids-limit must be above 0".into());
        }
        let host_network = match self.net.as_deref() {
            None | Some("none") => false,
            Some("host") => true,
            Some(other) => return Err(format!("--net is none or host, not {other:?}")),
        };
        let volumes = self
            .volume
            .iter()
            .map(|v| parse_volume(v))
            .collect::<Result<_, _>>()?;
        Ok(RunOptions {
            memory,
            cpu_quota,
            pids: self.pids_limit,
            volumes,
            host_network,
        })
    }
}

/// `--memory`: bytes, or a number with `k`, `m` or `g` (1024-based).
fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("--memory takes bytes or a number with k, m or g, not {text:?}");
    let lower = text.to_ascii_lowercase();
    let (digits, shift) = match lower.strip_suffix(['k', 'm', 'g']) {
        Some(digits) => (
            digits,
            10 * (1 + "kmg".find(&lower[lower.len() - 1..]).unwrap_or(0)),
        ),
        None => (lower.as_str(), 0),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(1 << shift).ok_or_else(bad)
}

/// `--cpus`: a decimal number of CPUs with at most two decimals, as the
/// quota per [`crate::template::CPU_PERIOD`].
fn parse_cpus(text: &str) -> Result<u64, String> {
    let bad = || format!("--cpus takes 0.01 to 1024 (at most two decimals), not {text:?}");
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 2
        || !whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let hundredths = whole * 100 + format!("{frac:0<2}").parse::<u64>().map_err(|_| bad())?;
    if !(1..=102_400).contains(&hundredths) {
        return Err(bad());
    }
    Ok(hundredths * crate::template::CPU_PERIOD / 100)
}

/// `-v HOST:CTR[:ro]`, both absolute.
fn parse_volume(text: &str) -> Result<Volume, String> {
    let bad = |why: &str| format!("-v {text:?}: {why}");
    let mut parts = text.split(':');
    let (Some(host), Some(container)) = (parts.next(), parts.next()) else {
        return Err(bad("give HOST:CONTAINER[:ro]"));
    };
    let readonly = match parts.next() {
        None => false,
        Some("ro") => true,
        Some("rw") => false,
        Some(_) => return Err(bad("the only options are ro and rw")),
    };
    if parts.next().is_some() {
        return Err(bad("give HOST:CONTAINER[:ro]"));
    }
    if !host.starts_with('/') || !container.starts_with('/') {
        return Err(bad("both paths must be absolute"));
    }
    if text.contains('\0') {
        return Err(bad("contains a NUL byte"));
    }
    Ok(Volume {
        host: host.to_owned(),
        container: container.to_owned(),
        readonly,
    })
}

/// `husk image ...`.
fn image_command(command: ImageSubcommand) -> ImageCommand {
    match command {
        ImageSubcommand::Import(args) => ImageCommand::Import {
            path: args.path,
            options: ImportOptions {
                name: args.name,
                arch: args.arch,
                extract: extract::Options {
                    max_bytes: args.max_layer_size,
                    allow_devices: args.allow_devices,
                    allow_setid: args.allow_setid,
                    ..extract::Options::default()
                },
            },
        },
        ImageSubcommand::Ls(args) => ImageCommand::List { json: args.json },
        ImageSubcommand::Rm(args) => ImageCommand::Remove(args.name),
        ImageSubcommand::Prune(ImagePruneArgs {}) => ImageCommand::Prune,
        ImageSubcommand::Df(ImageDfArgs {}) => ImageCommand::Usage,
    }
}

/// `husk <version> (<arch>)`.
pub fn version() -> String {
    format!(
        "husk {} ({})",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    )
}

/// `exec`: a command or `--process`, and the flags checked as `config.json`'s
/// `process` would be.
fn exec_command(args: ExecArgs, data_dir: PathBuf) -> Result<ExecCommand, EarlyExit> {
    if args.command.is_empty() && args.process.is_none() {
        return Err(usage("exec: give a command or --process FILE"));
    }
    let c_string = |what: &str, text: String| {
        CString::new(text).map_err(|_| usage(&format!("exec: {what} contains a NUL byte")))
    };
    let command = args
        .command
        .into_iter()
        .map(|arg| c_string("an argument", arg))
        .collect::<Result<Vec<_>, _>>()?;
    let mut env = Vec::with_capacity(args.env.len());
    for entry in args.env {
        if !matches!(entry.find('='), Some(1..)) {
            return Err(usage(&format!(
                "exec: --env takes NAME=VALUE, not {entry:?}"
            )));
        }
        env.push(c_string("--env", entry)?);
    }
    let cwd = args
        .cwd
        .map(|cwd| {
            ContainerPath::new(cwd).map_err(|reason| usage(&format!("exec: --cwd {reason}")))
        })
        .transpose()?;
    let (uid, gid) = match args.user.as_deref().map(parse_user) {
        None => (None, None),
        Some(Some((uid, gid))) => (Some(uid), gid),
        Some(None) => {
            return Err(usage(&format!(
                "exec: --user takes UID or UID:GID, numbers, not {:?}",
                args.user.unwrap_or_default()
            )))
        }
    };
    Ok(ExecCommand {
        id: args.id,
        process_file: args.process,
        overrides: ProcessOverrides {
            args: command,
            env,
            cwd,
            uid,
            gid,
        },
        detach: args.detach,
        pid_file: args.pid_file,
        console_socket: args.console_socket,
        data_dir,
    })
}

/// `daemon`, or `daemon status`, with the log limits checked.
fn daemon_command(
    args: DaemonArgs,
    data_dir: impl Fn(Option<PathBuf>) -> PathBuf,
) -> Result<Command, EarlyExit> {
    use crate::daemon::logs::{LogLimits, MAX_ROTATED, MIN_MAX_BYTES};
    if let Some(DaemonSubcommand::Status(status)) = args.command {
        return Ok(Command::DaemonStatus {
            data_dir: data_dir(status.data_dir.or(args.data_dir)),
            json: status.json,
        });
    }
    let defaults = LogLimits::default();
    let max_bytes = args.log_max_bytes.unwrap_or(defaults.max_bytes);
    if max_bytes < MIN_MAX_BYTES {
        return Err(usage(&format!(
            "daemon: --log-max-bytes must be at least {MIN_MAX_BYTES}"
        )));
    }
    let rotated = args.log_files.unwrap_or(defaults.rotated);
    if rotated > MAX_ROTATED {
        return Err(usage(&format!(
            "daemon: --log-files must be at most {MAX_ROTATED}"
        )));
    }
    Ok(Command::Daemon(crate::daemon::Options {
        data_dir: data_dir(args.data_dir),
        log_limits: LogLimits { max_bytes, rotated },
        group: args.group,
        read_group: args.read_group,
    }))
}

/// `UID` or `UID:GID`, as `exec --user` takes it (numbers only, as with runc).
fn parse_user(text: &str) -> Option<(u32, Option<u32>)> {
    let number = |n: &str| {
        n.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| n.parse().ok())
            .flatten()
    };
    match text.split_once(':') {
        Some((uid, gid)) => Some((number(uid)?, Some(number(gid)?))),
        None => Some((number(text)?, None)),
    }
}

/// `update`: the limits from `--resources` or from the flags, not both.
fn update_command(args: UpdateArgs, data_dir: PathBuf) -> Result<Command, EarlyExit> {
    if let Some(command) = args.command {
        let command = match command {
            AgentSubcommand::Check(a) => AgentCommand::Check { from: a.from },
            AgentSubcommand::Apply(a) => AgentCommand::Apply {
                from: a.from,
                poll: a.poll,
            },
            AgentSubcommand::Status(a) => AgentCommand::Status { json: a.json },
            AgentSubcommand::History(a) => AgentCommand::History { json: a.json },
            AgentSubcommand::Rollback(AgentRollbackArgs {}) => AgentCommand::Rollback,
        };
        return Ok(Command::Agent { data_dir, command });
    }
    let id = args.id.ok_or_else(|| {
        usage("update: give a container id, or one of check, apply, status, history, rollback")
    })?;
    let mut memory = Vec::new();
    push_member(&mut memory, "limit", args.memory);
    push_member(&mut memory, "swap", args.memory_swap);
    let mut pids = Vec::new();
    push_member(&mut pids, "limit", args.pids_limit);
    let mut cpu = Vec::new();
    push_member(&mut cpu, "quota", args.cpu_quota);
    push_member(&mut cpu, "period", args.cpu_period);
    push_member(&mut cpu, "shares", args.cpu_shares);
    for (name, list) in [("cpus", &args.cpuset_cpus), ("mems", &args.cpuset_mems)] {
        if let Some(list) = list {
            if !list
                .chars()
                .all(|c| c.is_ascii_digit() || c == ',' || c == '-')
            {
                return Err(usage(&format!(
                    "update: --cpuset-{name} takes a list like 0-1,3, not {list:?}"
                )));
            }
            cpu.push(format!("\"{name}\": \"{list}\""));
        }
    }
    let mut members = Vec::new();
    for (name, object) in [("memory", memory), ("pids", pids), ("cpu", cpu)] {
        if !object.is_empty() {
            members.push(format!("\"{name}\": {{{}}}", object.join(", ")));
        }
    }
    let resources = match (args.resources, members.is_empty()) {
        (Some(_), false) => return Err(usage("update: give --resources or limit flags, not both")),
        (Some(path), true) => ResourcesSource::File(path),
        (None, false) => ResourcesSource::Flags(format!("{{{}}}", members.join(", "))),
        (None, true) => return Err(usage("update: no limits given")),
    };
    Ok(Command::Update { id, resources })
}

fn push_member(object: &mut Vec<String>, name: &str, value: Option<impl std::fmt::Display>) {
    if let Some(value) = value {
        object.push(format!("\"{name}\": {value}"));
    }
}

/// Whether `--format` asks for JSON rather than a table.
fn json_format(command: &str, format: &str) -> Result<bool, EarlyExit> {
    match format {
        "table" => Ok(false),
        "json" => Ok(true),
        other => Err(usage(&format!(
            "{command}: --format must be table or json, not {other:?}"
        ))),
    }
}

/// Wraps argh's one-line "Usage:" synopsis at 80 columns.
fn wrap_usage(help: &str) -> String {
    const WIDTH: usize = 80;
    let mut out = String::with_capacity(help.len());
    for line in help.lines() {
        if !line.starts_with("Usage: ") || line.len() <= WIDTH {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let mut current = String::new();
        for word in line.split(' ') {
            if !current.is_empty() && current.len() + 1 + word.len() > WIDTH {
                out.push_str(&current);
                out.push('\n');
                current = " ".repeat(7);
            } else if !current.is_empty() && !current.ends_with(' ') {
                current.push(' ');
            }
            current.push_str(word);
        }
        out.push_str(&current);
        out.push('\n');
    }
    out
}

/// argh's messages can span lines; husk reports every error on one.
fn usage(message: &str) -> EarlyExit {
    let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
    EarlyExit::Usage(format!("{message} (see 'husk --help')"))
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use super::*;

    fn parse_args(args: &[&str]) -> Result<Invocation, EarlyExit> {
        parse(["husk"].iter().chain(args).map(OsString::from))
    }

    fn command(args: &[&str]) -> Command {
        parse_args(args).expect("should parse").command
    }

    fn usage_message(args: &[&str]) -> String {
        match parse_args(args) {
            Err(EarlyExit::Usage(message)) => message,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    fn id(text: &str) -> ContainerId {
        text.parse().unwrap()
    }

    #[test]
    fn version() {
        assert_eq!(command(&["--version"]), Command::Version);
        let expected = format!(
            "husk {} ({})",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::ARCH
        );
        assert_eq!(super::version(), expected);
    }

    #[test]
    fn global_options_come_before_the_command() {
        let inv = parse_args(&[
            "--root",
            "/tmp/r",
            "--log",
            "/l",
            "--log-format",
            "json",
            "list",
        ])
        .unwrap();
        assert_eq!(inv.root, Some(PathBuf::from("/tmp/r")));
        assert_eq!(inv.log, Some((PathBuf::from("/l"), LogFormat::Json)));
        let inv = parse_args(&["state", "a"]).unwrap();
        assert_eq!(inv.root, None);
        assert_eq!(inv.log, None);
    }

    #[test]
    fn lifecycle_commands() {
        let Command::Create(create) = command(&["create", "-b", "/b", "--pid-file", "/p", "c1"])
        else {
            panic!("create should parse");
        };
        assert_eq!(create.bundle, PathBuf::from("/b"));
        assert_eq!(create.pid_file, Some(PathBuf::from("/p")));
        assert_eq!(create.console_socket, None);
        assert_eq!(command(&["start", "c1"]), Command::Start(id("c1")));
        assert_eq!(command(&["state", "c1"]), Command::State(id("c1")));
        assert_eq!(
            command(&["kill", "c1"]),
            Command::Kill {
                id: id("c1"),
                signal: Signal::SIGTERM,
                all: false
            }
        );
        assert_eq!(
            command(&["kill", "--all", "c1", "KILL"]),
            Command::Kill {
                id: id("c1"),
                signal: Signal::SIGKILL,
                all: true
            }
        );
        assert_eq!(command(&["pause", "c1"]), Command::Pause(id("c1")));
        assert_eq!(command(&["features"]), Command::Features);
        assert_eq!(
            command(&["update", "--memory", "1048576", "--pids-limit", "9", "c1"]),
            Command::Update {
                id: id("c1"),
                resources: ResourcesSource::Flags(
                    r#"{"memory": {"limit": 1048576}, "pids": {"limit": 9}}"#.into()
                )
            }
        );
        assert_eq!(
            command(&[
                "update",
                "--cpu-quota",
                "5000",
                "--cpuset-cpus",
                "0-1",
                "c1"
            ]),
            Command::Update {
                id: id("c1"),
                resources: ResourcesSource::Flags(
                    r#"{"cpu": {"quota": 5000, "cpus": "0-1"}}"#.into()
                )
            }
        );
        assert_eq!(
            command(&["update", "-r", "-", "c1"]),
            Command::Update {
                id: id("c1"),
                resources: ResourcesSource::File("-".into())
            }
        );
        assert_eq!(
            command(&["spec", "-b", "/b"]),
            Command::Spec {
                bundle: PathBuf::from("/b"),
                rootless: false,
            }
        );
        assert_eq!(
            command(&["spec", "--rootless"]),
            Command::Spec {
                bundle: PathBuf::from("."),
                rootless: true,
            }
        );
        assert_eq!(command(&["resume", "c1"]), Command::Resume(id("c1")));
        assert_eq!(
            command(&["ps", "-f", "json", "c1"]),
            Command::Ps {
                id: id("c1"),
                json: true
            }
        );
        assert_eq!(
            command(&["delete", "--force", "c1"]),
            Command::Delete {
                id: id("c1"),
                force: true
            }
        );
        assert_eq!(
            command(&["list", "-f", "json"]),
            Command::List {
                json: true,
                quiet: false
            }
        );
    }

    #[test]
    fn run() {
        let Command::Run(run) = command(&["run", "web-1"]) else {
            panic!("run should parse");
        };
        assert_eq!(run.bundle, PathBuf::from("."));
        assert_eq!(run.id, id("web-1"));
        assert!(!run.detach);
        let Command::Run(run) = command(&["run", "--bundle", "/b", "-d", "x"]) else {
            panic!("run --bundle should parse");
        };
        assert_eq!(run.bundle, PathBuf::from("/b"));
        assert!(run.detach);
        let Command::Run(run) = command(&["run", "--init", "x"]) else {
            panic!("run --init should parse");
        };
        assert!(run.init);
        assert!(!run.rm);
        let Command::Run(run) = command(&["run", "--image", "web", "-d", "--rm", "x", "ls"]) else {
            panic!("run --image -d --rm should parse");
        };
        assert!(run.detach && run.rm);
        assert_eq!(run.command, ["ls"]);
    }

    #[test]
    fn run_with_a_name_takes_the_image_first() {
        let Command::Run(run) = command(&["run", "--name", "web", "busybox:1", "httpd", "-f"])
        else {
            panic!("run --name should parse");
        };
        assert_eq!(run.image, Some(ImageName::parse("busybox:1").unwrap()));
        assert_eq!(run.id, id("web"));
        assert_eq!(run.command, ["httpd", "-f"]);
        let Command::Run(run) = command(&[
            "--root", "/r", "run", "-d", "--name", "w", "--memory", "64m", "-e", "A=1", "img",
        ]) else {
            panic!("run -d --name should parse");
        };
        assert!(run.detach);
        assert_eq!(run.memory.as_deref(), Some("64m"));
        assert_eq!(run.env, ["A=1"]);
        assert_eq!((run.id, run.command.len()), (id("w"), 0));
        let Command::Run(run) = command(&["run", "--image", "img", "--name", "w", "ls", "-l"])
        else {
            panic!("run --image --name should parse");
        };
        assert_eq!(run.image, Some(ImageName::parse("img").unwrap()));
        assert_eq!(
            (run.id, run.command),
            (id("w"), vec!["ls".to_owned(), "-l".to_owned()])
        );
        // Without --name, run ID is runc's.
        let Command::Run(run) = command(&["run", "img"]) else {
            panic!("run ID should parse");
        };
        assert_eq!((run.id, run.image), (id("img"), None));
        assert!(usage_message(&["run", "--name"]).contains("--name needs a value"));
        assert!(usage_message(&["run", "--name", "w"]).contains("needs an IMAGE"));
        assert!(usage_message(&["run", "--name", "bad/name", "img"]).contains("bad/name"));
    }

    #[test]
    fn run_image() {
        let Command::Run(run) = command(&[
            "run", "--image", "web:1", "-e", "A=B", "c1", "sh", "-c", "echo -e",
        ]) else {
            panic!("run --image should parse");
        };
        assert_eq!(run.image, Some(ImageName::parse("web:1").unwrap()));
        assert_eq!(run.env, ["A=B"]);
        assert_eq!(run.id, id("c1"));
        assert_eq!(run.command, ["sh", "-c", "echo -e"]);
        assert_eq!(run.image_options(), Ok(RunOptions::default()));
        let Command::Run(run) = command(&[
            "run",
            "--image",
            "web:1",
            "--memory",
            "64M",
            "--cpus",
            "1.5",
            "--pids-limit",
            "20",
            "-v",
            "/srv/data:/data",
            "-v",
            "/etc/conf:/conf:ro",
            "--net",
            "host",
            "c1",
        ]) else {
            panic!("run --image with limits should parse");
        };
        assert_eq!(
            run.image_options(),
            Ok(RunOptions {
                memory: Some(64 << 20),
                cpu_quota: Some(150_000),
                pids: Some(20),
                volumes: vec![
                    Volume {
                        host: "/srv/data".into(),
                        container: "/data".into(),
                        readonly: false
                    },
                    Volume {
                        host: "/etc/conf".into(),
                        container: "/conf".into(),
                        readonly: true
                    },
                ],
                host_network: true,
            })
        );
        for (cpus, quota) in [
            ("0.01", 1000),
            ("2", 200_000),
            (".5", 50_000),
            ("1024", 102_400_000),
        ] {
            assert_eq!(parse_cpus(cpus), Ok(quota), "{cpus}");
        }
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert!(parse_size("99999999999g").is_err());
        for (args, expected) in [
            (
                &["run", "c1", "sh"][..],
                "run: a COMMAND, --env, -v, --memory, --cpus, --pids-limit and --net need --image",
            ),
            (
                &["run", "-e", "A=B", "c1"],
                "run: a COMMAND, --env, -v, --memory, --cpus, --pids-limit and --net need --image",
            ),
            (
                &["run", "--memory", "1m", "c1"],
                "run: a COMMAND, --env, -v, --memory, --cpus, --pids-limit and --net need --image",
            ),
            (
                &["run", "--image", "x", "--memory", "1q", "c1"],
                "run: --memory takes bytes or a number with k, m or g, not \"1q\"",
            ),
            (
                &["run", "--image", "x", "--memory", "0", "c1"],
                "run: --memory must be above 0",
            ),
            (
                &["run", "--image", "x", "--cpus", "0.001", "c1"],
                "run: --cpus takes 0.01 to 1024 (at most two decimals), not \"0.001\"",
            ),
            (
                &["run", "--image", "x", "--cpus", "2000", "c1"],
                "run: --cpus takes 0.01 to 1024 (at most two decimals), not \"2000\"",
            ),
            (
                &["run", "--image", "x", "--pids-limit", "0", "c1"],
                "run: --pids-limit must be above 0",
            ),
            (
                &["run", "--image", "x", "--net", "bridge", "c1"],
                "run: --net is none or host, not \"bridge\"",
            ),
            (
                &["run", "--image", "x", "-v", "data:/data", "c1"],
                "run: -v \"data:/data\": both paths must be absolute",
            ),
            (
                &["run", "--image", "x", "-v", "/d:/d:rx", "c1"],
                "run: -v \"/d:/d:rx\": the only options are ro and rw",
            ),
            (
                &["run", "--image", "x", "-v", "/d", "c1"],
                "run: -v \"/d\": give HOST:CONTAINER[:ro]",
            ),
            (
                &["run", "--image", "x", "-b", "/b", "c1"],
                "run: give --image or --bundle, not both",
            ),
            (
                &["run", "--image", "x", "-e", "=1", "c1"],
                "run: --env takes NAME=VALUE, not \"=1\"",
            ),
        ] {
            let message = usage_message(args);
            assert!(message.starts_with(expected), "{args:?}: {message}");
        }
    }

    #[test]
    fn console_socket() {
        let Command::Create(create) = command(&["create", "--console-socket", "/s.sock", "c1"])
        else {
            panic!("create --console-socket should parse");
        };
        assert_eq!(create.console_socket, Some(PathBuf::from("/s.sock")));
        let Command::Run(run) = command(&["run", "--console-socket", "/s.sock", "c1"]) else {
            panic!("run --console-socket should parse");
        };
        assert_eq!(run.console_socket, Some(PathBuf::from("/s.sock")));
        let Command::Exec(exec) = command(&["exec", "--console-socket", "/s.sock", "c1", "sh"])
        else {
            panic!("exec --console-socket should parse");
        };
        assert_eq!(exec.console_socket, Some(PathBuf::from("/s.sock")));
    }

    #[test]
    fn exec() {
        let args = |args: &[&CStr]| args.iter().map(|&a| a.to_owned()).collect::<Vec<_>>();
        assert_eq!(
            command(&["exec", "c1", "sh", "-c", "echo $$"]),
            Command::Exec(ExecCommand {
                id: id("c1"),
                process_file: None,
                overrides: ProcessOverrides {
                    args: args(&[c"sh", c"-c", c"echo $$"]),
                    ..ProcessOverrides::default()
                },
                detach: false,
                pid_file: None,
                console_socket: None,
                data_dir: PathBuf::from("/var/lib/husk"),
            })
        );
        // Flags come before the id; after the command, they are the command's.
        assert_eq!(
            command(&[
                "exec",
                "-d",
                "--pid-file",
                "/p",
                "--env",
                "A=B",
                "-e",
                "C=",
                "--cwd",
                "/tmp/",
                "-u",
                "1000:5",
                "c1",
                "ls",
                "--env",
                "-l"
            ]),
            Command::Exec(ExecCommand {
                id: id("c1"),
                process_file: None,
                overrides: ProcessOverrides {
                    args: args(&[c"ls", c"--env", c"-l"]),
                    env: args(&[c"A=B", c"C="]),
                    cwd: Some(ContainerPath::new("/tmp").unwrap()),
                    uid: Some(1000),
                    gid: Some(5),
                },
                detach: true,
                pid_file: Some(PathBuf::from("/p")),
                console_socket: None,
                data_dir: PathBuf::from("/var/lib/husk"),
            })
        );
        let Command::Exec(exec) = command(&["exec", "--data-dir", "/d", "web", "sh"]) else {
            panic!("exec --data-dir should parse");
        };
        assert_eq!(exec.data_dir, PathBuf::from("/d"));
        let Command::Exec(exec) = command(&["--data-dir", "/g", "exec", "web", "sh"]) else {
            panic!("exec with a global --data-dir should parse");
        };
        assert_eq!(exec.data_dir, PathBuf::from("/g"));
        let Command::Exec(exec) = command(&["exec", "--process", "/p.json", "--user", "7", "c1"])
        else {
            panic!("exec --process should parse");
        };
        assert_eq!(exec.process_file, Some(PathBuf::from("/p.json")));
        assert!(exec.overrides.args.is_empty());
        assert_eq!((exec.overrides.uid, exec.overrides.gid), (Some(7), None));
        let Command::Exec(exec) = command(&["exec", "c1", "--", "-x"]) else {
            panic!("exec -- should parse");
        };
        assert_eq!(exec.overrides.args, args(&[c"-x"]));
    }

    #[test]
    fn exec_usage_errors() {
        for (args, expected) in [
            (
                &["exec", "c1"][..],
                "exec: give a command or --process FILE",
            ),
            (
                &["exec", "--env", "A", "c1", "sh"],
                "exec: --env takes NAME=VALUE, not \"A\"",
            ),
            (
                &["exec", "--env", "=x", "c1", "sh"],
                "exec: --env takes NAME=VALUE, not \"=x\"",
            ),
            (
                &["exec", "--cwd", "tmp", "c1", "sh"],
                "exec: --cwd must be an absolute path",
            ),
            (
                &["exec", "--cwd", "/a/../b", "c1", "sh"],
                "exec: --cwd must not contain '..'",
            ),
        ] {
            assert_eq!(
                usage_message(args),
                format!("{expected} (see 'husk --help')"),
                "{args:?}"
            );
        }
        for user in ["x", "1:", ":1", "-1", "+1", "1:2:3", "4294967296", ""] {
            assert_eq!(
                usage_message(&["exec", "--user", user, "c1", "sh"]),
                format!(
                    "exec: --user takes UID or UID:GID, numbers, not {user:?} (see 'husk --help')"
                )
            );
        }
    }

    #[test]
    fn usage_errors_are_one_line() {
        for args in [
            &[][..],
            &["run"],
            &["run", ".x"],
            &["run", "a/b"],
            &["run", "a", "b"],
            &["kill", "a", "NOPE"],
            &["list", "-f", "yaml"],
            &["--log-format", "xml", "list"],
            &["create", "--console-socket", "a"],
            &["update", "c1"],
            &["update", "-r", "f", "--memory", "1", "c1"],
            &["update", "--cpuset-cpus", "0\"x", "c1"],
            &["frob"],
            &["--frob"],
        ] {
            let message = usage_message(args);
            assert!(!message.contains('\n'), "{args:?}: {message:?}");
            assert!(
                message.ends_with("(see 'husk --help')"),
                "{args:?}: {message:?}"
            );
        }
        assert!(usage_message(&["run", ".x"]).contains("a container id is 1 to 64"));
        assert!(usage_message(&["kill", "a", "NOPE"]).contains("unknown signal \"NOPE\""));
    }

    #[test]
    fn image_commands() {
        let inv = parse_args(&["--data-dir", "/d", "image", "ls", "--json"]).unwrap();
        assert_eq!(inv.data_dir, PathBuf::from("/d"));
        assert_eq!(
            inv.command,
            Command::Image(ImageCommand::List { json: true })
        );
        assert_eq!(
            parse_args(&["image", "prune"]).unwrap().data_dir,
            PathBuf::from(DEFAULT_DATA_DIR)
        );
        let Command::Image(ImageCommand::Import { path, options }) = command(&[
            "image",
            "import",
            "--name",
            "web",
            "--arch",
            "arm64",
            "--allow-setid",
            "--max-layer-size",
            "1000",
            "/tmp/x.tar",
        ]) else {
            panic!("image import should parse");
        };
        assert_eq!(path, PathBuf::from("/tmp/x.tar"));
        assert_eq!(options.name, Some(ImageName::parse("web:latest").unwrap()));
        assert_eq!(options.arch.as_deref(), Some("arm64"));
        assert!(options.extract.allow_setid && !options.extract.allow_devices);
        assert!(options.extract.chown);
        assert_eq!(options.extract.max_bytes, 1000);
        let Command::Image(ImageCommand::Import { options, .. }) =
            command(&["image", "import", "--allow-devices", "x"])
        else {
            panic!("image import should parse");
        };
        assert_eq!(options.extract.max_bytes, MAX_LAYER_BYTES);
        assert!(options.extract.allow_devices && !options.extract.allow_setid);
        assert_eq!(
            command(&["image", "rm", "web:1"]),
            Command::Image(ImageCommand::Remove(ImageName::parse("web:1").unwrap()))
        );
        assert_eq!(
            command(&["image", "df"]),
            Command::Image(ImageCommand::Usage)
        );
        let message = usage_message(&["image", "rm", "a b"]);
        assert!(message.contains("an image name is 1 to 255"), "{message}");
        assert!(!message.contains('\n'));
    }

    #[test]
    fn help_fits_80_columns() {
        for args in [
            &["--help"][..],
            &["help"],
            &["run", "--help"],
            &["create", "--help"],
            &["state", "--help"],
            &["kill", "--help"],
            &["exec", "--help"],
            &["image", "--help"],
            &["image", "import", "--help"],
            &["image", "ls", "--help"],
            &["daemon", "--help"],
            &["daemon", "status", "--help"],
            &["logs", "--help"],
            &["check", "--help"],
            &["status", "--help"],
            &["ps", "--help"],
            &["inspect", "--help"],
            &["stats", "--help"],
            &["stop", "--help"],
            &["restart", "--help"],
            &["start", "--help"],
        ] {
            let Err(EarlyExit::Help(text)) = parse_args(args) else {
                panic!("{args:?} should print help");
            };
            for line in text.lines() {
                assert!(line.chars().count() <= 80, "too wide: {line:?}");
            }
        }
        let Err(EarlyExit::Help(text)) = parse_args(&["--help"]) else {
            panic!("--help should print help");
        };
        for name in [
            "create", "start", "state", "kill", "delete", "run", "list", "pause", "resume", "ps",
            "spec", "update", "features", "exec", "daemon", "logs", "check", "status", "inspect",
            "stats", "stop", "restart",
        ] {
            assert!(text.contains(name), "{name} missing from {text}");
        }
    }

    #[test]
    fn daemon_status_and_logs() {
        use crate::daemon::logs::LogLimits;
        use crate::daemon::Options;
        assert_eq!(
            command(&["daemon"]),
            Command::Daemon(Options {
                data_dir: PathBuf::from("/var/lib/husk"),
                log_limits: LogLimits::default(),
                group: None,
                read_group: None,
            })
        );
        assert_eq!(
            command(&[
                "daemon",
                "--data-dir",
                "/d",
                "--log-max-bytes",
                "4096",
                "--log-files",
                "0"
            ]),
            Command::Daemon(Options {
                data_dir: PathBuf::from("/d"),
                log_limits: LogLimits {
                    max_bytes: 4096,
                    rotated: 0
                },
                group: None,
                read_group: None,
            })
        );
        assert_eq!(
            usage_message(&["daemon", "--log-max-bytes", "10"]),
            "daemon: --log-max-bytes must be at least 1024 (see 'husk --help')"
        );
        assert_eq!(
            usage_message(&["daemon", "--log-files", "100"]),
            "daemon: --log-files must be at most 99 (see 'husk --help')"
        );
        assert_eq!(
            command(&["daemon", "status", "--json"]),
            Command::DaemonStatus {
                data_dir: PathBuf::from("/var/lib/husk"),
                json: true
            }
        );
        assert_eq!(
            command(&["daemon", "--data-dir", "/d", "status"]),
            Command::DaemonStatus {
                data_dir: PathBuf::from("/d"),
                json: false
            }
        );
        assert_eq!(
            command(&["logs", "-f", "--tail", "5", "web"]),
            Command::Logs {
                data_dir: PathBuf::from("/var/lib/husk"),
                name: id("web"),
                options: crate::daemon::LogsOptions {
                    tail: Some(5),
                    follow: true,
                    ..Default::default()
                }
            }
        );
        use crate::daemon::logs::Since;
        assert_eq!(
            command(&["logs", "--since", "10m", "-t", "-f", "web"]),
            Command::Logs {
                data_dir: PathBuf::from("/var/lib/husk"),
                name: id("web"),
                options: crate::daemon::LogsOptions {
                    tail: None,
                    since: Some(Since::Ago(600)),
                    follow: true,
                    timestamps: true,
                }
            }
        );
        let Command::Logs { options, .. } = command(&[
            "logs",
            "--since",
            "2026-11-28T03:00:00Z",
            "--tail",
            "3",
            "web",
        ]) else {
            panic!("logs should parse");
        };
        assert_eq!(options.since, Some(Since::At(1_795_834_800)));
        assert_eq!(options.tail, Some(3));
        for bad in ["10", "yesterday", "2026-11-28T03:00:00+01:00"] {
            let message = usage_message(&["logs", "--since", bad, "web"]);
            assert!(
                message.starts_with("logs: --since takes a duration") && !message.contains('\n'),
                "{message}"
            );
        }
        assert!(usage_message(&["logs", "../x"]).contains("container id"));
        assert_eq!(
            command(&["config", "show", "--json"]),
            Command::Config {
                data_dir: PathBuf::from("/var/lib/husk"),
                command: ConfigCommand::Show { json: true }
            }
        );
        assert_eq!(
            command(&["--data-dir", "/g", "config", "check"]),
            Command::Config {
                data_dir: PathBuf::from("/g"),
                command: ConfigCommand::Check
            }
        );
        assert_eq!(
            command(&["config", "check", "--data-dir", "/d"]),
            Command::Config {
                data_dir: PathBuf::from("/d"),
                command: ConfigCommand::Check
            }
        );
        assert!(usage_message(&["config"]).contains("show check"));
        assert!(usage_message(&["config", "edit"]).contains("edit"));
    }

    #[test]
    fn field_commands() {
        let field = |command| Command::Field {
            data_dir: PathBuf::from("/var/lib/husk"),
            command,
        };
        assert_eq!(
            command(&["status"]),
            field(FieldCommand::Status { json: false })
        );
        assert_eq!(
            command(&["--data-dir", "/d", "status", "--json"]),
            Command::Field {
                data_dir: PathBuf::from("/d"),
                command: FieldCommand::Status { json: true }
            }
        );
        assert_eq!(command(&["ps"]), field(FieldCommand::Ps { json: false }));
        assert_eq!(
            command(&["ps", "--json"]),
            field(FieldCommand::Ps { json: true })
        );
        // With an id, runc's ps stays.
        assert_eq!(
            command(&["ps", "--format", "json", "web"]),
            Command::Ps {
                id: id("web"),
                json: true
            }
        );
        assert_eq!(
            command(&["ps", "--json", "web"]),
            Command::Ps {
                id: id("web"),
                json: true
            }
        );
        assert_eq!(
            command(&["inspect", "--json", "web"]),
            field(FieldCommand::Inspect {
                name: id("web"),
                json: true
            })
        );
        assert_eq!(
            command(&["stats", "-w"]),
            field(FieldCommand::Stats {
                watch: true,
                json: false
            })
        );
        assert!(usage_message(&["inspect"]).contains("name"));
        use crate::daemon::control::Request;
        assert_eq!(
            command(&["stop", "web"]),
            Command::Control(Request::Stop(id("web")))
        );
        assert_eq!(
            command(&["restart", "web"]),
            Command::Control(Request::Restart(id("web")))
        );
        assert_eq!(command(&["start", "web"]), Command::Start(id("web")));
        let Command::Daemon(options) = command(&["daemon", "--group", "husk"]) else {
            panic!("daemon");
        };
        assert_eq!(options.group.as_deref(), Some("husk"));
        let Err(EarlyExit::Help(text)) = parse_args(&["--help"]) else {
            panic!("--help should print help");
        };
        for code in 0..=7 {
            assert!(
                text.contains(&format!("  {code}")),
                "exit {code} undocumented: {text}"
            );
        }
    }
}
