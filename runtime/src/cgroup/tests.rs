//! [`Cgroup`] against [`FakeKernel`], an in-memory cgroupfs with the kernel's rules.

use nix::errno::Errno;

use super::fake::FakeKernel;
use super::*;
use crate::error_chain;

const ROOT: &str = "/sys/fs/cgroup";
const ALL_CONTROLLERS: &str = "cpuset cpu io memory hugetlb pids rdma misc";
/// No time passes in tests: the fake kernel's clock moves only in pauses.
const POLL: Poll = Poll {
    attempts: 10,
    interval: Duration::from_millis(10),
};

fn path(parent: &str, name: &str) -> CgroupPath {
    CgroupPath::new(parent.parse().unwrap(), name.parse().unwrap())
}

fn resources(json: &str) -> Resources {
    parse_resources(json.as_bytes()).unwrap()
}

fn create<'k>(
    kernel: &'k FakeKernel,
    parent: &str,
    name: &str,
    json: &str,
) -> Result<Cgroup<&'k FakeKernel>, CgroupError> {
    Cgroup::create(
        kernel,
        Path::new(ROOT),
        &path(parent, name),
        &resources(json),
    )
}

fn message(error: CgroupError) -> String {
    error_chain(&error)
}

#[test]
fn create_enables_needed_controllers_in_every_ancestor() {
    let kernel = FakeKernel::new(ROOT, ALL_CONTROLLERS);
    let json = r#"{"memory": {"limit": 1048576}, "pids": {"limit": 10}}"#;
    let cgroup = create(&kernel, "husk/apps", "c1", json).unwrap();
    assert_eq!(cgroup.dir(), Path::new("/sys/fs/cgroup/husk/apps/c1"));
    assert_eq!(
        kernel.take_writes(),
        [
            "/sys/fs/cgroup/cgroup.subtree_control <- +memory +pids",
            "/sys/fs/cgroup/husk/cgroup.subtree_control <- +memory +pids",
            "/sys/fs/cgroup/husk/apps/cgroup.subtree_control <- +memory +pids",
            "/sys/fs/cgroup/husk/apps/c1/memory.max <- 1048576",
            "/sys/fs/cgroup/husk/apps/c1/pids.max <- 10",
        ]
    );
    let leaf = "/sys/fs/cgroup/husk/apps/c1";
    assert_eq!(
        kernel.file(&format!("{leaf}/cgroup.controllers")),
        "memory pids"
    );
    assert_eq!(kernel.file(&format!("{leaf}/cgroup.subtree_control")), "");
    assert_eq!(kernel.file(&format!("{leaf}/memory.max")), "1048576");

    // A sibling needing the same controllers enables nothing more.
    create(&kernel, "husk/apps", "c2", json).unwrap();
    assert_eq!(
        kernel.take_writes(),
        [
            "/sys/fs/cgroup/husk/apps/c2/memory.max <- 1048576",
            "/sys/fs/cgroup/husk/apps/c2/pids.max <- 10",
        ]
    );
    // One needing another controller enables just that one, on the way down.
    create(
        &kernel,
        "husk/apps",
        "c3",
        r#"{"cpu": {"cpus": "0"}, "pids": {"limit": 5}}"#,
    )
    .unwrap();
    assert_eq!(
        kernel.take_writes(),
        [
            "/sys/fs/cgroup/cgroup.subtree_control <- +cpuset",
            "/sys/fs/cgroup/husk/cgroup.subtree_control <- +cpuset",
            "/sys/fs/cgroup/husk/apps/cgroup.subtree_control <- +cpuset",
            "/sys/fs/cgroup/husk/apps/c3/pids.max <- 5",
            "/sys/fs/cgroup/husk/apps/c3/cpuset.cpus <- 0",
        ]
    );
    assert_eq!(
        kernel.file("/sys/fs/cgroup/husk/apps/cgroup.subtree_control"),
        "cpuset memory pids"
    );
}

#[test]
fn create_on_a_lab_guest_writes_every_resource() {
    // The guests' stage2 enables every controller in the root.
    let kernel = FakeKernel::lab(ROOT);
    let json = r#"{
        "memory": {"limit": 268435456, "swap": 536870912},
        "cpu": {"shares": 512, "quota": 25000, "period": 100000},
        "blockIO": {"weight": 100, "throttleWriteBpsDevice": [{"major": 254, "minor": 0, "rate": 1000000}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
        "pids": {"limit": 32},
        "unified": {"memory.high": "200000000"}
    }"#;
    create(&kernel, "husk", "c1", json).unwrap();
    assert_eq!(
        kernel.take_writes(),
        [
            "/sys/fs/cgroup/husk/cgroup.subtree_control <- +memory +pids +cpu +io +hugetlb",
            "/sys/fs/cgroup/husk/c1/memory.max <- 268435456",
            "/sys/fs/cgroup/husk/c1/memory.swap.max <- 268435456",
            "/sys/fs/cgroup/husk/c1/pids.max <- 32",
            "/sys/fs/cgroup/husk/c1/cpu.weight <- 59",
            "/sys/fs/cgroup/husk/c1/cpu.max <- 25000 100000",
            "/sys/fs/cgroup/husk/c1/io.weight <- default 910",
            "/sys/fs/cgroup/husk/c1/io.max <- 254:0 wbps=1000000",
            "/sys/fs/cgroup/husk/c1/hugetlb.2MB.max <- 0",
            "/sys/fs/cgroup/husk/c1/memory.high <- 200000000",
        ]
    );
}

#[test]
fn hybrid_host_without_controllers_fails_only_when_limits_are_asked_for() {
    let kernel = FakeKernel::new(ROOT, "");
    let cgroup = create(&kernel, "husk", "plain", "{}").unwrap();
    assert!(kernel.is_dir("/sys/fs/cgroup/husk/plain"));
    assert!(kernel.take_writes().is_empty());
    // Freezing and killing use core files: no controller needed.
    kernel.add_proc("/sys/fs/cgroup/husk/plain", 7);
    cgroup.freeze(POLL).unwrap();
    cgroup
        .kill_all(|_| unreachable!("cgroup.kill exists"))
        .unwrap();
    cgroup.remove(POLL).unwrap();

    let error = create(&kernel, "husk", "limited", r#"{"memory": {"limit": 1000}}"#).unwrap_err();
    assert_eq!(
        message(error),
        "cgroup v2 controller memory is not available \
         (cgroup.controllers at /sys/fs/cgroup lists: nothing)"
    );
    assert!(!kernel.is_dir("/sys/fs/cgroup/husk/limited"));

    let kernel = FakeKernel::new(ROOT, "cpu pids");
    let error = create(
        &kernel,
        "husk",
        "c1",
        r#"{"pids": {"limit": 9}, "memory": {"limit": 1000}}"#,
    )
    .unwrap_err();
    assert_eq!(
        message(error),
        "cgroup v2 controller memory is not available \
         (cgroup.controllers at /sys/fs/cgroup lists: cpu pids)"
    );
    let error = create(&kernel, "husk", "c1", r#"{"unified": {"misc.max": "x 1"}}"#).unwrap_err();
    assert!(message(error).starts_with("cgroup v2 controller misc is not available"));
}

#[test]
fn root_must_be_a_cgroup2_mount() {
    let kernel = FakeKernel::new(ROOT, ALL_CONTROLLERS);
    let v1_root = Path::new("/sys/fs/cgroup/unified");
    let error =
        Cgroup::create(&kernel, v1_root, &path("husk", "c1"), &Resources::default()).unwrap_err();
    assert_eq!(
        message(error),
        "/sys/fs/cgroup/unified is not a cgroup v2 mount: it has no cgroup.controllers"
    );
    let error = Cgroup::open(&kernel, v1_root, &path("husk", "c1")).unwrap_err();
    assert!(message(error).contains("is not a cgroup v2 mount"));
}

#[test]
fn create_refuses_an_existing_cgroup_and_open_finds_it() {
    let kernel = FakeKernel::new(ROOT, ALL_CONTROLLERS);
    create(&kernel, "", "c1", "{}").unwrap();
    let error = create(&kernel, "", "c1", "{}").unwrap_err();
    assert_eq!(message(error), "cgroup /sys/fs/cgroup/c1 already exists");
    let opened = Cgroup::open(&kernel, Path::new(ROOT), &path("", "c1")).unwrap();
    assert_eq!(opened.dir(), Path::new("/sys/fs/cgroup/c1"));
    let error = Cgroup::open(&kernel, Path::new(ROOT), &path("husk", "c9")).unwrap_err();
    assert_eq!(
        message(error),
        "cgroup /sys/fs/cgroup/husk/c9 does not exist"
    );
}

#[test]
fn failed_setting_names_file_and_value_and_removes_the_new_cgroup() {
    let kernel = FakeKernel::lab(ROOT);
    kernel.fail_writes("/sys/fs/cgroup/husk/c1/cpu.max", Errno::EINVAL);
    let error = create(
        &kernel,
        "husk",
        "c1",
        r#"{"cpu": {"quota": 500, "period": 100}}"#,
    )
    .unwrap_err();
    assert_eq!(
        message(error),
        "writing \"500 100\" to /sys/fs/cgroup/husk/c1/cpu.max: Invalid argument (os error 22)"
    );
    assert!(!kernel.is_dir("/sys/fs/cgroup/husk/c1"));
    assert!(kernel.is_dir("/sys/fs/cgroup/husk"), "parents stay");

    // A file the kernel does not have is an error, never created.
    let error = create(
        &kernel,
        "husk",
        "c2",
        r#"{"unified": {"memory.nosuch": "1"}}"#,
    )
    .unwrap_err();
    assert_eq!(
        message(error),
        "writing \"1\" to /sys/fs/cgroup/husk/c2/memory.nosuch: \
         No such file or directory (os error 2)"
    );
    assert!(!kernel.is_dir("/sys/fs/cgroup/husk/c2"));
}

#[test]
fn processes_are_added_and_listed() {
    let kernel = FakeKernel::new(ROOT, ALL_CONTROLLERS);
    let cgroup = create(&kernel, "husk", "c1", "{}").unwrap();
    assert!(cgroup.pids().unwrap().is_empty());
    cgroup.add_process(Pid::from_raw(42)).unwrap();
    cgroup.add_process(Pid::from_raw(43)).unwrap();
    assert_eq!(
        cgroup.pids().unwrap(),
        [Pid::from_raw(42), Pid::from_raw(43)]
    );
    assert_eq!(
        kernel.take_writes(),
        [
            "/sys/fs/cgroup/husk/c1/cgroup.procs <- 42",
            "/sys/fs/cgroup/husk/c1/cgroup.procs <- 43",
        ]
    );

    kernel.set_file("/sys/fs/cgroup/husk/c1", "cgroup.procs", "42\nzombie\n");
    assert_eq!(
        message(cgroup.pids().unwrap_err()),
        "/sys/fs/cgroup/husk/c1/cgroup.procs has a line that is not a process id"
    );
}

#[test]
fn freeze_and_thaw_wait_for_cgroup_events() {
    let kernel = FakeKernel::new(ROOT, "").settle(Duration::from_millis(30));
    let cgroup = create(&kernel, "husk", "c1", "{}").unwrap();
    kernel.add_proc("/sys/fs/cgroup/husk/c1", 5);
    cgroup.freeze(POLL).unwrap();
    assert_eq!(kernel.now(), Duration::from_millis(30), "three pauses");
    assert_eq!(
        kernel.file("/sys/fs/cgroup/husk/c1/cgroup.events"),
        "populated 1\nfrozen 1\n"
    );
    cgroup.thaw(POLL).unwrap();
    assert_eq!(kernel.now(), Duration::from_millis(60));
    assert_eq!(
        kernel.take_writes(),
        [
            "/sys/fs/cgroup/husk/c1/cgroup.freeze <- 1",
            "/sys/fs/cgroup/husk/c1/cgroup.freeze <- 0",
        ]
    );
}

#[test]
fn freeze_gives_up_after_the_polls() {
    let kernel = FakeKernel::new(ROOT, "").settle(Duration::from_secs(5));
    let cgroup = create(&kernel, "husk", "c1", "{}").unwrap();
    let poll = Poll {
        attempts: 3,
        interval: Duration::from_millis(10),
    };
    let error = cgroup.freeze(poll).unwrap_err();
    assert_eq!(
        message(error),
        "/sys/fs/cgroup/husk/c1/cgroup.events did not show \"frozen 1\" after 3 checks"
    );
    assert_eq!(
        kernel.now(),
        Duration::from_millis(20),
        "no pause after the last check"
    );

    kernel.set_file("/sys/fs/cgroup/husk/c1", "cgroup.events", "populated 0\n");
    assert_eq!(
        message(cgroup.thaw(poll).unwrap_err()),
        "/sys/fs/cgroup/husk/c1/cgroup.events has no \"frozen\" line"
    );
}

#[test]
fn kill_all_writes_cgroup_kill_and_remove_waits_for_the_exits() {
    let kernel = FakeKernel::new(ROOT, "").settle(Duration::from_millis(25));
    let cgroup = create(&kernel, "husk", "c1", "{}").unwrap();
    kernel.add_proc("/sys/fs/cgroup/husk/c1", 10);
    kernel.add_proc("/sys/fs/cgroup/husk/c1", 11);
    cgroup
        .kill_all(|pid| unreachable!("no callback with cgroup.kill, got {pid}"))
        .unwrap();
    assert_eq!(
        kernel.take_writes(),
        ["/sys/fs/cgroup/husk/c1/cgroup.kill <- 1"]
    );
    cgroup.remove(POLL).unwrap();
    assert_eq!(
        kernel.now(),
        Duration::from_millis(30),
        "busy until the exits"
    );
    assert!(!kernel.is_dir("/sys/fs/cgroup/husk/c1"));
}

#[test]
fn kill_all_without_cgroup_kill_calls_back_for_each_process() {
    let kernel = FakeKernel::new(ROOT, "").without_cgroup_kill();
    let cgroup = create(&kernel, "husk", "c1", "{}").unwrap();
    kernel.add_proc("/sys/fs/cgroup/husk/c1", 7);
    kernel.add_proc("/sys/fs/cgroup/husk/c1", 8);
    let mut killed = Vec::new();
    cgroup
        .kill_all(|pid| {
            killed.push(pid.as_raw());
            kernel.exit_later(pid.as_raw());
            Ok(())
        })
        .unwrap();
    assert_eq!(killed, [7, 8]);
    assert!(kernel.take_writes().is_empty());
    cgroup.remove(POLL).unwrap();

    let cgroup = create(&kernel, "husk", "c2", "{}").unwrap();
    kernel.add_proc("/sys/fs/cgroup/husk/c2", 9);
    let error = cgroup
        .kill_all(|_| Err(SysError::new("kill", None, Errno::EPERM)))
        .unwrap_err();
    assert_eq!(
        message(error),
        "killing process 9 of the cgroup: kill: EPERM: Operation not permitted"
    );
}

#[test]
fn remove_is_idempotent_and_never_removes_the_parent() {
    let kernel = FakeKernel::new(ROOT, ALL_CONTROLLERS);
    let c1 = create(&kernel, "husk", "c1", "{}").unwrap();
    create(&kernel, "husk", "c2", "{}").unwrap();
    c1.remove(POLL).unwrap();
    c1.remove(POLL).unwrap();
    assert_eq!(kernel.now(), Duration::ZERO, "no retries when not busy");
    assert!(!kernel.is_dir("/sys/fs/cgroup/husk/c1"));
    assert!(kernel.is_dir("/sys/fs/cgroup/husk/c2"));
    let c2 = Cgroup::open(&kernel, Path::new(ROOT), &path("husk", "c2")).unwrap();
    c2.remove(POLL).unwrap();
    assert!(kernel.is_dir("/sys/fs/cgroup/husk"), "even when empty");

    // A process that never leaves: bounded retries, then the kernel's answer.
    let c3 = create(&kernel, "husk", "c3", "{}").unwrap();
    kernel.add_proc("/sys/fs/cgroup/husk/c3", 99);
    let poll = Poll {
        attempts: 4,
        interval: Duration::from_millis(10),
    };
    let error = c3.remove(poll).unwrap_err();
    assert_eq!(
        message(error),
        "removing cgroup /sys/fs/cgroup/husk/c3: Device or resource busy (os error 16)"
    );
    assert_eq!(kernel.now(), Duration::from_millis(30));
}

#[test]
fn stats_are_read_from_interface_files() {
    let kernel = FakeKernel::lab(ROOT);
    let json = r#"{"memory": {"limit": 4096}, "pids": {"limit": 8}}"#;
    let cgroup = create(&kernel, "husk", "c1", json).unwrap();
    let dir = "/sys/fs/cgroup/husk/c1";
    kernel.set_file(dir, "memory.current", "1234\n");
    kernel.set_file(
        dir,
        "memory.events",
        "low 0\nhigh 0\nmax 12\noom 2\noom_kill 3\noom_group_kill 0\n",
    );
    kernel.set_file(dir, "pids.current", "4\n");
    kernel.set_file(
        dir,
        "cpu.stat",
        "usage_usec 98765\nuser_usec 90000\nsystem_usec 8765\n",
    );
    assert_eq!(
        cgroup.stats().unwrap(),
        Stats {
            memory_current: Some(1234),
            memory_max: Some(Limit::Value(4096)),
            oom: Some(2),
            oom_kill: Some(3),
            pids_current: Some(4),
            cpu_usage_usec: Some(98765),
        }
    );
    kernel.set_file(dir, "memory.max", "max\n");
    assert_eq!(cgroup.stats().unwrap().memory_max, Some(Limit::Max));

    kernel.set_file(dir, "memory.current", "lots\n");
    assert_eq!(
        message(cgroup.stats().unwrap_err()),
        "/sys/fs/cgroup/husk/c1/memory.current does not hold a number"
    );
    kernel.set_file(dir, "memory.current", "0\n");
    kernel.set_file(dir, "memory.events", "oom_kill x\n");
    assert_eq!(
        message(cgroup.stats().unwrap_err()),
        "/sys/fs/cgroup/husk/c1/memory.events does not hold a number"
    );

    // Without the memory and pids controllers their files do not exist.
    let kernel = FakeKernel::new(ROOT, "");
    let cgroup = create(&kernel, "husk", "c1", "{}").unwrap();
    assert_eq!(
        cgroup.stats().unwrap(),
        Stats {
            cpu_usage_usec: Some(0),
            ..Stats::default()
        }
    );
}

#[test]
fn the_kernel_rules_of_the_fake_hold() {
    let kernel = FakeKernel::new(ROOT, "memory pids");
    let parent = create(&kernel, "", "husk", r#"{"pids": {"limit": 5}}"#).unwrap();
    create(&kernel, "husk", "c1", r#"{"pids": {"limit": 5}}"#).unwrap();
    // No internal processes: husk has controllers enabled for its children.
    let error = parent.add_process(Pid::from_raw(3)).unwrap_err();
    assert_eq!(
        message(error),
        "writing \"3\" to /sys/fs/cgroup/husk/cgroup.procs: \
         Device or resource busy (os error 16)"
    );
    // A parent with children cannot be removed.
    let error = parent.remove(POLL).unwrap_err();
    assert!(
        message(error).starts_with("removing cgroup /sys/fs/cgroup/husk: Device or resource busy")
    );
    assert!(kernel.is_dir("/sys/fs/cgroup/husk/c1"));
}

#[test]
fn update_enables_what_it_needs_and_leaves_the_rest() {
    let kernel = FakeKernel::new(ROOT, ALL_CONTROLLERS);
    let cgroup = create(&kernel, "husk", "c1", r#"{"memory": {"limit": 1048576}}"#).unwrap();
    kernel.take_writes();
    let update = resources(r#"{"pids": {"limit": 7}}"#);
    cgroup
        .update(Path::new(ROOT), &path("husk", "c1"), &update)
        .unwrap();
    assert_eq!(
        kernel.take_writes(),
        [
            "/sys/fs/cgroup/cgroup.subtree_control <- +pids",
            "/sys/fs/cgroup/husk/cgroup.subtree_control <- +pids",
            "/sys/fs/cgroup/husk/c1/pids.max <- 7",
        ]
    );
    assert_eq!(kernel.file("/sys/fs/cgroup/husk/c1/memory.max"), "1048576");
}

#[test]
fn every_new_cgroup_gets_a_device_filter() {
    // Even on a hybrid host with no controllers: device programs need none.
    let kernel = FakeKernel::new(ROOT, "");
    create(&kernel, "husk", "plain", "{}").unwrap();
    assert_eq!(
        kernel.device_program("/sys/fs/cgroup/husk/plain"),
        compile(&DEFAULT_RULES),
        "no rules: the defaults alone"
    );
    let json = r#"{"devices": [{"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "r"}]}"#;
    create(&kernel, "husk", "ruled", json).unwrap();
    let rules = resources(json).devices.unwrap();
    assert_eq!(
        kernel.device_program("/sys/fs/cgroup/husk/ruled"),
        compile(&with_defaults(&rules)),
        "the config's rules, then the defaults"
    );
    assert!(
        kernel.take_writes().is_empty(),
        "no interface file is written"
    );
    // Rules that allow everything need no filter.
    create(&kernel, "husk", "open", r#"{"devices": [{"allow": true}]}"#).unwrap();
    assert_eq!(kernel.device_program("/sys/fs/cgroup/husk/open"), None);
}

#[test]
fn a_kernel_without_cgroup_bpf_fails_only_when_rules_are_asked_for() {
    for errno in [Errno::ENOSYS, Errno::EINVAL] {
        let kernel = FakeKernel::new(ROOT, "");
        kernel.fail_bpf(errno);
        // The defaults alone are skipped where the kernel cannot run them.
        create(&kernel, "husk", "plain", "{}").unwrap();
        assert_eq!(kernel.device_program("/sys/fs/cgroup/husk/plain"), None);
        let json = r#"{"devices": [{"allow": false, "access": "rwm"}]}"#;
        let error = create(&kernel, "husk", "ruled", json).unwrap_err();
        assert_eq!(
            message(error),
            format!(
                "attaching the device rules (eBPF) to cgroup /sys/fs/cgroup/husk/ruled \
                 (does the kernel have CONFIG_BPF_SYSCALL and CONFIG_CGROUP_BPF?): \
                 bpf(BPF_PROG_LOAD): {errno}"
            )
        );
        assert!(!kernel.is_dir("/sys/fs/cgroup/husk/ruled"), "removed again");
    }
    // A rootless husk may not load programs: the defaults are skipped, rules
    // asked for are an error.
    let kernel = FakeKernel::new(ROOT, "");
    kernel.fail_bpf(Errno::EPERM);
    create(&kernel, "husk", "plain", "{}").unwrap();
    assert_eq!(kernel.device_program("/sys/fs/cgroup/husk/plain"), None);
    let json = r#"{"devices": [{"allow": false, "access": "rwm"}]}"#;
    let error = create(&kernel, "husk", "ruled", json).unwrap_err();
    assert_eq!(
        message(error),
        "attaching the device rules (eBPF) to cgroup /sys/fs/cgroup/husk/ruled: \
         bpf(BPF_PROG_LOAD): EPERM: Operation not permitted"
    );
    // Any other failure is an error even for the defaults.
    let kernel = FakeKernel::new(ROOT, "");
    kernel.fail_bpf(Errno::E2BIG);
    let error = create(&kernel, "husk", "plain", "{}").unwrap_err();
    assert_eq!(
        message(error),
        "attaching the device rules (eBPF) to cgroup /sys/fs/cgroup/husk/plain: \
         bpf(BPF_PROG_LOAD): E2BIG: Argument list too long"
    );
    assert!(!kernel.is_dir("/sys/fs/cgroup/husk/plain"));
}

#[test]
fn implied_rules_come_between_the_given_ones_and_the_defaults() {
    let kernel = FakeKernel::new(ROOT, "");
    let json = r#"{"devices": [{"allow": false, "access": "rwm"}]}"#;
    let mut with_node = resources(json);
    let mknod = DeviceRule {
        allow: true,
        kind: DeviceType::Char,
        major: Some(10),
        minor: Some(229),
        access: Access::MKNOD,
    };
    with_node.implied_devices = vec![mknod];
    Cgroup::create(&kernel, Path::new(ROOT), &path("husk", "c1"), &with_node).unwrap();
    let mut rules = with_node.devices.clone().unwrap();
    rules.push(mknod);
    assert_eq!(
        kernel.device_program("/sys/fs/cgroup/husk/c1"),
        compile(&with_defaults(&rules))
    );
    // Implied rules alone are not rules asked for: skipped without eBPF.
    kernel.fail_bpf(Errno::EINVAL);
    let implied_only = Resources {
        implied_devices: vec![mknod],
        ..Resources::default()
    };
    Cgroup::create(&kernel, Path::new(ROOT), &path("husk", "c2"), &implied_only).unwrap();
}

#[test]
fn update_replaces_the_device_filter_only_when_given_rules() {
    let kernel = FakeKernel::new(ROOT, ALL_CONTROLLERS);
    let cgroup = create(&kernel, "husk", "c1", "{}").unwrap();
    let dir = "/sys/fs/cgroup/husk/c1";
    let at = path("husk", "c1");
    cgroup
        .update(
            Path::new(ROOT),
            &at,
            &resources(r#"{"pids": {"limit": 7}}"#),
        )
        .unwrap();
    assert_eq!(kernel.device_program(dir), compile(&DEFAULT_RULES));
    let json = r#"{"devices": [{"allow": true, "type": "b", "major": 8, "access": "r"}]}"#;
    cgroup
        .update(Path::new(ROOT), &at, &resources(json))
        .unwrap();
    let rules = resources(json).devices.unwrap();
    assert_eq!(kernel.device_program(dir), compile(&with_defaults(&rules)));
    // Rules that allow everything take the filter away.
    let open = resources(r#"{"devices": [{"allow": true, "access": "rwm"}]}"#);
    cgroup.update(Path::new(ROOT), &at, &open).unwrap();
    assert_eq!(kernel.device_program(dir), None);
    // A kernel refusing the new filter fails the update, defaults or not.
    kernel.fail_bpf(Errno::EINVAL);
    let error = cgroup
        .update(Path::new(ROOT), &at, &resources(json))
        .unwrap_err();
    assert!(message(error).starts_with("attaching the device rules (eBPF) to cgroup"));
}
