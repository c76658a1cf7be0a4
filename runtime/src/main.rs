//! The `husk` binary: parses arguments, calls the library, and reports the
//! outcome as an exit status (1 for husk's own errors, printed once on stderr
//! and, with `--log`, appended to the log file).

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

use husk::cli::{self, Command, EarlyExit, ImageCommand, Invocation, LogFormat, ResourcesSource};
use husk::image::{self, store::Store};
use husk::lifecycle::{self, Host};
use husk::state;

fn main() -> ExitCode {
    let invocation = match cli::parse(std::env::args_os()) {
        Ok(invocation) => invocation,
        Err(EarlyExit::Help(text)) => {
            println!("{}", text.trim_end());
            return ExitCode::SUCCESS;
        }
        Err(EarlyExit::Usage(message)) => return fail(&message, None),
    };
    match execute(&invocation) {
        Ok(status) => ExitCode::from(status),
        Err(error) => fail(&husk::error_chain(&error), invocation.log.as_ref()),
    }
}

fn execute(invocation: &Invocation) -> Result<u8, husk::Error> {
    // The commands that need no state directory.
    match &invocation.command {
        Command::Version => {
            println!("{}", cli::version());
            return Ok(0);
        }
        Command::Spec { bundle, rootless } => {
            let rootless = rootless.then(|| husk::template::Rootless {
                uid: husk::sys::effective_uid(),
                gid: husk::sys::effective_gid(),
            });
            lifecycle::write_default_config(bundle, rootless)?;
            return Ok(0);
        }
        Command::Features => {
            println!("{}", husk::template::features());
            return Ok(0);
        }
        Command::Agent { data_dir, command } => return husk::update::run(data_dir, command),
        Command::DaemonStatus { data_dir, json } => {
            husk::daemon::print_status(data_dir, *json)?;
            return Ok(0);
        }
        Command::Logs {
            data_dir,
            name,
            options,
        } => {
            husk::daemon::print_logs(data_dir, name, *options)?;
            return Ok(0);
        }
        Command::Check { board, json } => {
            let report = husk::check::run(&husk::check::Roots::host(), board.as_deref())?;
            if *json {
                println!("{}", report.json());
            } else {
                print!("{}", report.text(colour()));
            }
            return Ok(report.exit_code());
        }
        _ => {}
    }
    let root = match &invocation.root {
        Some(root) => root.clone(),
        None => match &invocation.command {
            // The read-only views look at the daemon of the data directory,
            // whoever asks (root, or its --read-group): the state directory
            // its status names, else the system's.
            Command::Field { data_dir, .. } | Command::Config { data_dir, .. } => {
                use husk::daemon::status::{DaemonStatus, STATUS_FILE};
                DaemonStatus::read(&data_dir.join(STATUS_FILE))
                    .ok()
                    .and_then(|status| status.root)
                    .unwrap_or_else(|| state::DEFAULT_ROOT.into())
            }
            _ => state::default_root(
                husk::sys::effective_uid(),
                std::env::var_os("XDG_RUNTIME_DIR").as_deref(),
            )?,
        },
    };
    let host = Host::new(&root);
    match &invocation.command {
        // Answered above, before the state directory is looked for.
        Command::Version
        | Command::Spec { .. }
        | Command::Features
        | Command::Check { .. }
        | Command::DaemonStatus { .. }
        | Command::Agent { .. }
        | Command::Logs { .. } => {}
        Command::Field { data_dir, command } => return field_command(&host, data_dir, command),
        Command::Config { data_dir, command } => {
            use husk::field::config;
            let etc = Path::new(husk::update::ETC_DIR);
            let settings = config::gather(data_dir, &root, etc, husk::update::wall_now());
            match command {
                cli::ConfigCommand::Show { json: true } => println!("{}", settings.json()),
                cli::ConfigCommand::Show { json: false } => print!("{}", settings.text()),
                cli::ConfigCommand::Check => {
                    let (text, ok) = settings.check();
                    print!("{text}");
                    return Ok(if ok { 0 } else { config::EXIT_BAD });
                }
            }
        }
        Command::Daemon(options) => return husk::daemon::run(&host, options),
        Command::Create(args) => lifecycle::create(
            &host,
            &args.id,
            &args.bundle,
            args.pid_file.as_deref(),
            args.console_socket.as_deref(),
            args.init,
        )?,
        // runc's start of a container of --root; one that is not there may
        // be the daemon's, held stopped (without a daemon, runc's error).
        Command::Start(id) => match host.state.load(id) {
            Err(state::StateError::NotFound(_)) => {
                use husk::daemon::control::{self, ControlError, Request};
                match control::send(host.state.root(), &Request::Start(id.clone())) {
                    Err(ControlError::NoDaemon { .. }) => lifecycle::start(&host, id)?,
                    Ok(message) => println!("{message}"),
                    Err(e) => return Err(husk::daemon::DaemonError::Control(e).into()),
                }
            }
            _ => lifecycle::start(&host, id)?,
        },
        Command::Control(request) => return control_command(&host, request),
        Command::State(id) => println!("{}", lifecycle::state(&host, id)?),
        Command::Kill {
            id,
            signal,
            all: false,
        } => lifecycle::kill(&host, id, *signal)?,
        Command::Kill {
            id,
            signal,
            all: true,
        } => lifecycle::kill_all(&host, id, *signal)?,
        Command::Pause(id) => lifecycle::pause(&host, id)?,
        Command::Resume(id) => lifecycle::resume(&host, id)?,
        Command::Ps { id, json } => {
            let pids = lifecycle::ps(&host, id)?;
            if *json {
                let list: Vec<String> = pids.iter().map(i32::to_string).collect();
                println!("[{}]", list.join(","));
            } else {
                println!("PID");
                pids.iter().for_each(|pid| println!("{pid}"));
            }
        }
        Command::Delete { id, force } => {
            image::run::delete(&host, &Store::new(&invocation.data_dir), id, *force)?
        }
        Command::Run(args) if args.image.is_some() => return run_image(invocation, &host, args),
        Command::Run(args) => return run(&host, args, &args.bundle, None),
        Command::Exec(exec) => {
            // A container of --root first, as runc; else the daemon's.
            let root = match host.state.load(&exec.id) {
                Err(state::StateError::NotFound(_)) => {
                    husk::daemon::supervised_root(&exec.data_dir, host.state.root(), &exec.id)?
                }
                _ => None,
            };
            let supervised;
            let host = match root {
                Some(root) => {
                    supervised = Host::new(&root);
                    &supervised
                }
                None => &host,
            };
            return lifecycle::exec(
                host,
                &exec.id,
                exec.process_file.as_deref(),
                &exec.overrides,
                exec.pid_file.as_deref(),
                exec.detach,
                exec.console_socket.as_deref(),
            );
        }
        Command::Update { id, resources } => {
            let json = match resources {
                ResourcesSource::Flags(json) => json.clone().into_bytes(),
                ResourcesSource::File(path) => read_resources(path)?,
            };
            lifecycle::update(&host, id, &json)?
        }
        Command::List { json, quiet } => {
            let rows = lifecycle::list(&host)?;
            if *quiet {
                rows.iter()
                    .for_each(|r| println!("{}", r.record.id.as_str()));
            } else if *json {
                println!("{}", lifecycle::list_json(&rows));
            } else {
                print!("{}", lifecycle::list_table(&rows));
            }
        }
        Command::Image(command) => image_command(&Store::new(&invocation.data_dir), command)?,
    }
    Ok(0)
}

/// `husk stop|start|restart NAME` through the daemon's control socket.
fn control_command(
    host: &Host,
    request: &husk::daemon::control::Request,
) -> Result<u8, husk::Error> {
    let message = husk::daemon::control::send(host.state.root(), request)
        .map_err(husk::daemon::DaemonError::Control)?;
    println!("{message}");
    Ok(0)
}

/// `husk status`, `ps` (no id), `inspect`, `stats`.
fn field_command(
    host: &Host,
    data_dir: &Path,
    command: &cli::FieldCommand,
) -> Result<u8, husk::Error> {
    use husk::field;
    let sources = field::Sources { data_dir, host };
    let now = husk::update::wall_now();
    match command {
        cli::FieldCommand::Status { json } => {
            let report = field::gather(&sources, now);
            match json {
                true => println!("{}", report.json()),
                false => print!("{}", report.text()),
            }
            return Ok(report.exit_code());
        }
        cli::FieldCommand::Ps { json } => {
            let (status, images) = field::ps(&sources)?;
            match json {
                true => println!("{}", field::ps_json(&status, &images)),
                false => print!("{}", field::ps_table(&status, &images, now)),
            }
        }
        cli::FieldCommand::Inspect { name, json } => {
            let inspection = field::inspect(&sources, name)?;
            match json {
                true => println!("{}", inspection.json()),
                false => print!("{}", inspection.text(now)),
            }
        }
        cli::FieldCommand::Stats { watch, json } => {
            field::stats(&sources, *watch, *json, colour())?
        }
    }
    Ok(0)
}

/// `husk run`: in the foreground, or with -d (and --rm, through a reaper).
fn run(
    host: &Host,
    args: &cli::RunArgs,
    bundle: &Path,
    image_root: Option<&Path>,
) -> Result<u8, husk::Error> {
    let settings = lifecycle::RunSettings {
        pid_file: args.pid_file.as_deref(),
        detach: args.detach,
        console_socket: args.console_socket.as_deref(),
        init: args.init,
        image_root,
    };
    match args.detach && args.rm {
        true => lifecycle::run_reaped(host, &args.id, bundle, &settings),
        false => lifecycle::run(host, &args.id, bundle, &settings),
    }
}

/// `husk run --image`: the image's bundle made and its root mounted, then
/// the container run; its removal (at exit in the foreground, by `husk
/// delete` or the reaper when detached) unmounts and removes the root.
fn run_image(invocation: &Invocation, host: &Host, args: &cli::RunArgs) -> Result<u8, husk::Error> {
    let store = Store::new(&invocation.data_dir);
    let Some(name) = &args.image else {
        return Ok(0);
    };
    // Checked when the command line was parsed.
    let options = args.image_options().unwrap_or_default();
    let bundle = image::run::prepare(&store, name, &args.id, &args.command, &args.env, &options)?;
    let status = run(host, args, &bundle, Some(&bundle));
    if status.is_err() || !args.detach {
        // Gone with the container already, unless the run failed before the
        // container was recorded (its id taken by a bundle's container).
        let finished = image::run::remove_root(&bundle);
        let status = status?;
        finished?;
        return Ok(status);
    }
    status
}

fn image_command(store: &Store, command: &ImageCommand) -> Result<(), husk::Error> {
    match command {
        ImageCommand::Import { path, options } => {
            let mut bar = husk::progress::Progress::stderr();
            let imported = image::import_with(store, path, options, &mut |line| bar.show(line));
            bar.finish();
            println!("{}", imported?);
        }
        ImageCommand::List { json: true } => println!("{}", image::list_json(&image::list(store)?)),
        ImageCommand::List { json: false } => print!("{}", image::list_table(&image::list(store)?)),
        ImageCommand::Remove(name) => {
            let removed = image::remove(store, name)?;
            println!(
                "removed {} ({})",
                removed.name,
                image::short_id(&removed.id)
            );
        }
        ImageCommand::Prune => println!("{}", image::prune(store)?),
        ImageCommand::Usage => println!("{}", image::usage(store)?),
    }
    Ok(())
}

/// Whether to colour output: stdout is a terminal whose `TERM` is set and not
/// `dumb`.
fn colour() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal()
        && std::env::var_os("TERM").is_some_and(|term| !term.is_empty() && term != "dumb")
}

/// The `linux.resources` JSON of `update --resources FILE` (`-`: stdin).
fn read_resources(path: &Path) -> Result<Vec<u8>, husk::Error> {
    let mut json = Vec::new();
    let limit = lifecycle::MAX_RESOURCES_BYTES as u64 + 1;
    let read = if path == Path::new("-") {
        std::io::stdin().take(limit).read_to_end(&mut json)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(limit).read_to_end(&mut json))
    };
    let error = |source| husk::Error::Read {
        path: path.to_owned(),
        source,
    };
    read.map_err(error)?;
    if json.len() > lifecycle::MAX_RESOURCES_BYTES {
        return Err(error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {} bytes", lifecycle::MAX_RESOURCES_BYTES),
        )));
    }
    Ok(json)
}

fn fail(message: &str, log: Option<&(std::path::PathBuf, LogFormat)>) -> ExitCode {
    eprintln!("husk: {message}");
    if let Some((path, format)) = log {
        // The error is on stderr already; a log that cannot be written adds nothing.
        let _ = append_log(path, *format, message);
    }
    ExitCode::FAILURE
}

fn append_log(path: &Path, format: LogFormat, message: &str) -> std::io::Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let time = lifecycle::rfc3339(now);
    let line = match format {
        LogFormat::Text => format!("{time} error: {message}\n"),
        LogFormat::Json => {
            let record = LogRecord {
                level: "error",
                msg: message,
                time: &time,
            };
            // Escaping at most sextuples a character (\u00XX).
            let mut buf = vec![0; 6 * message.len() + 128];
            let len =
                serde_json_core::to_slice(&record, &mut buf).map_err(std::io::Error::other)?;
            buf.truncate(len);
            buf.push(b'\n');
            String::from_utf8_lossy(&buf).into_owned()
        }
    };
    let mut file = std::fs::File::options()
        .append(true)
        .create(true)
        .open(path)?;
    file.write_all(line.as_bytes())
}

/// One `--log-format json` line, as runc writes them.
#[derive(serde::Serialize)]
struct LogRecord<'a> {
    level: &'a str,
    msg: &'a str,
    time: &'a str,
}
