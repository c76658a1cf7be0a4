//! The process a container of an image runs, and the config.json it gets.

use std::path::Path;

use super::*;

fn process(config: &str, command: &[&str], env: &[&str]) -> Result<ImageProcess, ImageError> {
    let command: Vec<String> = command.iter().map(|s| s.to_string()).collect();
    let env: Vec<String> = env.iter().map(|s| s.to_string()).collect();
    image_process(config.as_bytes(), &command, &env)
}

const CONFIG: &str = r#"{"architecture": "arm64", "os": "linux",
    "config": {"Entrypoint": ["/bin/app", "--serve"], "Cmd": ["--port", "80"],
               "Env": ["PATH=/bin", "MODE=prod"], "WorkingDir": "/srv", "User": "1000:100",
               "Labels": {"a": "b"}, "ExposedPorts": {"80/tcp": {}}},
    "rootfs": {"type": "layers", "diff_ids": []}}"#;

#[test]
fn the_image_config_gives_the_process() {
    let p = process(CONFIG, &[], &[]).unwrap();
    assert_eq!(p.args, ["/bin/app", "--serve", "--port", "80"]);
    assert_eq!(p.env, ["PATH=/bin", "MODE=prod"]);
    assert_eq!(p.cwd, "/srv");
    assert_eq!(p.user, (1000, 100));
    let p = process(CONFIG, &["--port", "8080"], &["MODE=dev", "NEW=1"]).unwrap();
    assert_eq!(
        p.args,
        ["/bin/app", "--serve", "--port", "8080"],
        "a command replaces Cmd"
    );
    assert_eq!(p.env, ["PATH=/bin", "MODE=dev", "NEW=1"]);
    let p = process(r#"{"config": {"Cmd": ["sh"]}}"#, &[], &[]).unwrap();
    assert_eq!(
        (p.args, p.cwd, p.user),
        (vec!["sh".to_owned()], "/".to_owned(), (0, 0))
    );
    let p = process(r#"{"config": {"Cmd": ["sh"], "User": "7"}}"#, &[], &[]).unwrap();
    assert_eq!(p.user, (7, 0));
}

#[test]
fn a_config_that_cannot_run_is_refused_naming_why() {
    for (config, expected) in [
        (
            r#"{"config": {}}"#,
            "has neither Entrypoint nor Cmd: give a command",
        ),
        (r#"{}"#, "has neither Entrypoint nor Cmd"),
        (
            r#"{"config": {"Cmd": ["sh"], "User": "nobody"}}"#,
            "config.User \"nobody\" is not UID or UID:GID",
        ),
        (
            r#"{"config": {"Cmd": ["sh"], "WorkingDir": "srv"}}"#,
            "config.WorkingDir \"srv\" is not absolute",
        ),
        (
            r#"{"config": {"Cmd": ["a\u0000b"]}}"#,
            "config.Cmd[0] contains a NUL byte",
        ),
        (r#"{"config": {"Cmd": 7}}"#, "not the JSON expected"),
    ] {
        let error = process(config, &[], &[]).unwrap_err().to_string();
        assert!(error.contains(expected), "{config}: {error}");
    }
    let many = format!(
        r#"{{"config": {{"Cmd": [{}]}}}}"#,
        vec!["\"x\""; MAX_ARGS + 1].join(",")
    );
    let error = process(&many, &[], &[]).unwrap_err().to_string();
    assert!(
        error.contains("config.Cmd has more than 256 entries"),
        "{error}"
    );
}

#[test]
fn the_bundle_config_is_husk_s_default_with_the_image_s_process() {
    let mut p = process(CONFIG, &[], &[]).unwrap();
    p.args.push("quote\" and \\ back".into());
    let json = bundle_config(&p, &RunOptions::default());
    let spec = crate::spec::parse(json.as_bytes(), Path::new("/bundle")).expect("husk accepts it");
    let args: Vec<&str> = spec
        .process
        .args
        .iter()
        .map(|a| a.to_str().unwrap())
        .collect();
    assert_eq!(
        args,
        ["/bin/app", "--serve", "--port", "80", "quote\" and \\ back"]
    );
    let env: Vec<&str> = spec
        .process
        .env
        .iter()
        .map(|a| a.to_str().unwrap())
        .collect();
    assert_eq!(env, ["PATH=/bin", "MODE=prod"]);
    assert_eq!(spec.process.cwd.as_path(), Path::new("/srv"));
    assert_eq!((spec.process.user.uid, spec.process.user.gid), (1000, 100));
    assert!(
        !spec.root_readonly,
        "the overlay's upper dir takes the writes"
    );
    assert!(spec.process.no_new_privileges && spec.seccomp.is_some());
    // husk spec's limits and its deny-all device rule hold here too.
    assert!(spec.resources.devices.is_some());
}
