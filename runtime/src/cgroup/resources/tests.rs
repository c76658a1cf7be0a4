use super::*;

/// The settings for a `linux.resources` JSON object, as `file=value` lines.
fn settings(json: &str) -> Vec<String> {
    parse_resources(json.as_bytes())
        .unwrap_or_else(|e| panic!("{json}: {e}"))
        .settings()
        .into_iter()
        .map(|s| format!("{}={}", s.file, s.value))
        .collect()
}

fn error(json: &str) -> String {
    parse_resources(json.as_bytes())
        .map(|r| format!("accepted: {r:?}"))
        .unwrap_or_else(|e| e.to_string())
}

#[test]
fn empty_resources_write_nothing() {
    assert!(settings("{}").is_empty());
    let resources = parse_resources(b"{}").unwrap();
    assert_eq!(resources, Resources::default());
    assert!(controllers(&resources.settings()).is_empty());
    // Empty objects and zero values ("unset" in runc's convention) too.
    let zeros = r#"{"memory": {"limit": 0, "reservation": 0, "swap": 0, "kernel": 0,
        "kernelTCP": 0, "disableOOMKiller": false, "useHierarchy": true},
        "cpu": {"shares": 0, "quota": 0, "period": 0, "realtimeRuntime": 0,
        "realtimePeriod": 0, "cpus": "", "mems": ""},
        "blockIO": {"weight": 0, "leafWeight": 0, "weightDevice": []},
        "hugepageLimits": [], "devices": [], "unified": {}}"#;
    assert_eq!(settings(zeros), Vec::<String>::new());
}

#[test]
fn every_resource_in_write_order() {
    let json = r#"{
        "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "access": "rwm"}],
        "memory": {"limit": 536870912, "reservation": 268435456, "swap": 1073741824},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 10000,
                "idle": 0, "cpus": "0-1,3", "mems": "0"},
        "blockIO": {"weight": 500,
            "weightDevice": [{"major": 8, "minor": 0, "weight": 1000}],
            "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
            "throttleWriteBpsDevice": [{"major": 8, "minor": 16, "rate": 0}],
            "throttleReadIOPSDevice": [{"major": 253, "minor": 1, "rate": 100}],
            "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 50}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304},
                           {"pageSize": "1GB", "limit": 0}],
        "pids": {"limit": 64},
        "unified": {"memory.high": "400000000", "io.bfq.weight": "default 200",
                    "cgroup.max.descendants": "10"}
    }"#;
    assert_eq!(
        settings(json),
        [
            "memory.max=536870912",
            "memory.low=268435456",
            "memory.swap.max=536870912",
            "pids.max=64",
            "cpu.weight=100",
            "cpu.max=50000 100000",
            "cpu.max.burst=10000",
            "cpu.idle=0",
            "cpuset.cpus=0-1,3",
            "cpuset.mems=0",
            "io.weight=default 4950",
            "io.weight=8:0 10000",
            "io.max=8:0 rbps=1048576",
            "io.max=8:16 wbps=max",
            "io.max=253:1 riops=100",
            "io.max=8:0 wiops=50",
            "hugetlb.2MB.max=4194304",
            "hugetlb.1GB.max=0",
            "memory.high=400000000",
            "io.bfq.weight=default 200",
            "cgroup.max.descendants=10",
        ]
    );
    let resources = parse_resources(json.as_bytes()).unwrap();
    assert_eq!(
        controllers(&resources.settings()),
        ["memory", "pids", "cpu", "cpuset", "io", "hugetlb"],
        "core files (cgroup.*) need no controller"
    );
}

#[test]
fn memory_limits_and_swap_conversion() {
    let memory = |fields: &str| settings(&format!(r#"{{"memory": {{{fields}}}}}"#));
    assert_eq!(memory(r#""limit": -1"#), ["memory.max=max"]);
    assert_eq!(memory(r#""reservation": -1"#), ["memory.low=max"]);
    // OCI swap is memory+swap; memory.swap.max is swap alone.
    assert_eq!(
        memory(r#""limit": 1000, "swap": 3000"#),
        ["memory.max=1000", "memory.swap.max=2000"]
    );
    assert_eq!(
        memory(r#""limit": 1000, "swap": 1000"#),
        ["memory.max=1000", "memory.swap.max=0"],
        "swap equal to the limit means no swap"
    );
    assert_eq!(
        memory(r#""limit": 1000, "swap": -1"#),
        ["memory.max=1000", "memory.swap.max=max"]
    );
    assert_eq!(memory(r#""swap": -1"#), ["memory.swap.max=max"]);
    let error = |fields: &str| error(&format!(r#"{{"memory": {{{fields}}}}}"#));
    assert_eq!(
        error(r#""limit": 1000, "swap": 999"#),
        "linux.resources.memory.swap must be at least memory.limit: it is the memory+swap total"
    );
    assert_eq!(
        error(r#""swap": 1000"#),
        "linux.resources.memory.swap needs a memory.limit: it is the memory+swap total"
    );
    assert_eq!(
        error(r#""limit": -1, "swap": 1000"#),
        "linux.resources.memory.swap needs a memory.limit: it is the memory+swap total"
    );
    assert_eq!(
        error(r#""limit": -2"#),
        "linux.resources.memory.limit must be -1 (unlimited), 0 (unset) or positive"
    );
    assert_eq!(
        error(r#""reservation": -5"#),
        "linux.resources.memory.reservation must be -1 (unlimited), 0 (unset) or positive"
    );
    assert_eq!(
        error(r#""limit": 1000, "swap": -2"#),
        "linux.resources.memory.swap must be -1 (unlimited), 0 (unset) or positive"
    );
}

#[test]
fn pids_limit() {
    let pids = |limit: &str| settings(&format!(r#"{{"pids": {{"limit": {limit}}}}}"#));
    assert_eq!(pids("100"), ["pids.max=100"]);
    assert_eq!(pids("0"), ["pids.max=max"]);
    assert_eq!(pids("-1"), ["pids.max=max"]);
    assert_eq!(settings(r#"{"pids": {}}"#), Vec::<String>::new());
    assert_eq!(
        error(r#"{"pids": {"limit": -2}}"#),
        "linux.resources.pids.limit must be -1 or 0 (unlimited), or positive"
    );
}

#[test]
fn cpu_shares_to_weight_like_crun_and_runc() {
    let weight = |shares: u64| settings(&format!(r#"{{"cpu": {{"shares": {shares}}}}}"#));
    assert_eq!(weight(0), Vec::<String>::new(), "0 means unset");
    // Values of the formula as crun 1.23 and runc 1.3.2 document it (checked
    // with Python's math), out-of-range values clamped.
    for (shares, weight) in [
        (1, 1),
        (2, 1),
        (3, 2),
        (512, 59),
        (1024, 100),
        (4096, 303),
        (131_072, 5478),
        (262_143, 10_000),
        (262_144, 10_000),
        (1_000_000, 10_000),
    ] {
        assert_eq!(shares_to_weight(shares), weight, "shares {shares}");
    }
    let mut last = 0;
    for shares in (2..=262_144).step_by(97) {
        let weight = shares_to_weight(shares);
        assert!(weight >= last && weight <= 10_000, "shares {shares}");
        last = weight;
    }
    assert_eq!(weight(2048), ["cpu.weight=174"]);
}

/// The formula as crun and runc compute it, in f64 with libm.
fn shares_to_weight_f64(shares: u64) -> u64 {
    let l = (shares.clamp(2, 262_144) as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    (10f64.powf(exponent).ceil() as u64).clamp(1, 10_000)
}

#[test]
fn cpu_shares_to_weight_in_fixed_point_is_the_f64_formula_for_every_value() {
    for shares in 2..=262_144 {
        assert_eq!(
            shares_to_weight(shares),
            shares_to_weight_f64(shares),
            "shares {shares}"
        );
    }
}

#[test]
fn log2_fixed_point() {
    for n in [1u64, 2, 4, 1024, 1 << 40] {
        assert_eq!(log2_fixed(n), u128::from(n.ilog2()) << LOG2_FRAC, "{n}");
    }
    for n in [3u64, 10, 1000, 262_143] {
        let exact = (n as f64).log2();
        let fixed = log2_fixed(n) as f64 / (1u64 << LOG2_FRAC) as f64;
        assert!((exact - fixed).abs() < 1e-13, "{n}: {exact} {fixed}");
    }
}

#[test]
fn cpu_max_burst_idle_and_cpuset() {
    let cpu = |fields: &str| settings(&format!(r#"{{"cpu": {{{fields}}}}}"#));
    assert_eq!(
        cpu(r#""quota": 20000, "period": 50000"#),
        ["cpu.max=20000 50000"]
    );
    assert_eq!(
        cpu(r#""quota": -1, "period": 50000"#),
        ["cpu.max=max 50000"]
    );
    assert_eq!(
        cpu(r#""quota": 20000"#),
        ["cpu.max=20000"],
        "the kernel keeps its period"
    );
    assert_eq!(cpu(r#""period": 50000"#), ["cpu.max=max 50000"]);
    assert_eq!(cpu(r#""quota": -1"#), ["cpu.max=max"]);
    assert_eq!(cpu(r#""burst": 0"#), ["cpu.max.burst=0"]);
    assert_eq!(cpu(r#""idle": 1"#), ["cpu.idle=1"]);
    assert_eq!(
        cpu(r#""cpus": "0,2-3", "mems": "0-1""#),
        ["cpuset.cpus=0,2-3", "cpuset.mems=0-1"]
    );
    let error = |fields: &str| error(&format!(r#"{{"cpu": {{{fields}}}}}"#));
    assert_eq!(
        error(r#""idle": 2"#),
        "linux.resources.cpu.idle must be 0 or 1"
    );
    assert_eq!(
        error(r#""idle": 1, "shares": 512"#),
        "linux.resources.cpu.idle cannot be 1 with cpu.shares set"
    );
    assert_eq!(
        error(r#""quota": -7"#),
        "linux.resources.cpu.quota must be -1 (unlimited), 0 (unset) or positive"
    );
    assert_eq!(
        error(r#""cpus": "0-3\n""#),
        "linux.resources.cpu.cpus must be a list of numbers and ranges like 0-3,6"
    );
    assert_eq!(
        error(r#""mems": "all""#),
        "linux.resources.cpu.mems must be a list of numbers and ranges like 0-3,6"
    );
    let long = format!(r#""cpus": "{}""#, "1,".repeat(MAX_CPU_LIST));
    assert_eq!(
        error(&long),
        "linux.resources.cpu.cpus is longer than 1024 bytes"
    );
}

#[test]
fn block_io_weights_like_crun_and_throttles() {
    let weight = |w: u16| settings(&format!(r#"{{"blockIO": {{"weight": {w}}}}}"#));
    assert_eq!(weight(10), ["io.weight=default 1"]);
    assert_eq!(weight(100), ["io.weight=default 910"]);
    assert_eq!(weight(500), ["io.weight=default 4950"]);
    assert_eq!(weight(1000), ["io.weight=default 10000"]);
    for bad in [9, 1001] {
        assert_eq!(
            error(&format!(r#"{{"blockIO": {{"weight": {bad}}}}}"#)),
            "linux.resources.blockIO.weight must be 0 (unset) or from 10 to 1000"
        );
    }
    assert_eq!(
        settings(
            r#"{"blockIO": {"weightDevice": [
                {"major": 8, "minor": 0, "weight": 10},
                {"major": 8, "minor": 16, "weight": 0},
                {"major": 259, "minor": 3, "weight": 500, "leafWeight": 0}]}}"#
        ),
        ["io.weight=8:0 1", "io.weight=259:3 4950"],
        "weight 0 sets nothing for that device"
    );
    assert_eq!(
        error(r#"{"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "weight": 5}]}}"#),
        "linux.resources.blockIO.weightDevice[0].weight must be 0 (unset) or from 10 to 1000"
    );
    assert_eq!(
        error(r#"{"blockIO": {"weightDevice": [{"minor": 0, "weight": 50}]}}"#),
        "linux.resources.blockIO.weightDevice[0].major is required"
    );
    assert_eq!(
        error(r#"{"blockIO": {"throttleReadIOPSDevice": [{"major": 8, "minor": -1, "rate": 5}]}}"#),
        "linux.resources.blockIO.throttleReadIOPSDevice[0].minor must be a device number"
    );
    assert_eq!(
        error(r#"{"blockIO": {"throttleWriteBpsDevice": [{"major": 8, "minor": 0}]}}"#),
        "linux.resources.blockIO.throttleWriteBpsDevice[0].rate is required"
    );
    let too_many = vec![r#"{"major": 8, "minor": 0, "rate": 1}"#; MAX_BLOCK_DEVICES + 1].join(",");
    assert_eq!(
        error(&format!(
            r#"{{"blockIO": {{"throttleReadBpsDevice": [{too_many}]}}}}"#
        )),
        "linux.resources.blockIO.throttleReadBpsDevice has more than 16 entries"
    );
}

#[test]
fn hugepage_limits() {
    assert_eq!(
        settings(r#"{"hugepageLimits": [{"pageSize": "64KB", "limit": 65536}]}"#),
        ["hugetlb.64KB.max=65536"]
    );
    for bad in ["2M", "02MB", "MB", "2 MB", "2MB/../x", "2TB"] {
        assert_eq!(
            error(&format!(
                r#"{{"hugepageLimits": [{{"pageSize": "{bad}", "limit": 1}}]}}"#
            )),
            "linux.resources.hugepageLimits[0].pageSize must be a size like 64KB, 2MB or 1GB",
            "{bad}"
        );
    }
    assert_eq!(
        error(r#"{"hugepageLimits": [{"pageSize": "2MB"}]}"#),
        "linux.resources.hugepageLimits[0].limit is required"
    );
}

#[test]
fn unified_keys_are_validated() {
    assert_eq!(
        settings(
            r#"{"unified": {"memory.oom.group": "1", "misc.max": "res_a 1\nres_b 2",
                "cgroup.max.depth": "2", "io.weight": "8:0 50"}}"#
        ),
        [
            "memory.oom.group=1",
            "misc.max=res_a 1\nres_b 2",
            "cgroup.max.depth=2",
            "io.weight=8:0 50",
        ]
    );
    let cases = [
        ("cgroup.procs", "is a cgroup core file husk manages itself"),
        (
            "cgroup.threads",
            "is a cgroup core file husk manages itself",
        ),
        (
            "cgroup.subtree_control",
            "is a cgroup core file husk manages itself",
        ),
        ("cgroup.kill", "is a cgroup core file husk manages itself"),
        ("cgroup.freeze", "is a cgroup core file husk manages itself"),
        ("cgroup.type", "is a cgroup core file husk manages itself"),
        ("../memory.max", "must not contain '/'"),
        ("child/memory.max", "must not contain '/'"),
        ("memory..max", "must not contain '..'"),
        ("memory", "must have the form <controller>.<file>"),
        (".max", "must have the form <controller>.<file>"),
        ("memory.", "must have the form <controller>.<file>"),
        ("Memory.max", "must have the form <controller>.<file>"),
        ("memory.max ", "must have the form <controller>.<file>"),
        ("", "must have the form <controller>.<file>"),
    ];
    for (key, reason) in cases {
        let json = format!(r#"{{"unified": {{"{key}": "1"}}}}"#);
        assert_eq!(
            error(&json),
            format!("linux.resources.unified[{key:?}] {reason}"),
        );
    }
    // Keys arrive still escaped and are decoded before the checks.
    assert_eq!(
        error(r#"{"unified": {"cgroup\u002eprocs": "1"}}"#),
        r#"linux.resources.unified["cgroup.procs"] is a cgroup core file husk manages itself"#
    );
    assert_eq!(
        error(r#"{"unified": {"memory.max": "1\u0000"}}"#),
        r#"linux.resources.unified["memory.max"] has a value that contains a NUL byte"#
    );
    let long_key = "m".repeat(MAX_UNIFIED_KEY + 10);
    assert_eq!(
        error(&format!(r#"{{"unified": {{"{long_key}.max": "1"}}}}"#)),
        format!(
            "linux.resources.unified[\"{}...\"]: the key is longer than 64 bytes",
            &long_key[..MAX_UNIFIED_KEY]
        )
    );
    let long_value = "1".repeat(MAX_UNIFIED_VALUE + 1);
    assert_eq!(
        error(&format!(
            r#"{{"unified": {{"memory.max": "{long_value}"}}}}"#
        )),
        "linux.resources.unified[\"memory.max\"]: the value is longer than 4096 bytes"
    );
    let many: Vec<String> = (0..=MAX_UNIFIED)
        .map(|i| format!(r#""misc.f{i}": "1""#))
        .collect();
    assert_eq!(
        error(&format!(r#"{{"unified": {{{}}}}}"#, many.join(","))),
        "linux.resources.unified has more than 32 entries"
    );
    assert!(error(r#"{"unified": {"memory.max": 1}}"#).starts_with("linux.resources: invalid JSON"));
}

#[test]
fn device_rules_are_validated_in_order() {
    let devices = |json: &str| parse_resources(json.as_bytes()).unwrap().devices;
    assert_eq!(devices("{}"), None);
    assert_eq!(devices(r#"{"devices": []}"#), None, "no rules");
    let rules = devices(
        r#"{"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": -1, "access": "mr"},
            {"allow": true, "type": "b", "major": 4095, "minor": 1048575},
            {"allow": false, "type": "a", "major": -1}
        ]}"#,
    )
    .unwrap();
    let rule = |allow, kind, major, minor, access| DeviceRule {
        allow,
        kind,
        major,
        minor,
        access,
    };
    assert_eq!(
        rules,
        [
            rule(false, DeviceType::All, None, None, Access::ALL),
            rule(
                true,
                DeviceType::Char,
                Some(1),
                None,
                Access::parse("rm").unwrap()
            ),
            rule(
                true,
                DeviceType::Block,
                Some(4095),
                Some(1_048_575),
                Access::ALL
            ),
            rule(false, DeviceType::All, None, None, Access::ALL),
        ]
    );
    // Device rules write no interface file: they are an eBPF program; they
    // ask something of the cgroup, implied rules alone do not.
    let ruled = parse_resources(br#"{"devices": [{"allow": true, "access": "m"}]}"#).unwrap();
    assert!(ruled.asks_for_anything());
    let implied = Resources {
        implied_devices: ruled.devices.unwrap(),
        ..Resources::default()
    };
    assert!(!implied.asks_for_anything());
    assert!(!Resources::default().asks_for_anything());
    assert!(settings(r#"{"devices": [{"allow": false, "access": "rwm"}]}"#).is_empty());
    for (number, member) in [
        (r#""major": -2"#, "major"),
        (r#""major": 4096"#, "major"),
        (r#""minor": 1048576"#, "minor"),
    ] {
        assert_eq!(
            error(&format!(r#"{{"devices": [{{"allow": true, {number}}}]}}"#)),
            format!("linux.resources.devices[0].{member} must be -1 or a device number")
        );
    }
    assert_eq!(
        error(r#"{"devices": [{"allow": true, "access": ""}]}"#),
        "linux.resources.devices[0].access must be letters of rwm"
    );
    assert_eq!(
        error(r#"{"devices": [{"access": "rwm"}]}"#),
        "linux.resources.devices[0].allow is required"
    );
    assert_eq!(
        error(r#"{"devices": [{"allow": true, "type": "x"}]}"#),
        "linux.resources.devices[0].type must be a, b or c"
    );
    assert_eq!(
        error(r#"{"devices": [{"allow": true, "access": "rwx"}]}"#),
        "linux.resources.devices[0].access must be letters of rwm"
    );
    let many = vec![r#"{"allow": true}"#; MAX_DEVICE_RULES + 1].join(",");
    assert_eq!(
        error(&format!(r#"{{"devices": [{many}]}}"#)),
        "linux.resources.devices has more than 64 entries"
    );
}

#[test]
fn properties_without_a_v2_equivalent_are_named() {
    let not_on_v2 = [
        (r#""memory": {"kernel": 1048576}"#, "memory.kernel"),
        (r#""memory": {"kernelTCP": 1048576}"#, "memory.kernelTCP"),
        (r#""memory": {"swappiness": 0}"#, "memory.swappiness"),
        (r#""memory": {"swappiness": 60}"#, "memory.swappiness"),
        (
            r#""memory": {"disableOOMKiller": true}"#,
            "memory.disableOOMKiller",
        ),
        (
            r#""memory": {"useHierarchy": false}"#,
            "memory.useHierarchy",
        ),
        (
            r#""cpu": {"realtimeRuntime": 950000}"#,
            "cpu.realtimeRuntime",
        ),
        (
            r#""cpu": {"realtimePeriod": 1000000}"#,
            "cpu.realtimePeriod",
        ),
        (r#""blockIO": {"leafWeight": 100}"#, "blockIO.leafWeight"),
        (
            r#""blockIO": {"weightDevice": [{"major": 8, "minor": 0, "leafWeight": 10}]}"#,
            "blockIO.weightDevice[0].leafWeight",
        ),
        (
            r#""network": {"classID": 1048577, "priorities": []}"#,
            "network",
        ),
    ];
    for (json, field) in not_on_v2 {
        assert_eq!(
            error(&format!("{{{json}}}")),
            format!("linux.resources.{field} is not supported on cgroup v2")
        );
    }
    assert_eq!(
        error(r#"{"rdma": {"mlx5_1": {"hcaHandles": 3}}}"#),
        "linux.resources.rdma is not supported yet"
    );
    assert_eq!(
        error(r#"{"memory": {"checkBeforeUpdate": true}}"#),
        "linux.resources.memory.checkBeforeUpdate is not supported yet"
    );
    assert!(
        parse_resources(br#"{"memory": {"checkBeforeUpdate": false}, "futureField": [1]}"#).is_ok(),
        "unknown properties are ignored, as the spec requires"
    );
}

#[test]
fn invalid_json_is_reported() {
    assert!(error(r#"{"memory": {"limit": "1G"}}"#).starts_with("linux.resources: invalid JSON"));
    assert!(error(r#"{"pids": {"limit": 1.5}}"#).starts_with("linux.resources: invalid JSON"));
    assert!(error("[").starts_with("linux.resources: invalid JSON"));
}

#[test]
fn a_key_given_twice_is_named() {
    assert_eq!(
        error(r#"{"pids": {"limit": 1, "limit": 2}}"#),
        r#"linux.resources: invalid JSON: pids has the key "limit" twice"#
    );
}
