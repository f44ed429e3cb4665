//! The real binary's `check` command.

use std::process::Command;

fn portcullis() -> Command {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
}

#[test]
fn check_accepts_the_example_config() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml");
    let output = portcullis().args(["check", example]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("config OK: "), "{stdout}");
    let output = portcullis()
        .args(["check", "--config", example])
        .output()
        .unwrap();
    assert!(output.status.success());
}

#[test]
fn check_reports_every_error_with_its_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"version = 1
[server]
listen = "not an address"
[[routes]]
id = "a"
path = "/"
upstream = ["ftp://x"]
[routes.policy]
allow = [{ public = true }]
"#,
    )
    .unwrap();
    let output = portcullis()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("server.listen"), "{stderr}");
    assert!(stderr.contains("routes[0].upstream[0]"), "{stderr}");
}

#[test]
fn a_failing_command_says_why_once_and_as_json_with_json_logs() {
    let missing = "/nonexistent/portcullis.toml";
    let output = portcullis()
        .args(["audit", "verify", "--config", missing])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.matches("cannot read config file").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.starts_with("error: "), "{stderr}");

    let output = portcullis()
        .args([
            "audit",
            "verify",
            "--log-format",
            "json",
            "--config",
            missing,
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let line: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(line["level"], "ERROR");
    assert!(
        line["message"]
            .as_str()
            .unwrap()
            .contains("cannot read config file")
    );
}
