//! The views rendered from known reports (golden text at 80 columns, the
//! JSON schema), the exit status rules, and `gather` over a fixture data
//! directory.

use super::*;
use crate::update::state::LastCheck;

fn container(name: &str, state: &str, health: Option<&str>) -> ContainerStatus {
    ContainerStatus {
        name: name.to_owned(),
        state: state.to_owned(),
        health: health.map(str::to_owned),
        pid: (state == "running").then_some(4242),
        started_at: (state == "running").then_some(1_000_000),
        ..ContainerStatus::default()
    }
}

fn usage(memory: u64, max: Option<u64>, cpu_usec: u64) -> Stats {
    Stats {
        memory_current: Some(memory),
        memory_max: Some(max.map_or(Limit::Max, Limit::Value)),
        oom: Some(0),
        oom_kill: Some(0),
        pids_current: Some(3),
        cpu_usage_usec: Some(cpu_usec),
    }
}

/// A healthy device: 2 h after its containers started.
fn healthy() -> Report {
    Report {
        now: 1_007_200,
        device: Some(("gateway".to_owned(), "rpi4".to_owned())),
        release: Some(Release {
            current: 3,
            probation_since: None,
            installed_at: Some(1_000_000 - 86_400 * 2),
        }),
        last_check: Some(LastCheck {
            at: 1_007_200 - 300,
            ok: true,
            message: "release 3 is the newest".to_owned(),
        }),
        daemon: Daemon::Running(Some(77)),
        desired_error: None,
        containers: vec![
            Row {
                status: container("web", "running", Some("healthy")),
                // 72 s of CPU in 7200 s: 1%.
                usage: Some(usage(
                    12 * 1024 * 1024 + 512 * 1024,
                    Some(64 << 20),
                    72_000_000,
                )),
            },
            Row {
                status: container("a-typical-long-name", "running", None),
                usage: Some(usage(900 * 1024, None, 0)),
            },
            Row {
                status: container("batch", "exited", None),
                usage: None,
            },
        ],
        disk: Some((PathBuf::from("/var/lib/husk"), 3 << 30, 7 << 30)),
        errors: Vec::new(),
    }
}

#[test]
fn a_healthy_device_is_one_screen_at_80_columns() {
    let report = healthy();
    let text = report.text();
    let version = crate::cli::version();
    let expected = format!(
        "{version}, device gateway on rpi4
daemon    running, pid 77
release   3, committed, installed 2d ago
checked   5m ago, ok: release 3 is the newest
disk      /var/lib/husk: 3.0G free of 7.0G (42%)

NAME                 STATE        HEALTH     RST    UP     MEMORY/LIMIT    CPU
web                  running      healthy      0    2h          12M/64M   1.0%
a-typical-long-name  running      -            0    2h        900K/none   0.0%
batch                exited       -            0     -                -      -

health    ok
"
    );
    assert_eq!(text, expected);
    for line in text.lines() {
        assert!(line.len() <= 80, "too wide: {line:?}");
    }
    assert_eq!(report.exit_code(), 0);
}

#[test]
fn problems_set_the_exit_status_most_serious_first() {
    let mut report = healthy();
    report.release.as_mut().unwrap().probation_since = Some(1_007_200 - 40);
    assert_eq!(report.exit_code(), EXIT_PROBATION);
    assert!(report
        .text()
        .contains("release   3, on probation for 40s, installed 2d ago\n"));
    report.containers[0].status.health = Some("unhealthy".to_owned());
    report.containers[2].status.state = "given-up".to_owned();
    assert_eq!(report.exit_code(), EXIT_ATTENTION);
    report.daemon = Daemon::Down;
    assert_eq!(report.exit_code(), EXIT_DAEMON_DOWN);
    let text = report.text();
    assert!(
        text.ends_with(
            "health    4 problem(s)
  - the daemon is not running
  - web is unhealthy
  - batch was given up
  - release 3 is on probation
"
        ),
        "{text}"
    );
    assert!(text.contains("daemon    NOT RUNNING\n"));
}

#[test]
fn a_nearly_full_disk_and_a_refused_desired_state_need_attention() {
    let mut report = healthy();
    report.disk = Some((PathBuf::from("/data"), 1 << 20, 1 << 30));
    assert_eq!(report.exit_code(), EXIT_ATTENTION);
    assert_eq!(report.problems()[0].1, "/data is 100% full");
    let mut report = healthy();
    report.desired_error = Some("desired state: containers[0].name is required".to_owned());
    assert_eq!(report.exit_code(), EXIT_ATTENTION);
}

#[test]
fn long_messages_are_cut_at_80_columns() {
    let mut report = healthy();
    report.last_check.as_mut().unwrap().message = "x".repeat(300);
    report.errors.push((EXIT_ATTENTION, "y".repeat(300)));
    for line in report.text().lines() {
        assert!(line.len() < 80, "too wide: {line:?}");
    }
}

#[test]
fn status_json_has_the_documented_schema() {
    let mut report = healthy();
    report.release.as_mut().unwrap().probation_since = Some(5);
    let json = report.json();
    let value: serde_json::Value = serde_json::from_str(&json).expect(&json);
    assert_eq!(value["schemaVersion"], 1);
    assert_eq!(value["husk"], env!("CARGO_PKG_VERSION"));
    assert_eq!(value["arch"], std::env::consts::ARCH);
    assert_eq!(value["device"]["class"], "gateway");
    assert_eq!(value["device"]["hardware"], "rpi4");
    assert_eq!(value["daemon"]["running"], true);
    assert_eq!(value["daemon"]["pid"], 77);
    assert_eq!(value["release"]["current"], 3);
    assert_eq!(value["release"]["committed"], false);
    assert_eq!(value["release"]["probationSince"], 5);
    assert_eq!(value["lastCheck"]["ok"], true);
    assert_eq!(value["containers"][0]["name"], "web");
    assert_eq!(value["containers"][0]["memoryBytes"], 13_107_200);
    assert_eq!(value["containers"][0]["memoryLimitBytes"], 64 << 20);
    assert_eq!(value["containers"][0]["cpuUsec"], 72_000_000);
    assert_eq!(value["containers"][0]["pids"], 3);
    assert!(value["containers"][1]["memoryLimitBytes"].is_null());
    assert!(value["containers"][2]["pid"].is_null());
    assert_eq!(value["disk"]["freeBytes"], 3u64 << 30);
    assert_eq!(value["problems"][0], "release 3 is on probation");
    assert_eq!(value["exitCode"], 7);
    // A device that never updated, whose daemon is down.
    let bare = Report {
        device: None,
        release: None,
        last_check: None,
        daemon: Daemon::Down,
        containers: Vec::new(),
        disk: None,
        ..healthy()
    };
    let value: serde_json::Value = serde_json::from_str(&bare.json()).unwrap();
    assert!(value["device"].is_null() && value["release"].is_null());
    assert_eq!(value["daemon"]["running"], false);
    assert_eq!(value["exitCode"], 5);
}

#[test]
fn the_largest_report_is_written_whole() {
    let mut report = healthy();
    let row = Row {
        status: ContainerStatus {
            name: "n".repeat(64),
            state: "backing-off".to_owned(),
            health: Some("unhealthy".to_owned()),
            restarts: u32::MAX,
            pid: Some(i32::MIN),
            started_at: Some(u64::MAX),
            ..ContainerStatus::default()
        },
        usage: Some(usage(u64::MAX, Some(u64::MAX), u64::MAX)),
    };
    report.containers = vec![row; desired::MAX_CONTAINERS];
    report.last_check.as_mut().unwrap().message = "\u{1}".repeat(512);
    report.errors = vec![(EXIT_ATTENTION, "\u{1}".repeat(1024)); 3];
    let json = report.json();
    let value: serde_json::Value = serde_json::from_str(&json).expect("whole JSON");
    assert_eq!(
        value["containers"].as_array().unwrap().len(),
        desired::MAX_CONTAINERS
    );
}

#[test]
fn sizes_and_percentages() {
    assert_eq!(size(0), "0B");
    assert_eq!(size(1023), "1023B");
    assert_eq!(size(1024), "1.0K");
    assert_eq!(size(1536), "1.5K");
    assert_eq!(size(10 << 20), "10M");
    assert_eq!(size(u64::MAX), "16777215T");
    assert_eq!(percent(0), "0.0%");
    assert_eq!(percent(1234), "12.3%");
    assert_eq!(percent(25_000), "250%");
    assert_eq!(cpu_hundredths(500_000, 1_000_000), 5_000);
    // No overflow on absurd counters.
    assert_eq!(cpu_hundredths(u64::MAX, u64::MAX), 10_000);
    assert_eq!(cpu_hundredths(1, 0), 0);
}

fn sample_of(name: &str, cpu: u64, memory: u64) -> Sample {
    Sample {
        name: name.to_owned(),
        stats: Some(usage(memory, Some(100 << 20), cpu)),
    }
}

#[test]
fn stats_measure_cpu_between_samples() {
    let before = vec![sample_of("web", 1_000_000, 0), sample_of("db", 0, 0)];
    let now = vec![
        sample_of("web", 1_500_000, 50 << 20),
        sample_of("db", 2_000_000, 1 << 20),
        // New since the last sample, or without a cgroup.
        Sample {
            name: "new".to_owned(),
            stats: None,
        },
    ];
    let table = stats_table(&before, &now, Duration::from_secs(1));
    assert_eq!(
        table,
        "NAME     CPU    MEMORY     LIMIT    MEM   PIDS
web    50.0%       50M      100M  50.0%      3
db      200%      1.0M      100M   1.0%      3
new        -         -         -      -      -
"
    );
    let value: serde_json::Value =
        serde_json::from_str(&stats_json(&before, &now, Duration::from_secs(1))).unwrap();
    assert_eq!(value[0]["name"], "web");
    assert_eq!(value[0]["cpuPercent"], 5_000);
    assert_eq!(value[1]["memoryBytes"], 1 << 20);
    assert_eq!(value[1]["memoryLimitBytes"], 100 << 20);
    assert!(value[2]["cpuPercent"].is_null() && value[2]["pids"].is_null());
}

#[test]
fn ps_lists_the_supervised_containers() {
    let status = DaemonStatus {
        pid: 1,
        root: None,
        desired_error: None,
        containers: vec![
            ContainerStatus {
                restarts: 2,
                ..container("web", "running", Some("healthy"))
            },
            container("batch", "exited", None),
        ],
    };
    let images = vec![
        "registry.example/very/long/image-name:1.2.3".to_owned(),
        "/srv/batch".to_owned(),
    ];
    assert_eq!(
        ps_table(&status, &images, 1_000_090),
        "NAME   IMAGE                     STATE        HEALTH     RST  UP
web    registry.example/very...  running      healthy      2  1m
batch  /srv/batch                exited       -            0  -
"
    );
    let value: serde_json::Value = serde_json::from_str(&ps_json(&status, &images)).unwrap();
    assert_eq!(value[0]["image"], images[0].as_str());
    assert_eq!(value[0]["restarts"], 2);
    assert_eq!(value[0]["pid"], 4242);
    assert!(value[1]["health"].is_null());
}

/// A data directory as a daemon and the update agent leave it.
fn fixture(dir: &Path) {
    let update = dir.join("update");
    std::fs::create_dir_all(&update).unwrap();
    std::fs::write(
        update.join("config.json"),
        r#"{"server": "http://u.example/repo", "deviceClass": "gateway", "hardware": "rpi4"}"#,
    )
    .unwrap();
    let mut state = UpdateState {
        current: 2,
        previous: 1,
        probation_since: Some(990),
        last_check: Some(LastCheck {
            at: 995,
            ok: false,
            message: "server unreachable".to_owned(),
        }),
        ..UpdateState::default()
    };
    state.record(900, 2, "installed", "1000 bytes");
    state.save(&update.join("state.json")).unwrap();
    let status = DaemonStatus {
        pid: 1,
        root: None,
        desired_error: None,
        containers: vec![container("web", "backing-off", None)],
    };
    status.write(&dir.join(STATUS_FILE)).unwrap();
    std::fs::write(
        dir.join(DESIRED_FILE),
        r#"{"containers": [{"name": "web", "bundle": "/srv/web", "restart": "on-failure:3"}]}"#,
    )
    .unwrap();
}

#[test]
fn gather_reads_what_the_daemon_and_the_agent_left() {
    let tmp = crate::testutil::TempDir::new("field-gather");
    fixture(tmp.path());
    let host = Host::new(tmp.path().join("state"));
    let sources = Sources {
        data_dir: tmp.path(),
        host: &host,
    };
    let report = gather(&sources, 1000);
    assert_eq!(
        report.device,
        Some(("gateway".to_owned(), "rpi4".to_owned()))
    );
    assert_eq!(
        report.release,
        Some(Release {
            current: 2,
            probation_since: Some(990),
            installed_at: Some(900),
        })
    );
    assert_eq!(
        report.last_check.as_ref().unwrap().message,
        "server unreachable"
    );
    // Nobody holds the lock: the status is the last one published.
    assert_eq!(report.daemon, Daemon::Down);
    assert_eq!(report.containers[0].status.name, "web");
    assert!(report.disk.is_some());
    let mut problems: Vec<String> = report.problems().into_iter().map(|p| p.1).collect();
    // The disk is this machine's own: how full it is is not the fixture's.
    problems.retain(|p| !p.ends_with("% full"));
    assert_eq!(
        problems,
        [
            "the daemon is not running",
            "web keeps failing (backing off)",
            "release 2 is on probation"
        ]
    );
    // A daemon holding the lock runs.
    let lock = File::create(tmp.path().join(LOCK_FILE)).unwrap();
    let _held = crate::sys::try_lock(lock, &tmp.path().join(LOCK_FILE))
        .unwrap()
        .unwrap();
    assert_eq!(gather(&sources, 1000).daemon, Daemon::Running(Some(1)));

    // A corrupt update state is a problem, and the rest is still shown.
    std::fs::write(tmp.path().join("update/state.json"), "{").unwrap();
    let report = gather(&sources, 1000);
    assert_eq!(report.exit_code(), EXIT_ATTENTION);
    assert!(
        report.problems()[0].1.contains("state.json"),
        "{:?}",
        report.problems()
    );
    assert_eq!(report.containers.len(), 1);
}

#[test]
fn gather_on_an_empty_data_directory() {
    let tmp = crate::testutil::TempDir::new("field-empty");
    let host = Host::new(tmp.path().join("state"));
    let sources = Sources {
        data_dir: tmp.path(),
        host: &host,
    };
    let report = gather(&sources, 1000);
    assert_eq!(
        (report.device.as_ref(), report.release.as_ref()),
        (None, None)
    );
    assert_eq!(report.exit_code(), EXIT_DAEMON_DOWN);
    assert!(!report.text().contains("release"));
    // ps, stats and inspect need the daemon's status.
    assert!(ps(&sources)
        .unwrap_err()
        .to_string()
        .contains("is husk daemon running"));
    assert!(sample(&sources).is_err());
}

#[test]
fn inspect_joins_desired_state_status_and_runtime() {
    let tmp = crate::testutil::TempDir::new("field-inspect");
    fixture(tmp.path());
    let host = Host::new(tmp.path().join("state"));
    let sources = Sources {
        data_dir: tmp.path(),
        host: &host,
    };
    let name: ContainerId = "web".parse().unwrap();
    let inspection = inspect(&sources, &name).unwrap();
    let text = inspection.text(1000);
    assert!(text.contains("source       /srv/web\n"), "{text}");
    assert!(text.contains("restart      on-failure:3\n"), "{text}");
    assert!(text.contains("state        backing-off\n"), "{text}");
    assert!(text.contains("cgroup       none\n"), "{text}");
    let value: serde_json::Value = serde_json::from_str(&inspection.json()).unwrap();
    assert_eq!(value["name"], "web");
    assert_eq!(value["desired"]["source"], "/srv/web");
    assert_eq!(value["desired"]["restart"], "on-failure:3");
    assert!(value["desired"]["health"].is_null());
    assert_eq!(value["status"]["state"], "backing-off");
    assert!(value["oci"].is_null() && value["cgroup"].is_null());
    let other: ContainerId = "nope".parse().unwrap();
    assert!(inspect(&sources, &other)
        .unwrap_err()
        .to_string()
        .starts_with("no supervised container nope"));
    let (_, images) = ps(&sources).unwrap();
    assert_eq!(images, ["/srv/web"]);
}

#[test]
fn gather_reads_each_running_containers_cgroup() {
    use crate::state::Record;
    let tmp = crate::testutil::TempDir::new("field-cgroup");
    fixture(tmp.path());
    let mut status = DaemonStatus::read(&tmp.path().join(STATUS_FILE)).unwrap();
    status.containers[0] = container("web", "running", None);
    status.write(&tmp.path().join(STATUS_FILE)).unwrap();
    // A cgroup v2 root of files, and the runtime's record of the container.
    let cgroups = tmp.path().join("cgroup");
    let dir = cgroups.join("husk/web");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(cgroups.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
    std::fs::write(dir.join("memory.current"), "1048576\n").unwrap();
    std::fs::write(dir.join("memory.max"), "4194304\n").unwrap();
    std::fs::write(dir.join("pids.current"), "2\n").unwrap();
    std::fs::write(dir.join("cpu.stat"), "usage_usec 3000000\nuser_usec 1\n").unwrap();
    let mut host = Host::new(tmp.path().join("state"));
    host.cgroup_root = Some(cgroups);
    let id: ContainerId = "web".parse().unwrap();
    host.state.claim(&id).unwrap();
    host.state
        .save(&Record {
            id: id.clone(),
            bundle: PathBuf::from("/srv/web"),
            rootfs: PathBuf::from("/srv/web/rootfs"),
            pid: Some(4242),
            start_time: 1,
            created: 1,
            cgroup: Some("husk/web".to_owned()),
            hooks: false,
            image_root: None,
        })
        .unwrap();
    let sources = Sources {
        data_dir: tmp.path(),
        host: &host,
    };
    // 3 s of CPU in the 300 s since it started: 1%.
    let report = gather(&sources, 1_000_300);
    let usage = report.containers[0]
        .usage
        .as_ref()
        .expect("its cgroup read");
    assert_eq!(usage.memory_current, Some(1 << 20));
    assert_eq!(usage.memory_max, Some(Limit::Value(4 << 20)));
    assert_eq!(usage.pids_current, Some(2));
    let text = report.text();
    let line = text.lines().find(|l| l.starts_with("web ")).unwrap();
    assert!(line.ends_with("  1.0M/4.0M   1.0%"), "{line}");
    let samples = sample(&sources).unwrap();
    assert_eq!(
        samples[0].stats.as_ref().unwrap().cpu_usage_usec,
        Some(3_000_000)
    );
    let inspection = inspect(&sources, &id).unwrap();
    assert!(inspection
        .text(1_000_300)
        .contains("memory       1.0M of 4.0M\n"));
    let value: serde_json::Value = serde_json::from_str(&inspection.json()).unwrap();
    assert_eq!(value["cgroup"]["pids"], 2);
    assert_eq!(value["oci"]["id"], "web");
}
