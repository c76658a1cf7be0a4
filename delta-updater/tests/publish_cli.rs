//! `husk-publish` as an operator runs it.

use std::process::Command;

fn publish(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_husk-publish"))
        .args(args)
        .output()
        .expect("run husk-publish");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn digest_prints_the_content_address_of_each_file() {
    let dir = std::env::temp_dir().join(format!("husk-publish-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("blob");
    std::fs::write(&file, b"abc").unwrap();
    let path = file.to_str().unwrap();
    let (code, stdout, _) = publish(&["digest", path]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, 0);
    assert_eq!(
        stdout,
        format!(
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  {path}\n"
        )
    );
}

#[test]
fn a_missing_file_is_one_line_naming_it() {
    let (code, stdout, stderr) = publish(&["digest", "/nonexistent/blob"]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("husk-publish: digest: /nonexistent/blob: "),
        "{stderr}"
    );
}

#[test]
fn no_command_is_a_usage_error() {
    let (code, _, stderr) = publish(&[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no command given"), "{stderr}");
}

#[test]
fn version_names_the_tool_and_arch() {
    let (code, stdout, _) = publish(&["--version"]);
    assert_eq!(code, 0);
    assert_eq!(
        stdout.trim(),
        format!("husk-publish 0.1.0 ({})", std::env::consts::ARCH)
    );
}
