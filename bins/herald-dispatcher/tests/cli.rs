//! The real `herald-dispatcher` binary answers `--help` and `--version`, and refuses unknown
//! arguments, without reading its configuration or creating anything.

use std::process::Command;

/// Runs the binary with `args` in a fresh empty directory with no store configured (a
/// dispatcher that started would create `./data` there).
fn run_in_empty_dir(args: &[&str]) -> (std::process::Output, Vec<String>) {
    let dir = std::env::temp_dir().join(format!(
        "herald-dispatcher-cli-{}-{}",
        std::process::id(),
        args.join("_").replace('-', "")
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_herald-dispatcher"))
        .args(args)
        .current_dir(&dir)
        .env_remove("DATABASE_URL")
        .env("HERALD_DISPATCHER_LISTEN", "127.0.0.1:0")
        .output()
        .expect("run herald-dispatcher");
    let entries = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    std::fs::remove_dir_all(dir).unwrap();
    (out, entries)
}

#[test]
fn help_version_and_bad_arguments_touch_nothing() {
    for flag in ["--help", "-h"] {
        let (out, created) = run_in_empty_dir(&[flag]);
        assert!(out.status.success(), "{flag}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("usage:"));
        assert!(created.is_empty(), "{flag} created {created:?}");
    }
    for flag in ["--version", "-V"] {
        let (out, created) = run_in_empty_dir(&[flag]);
        assert!(out.status.success(), "{flag}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("herald-dispatcher {}", env!("CARGO_PKG_VERSION"))
        );
        assert!(created.is_empty(), "{flag} created {created:?}");
    }
    for args in [&["--bogus"][..], &["serve"], &["--help", "--version"]] {
        let (out, created) = run_in_empty_dir(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage:"));
        assert!(created.is_empty(), "{args:?} created {created:?}");
    }
}

#[test]
fn an_incomplete_waha_configuration_is_refused_here_too() {
    // The dispatcher never calls the engine, but it reads the same environment as the API: a
    // deployment whose WAHA settings are incomplete is told so by every process.
    let out = Command::new(env!("CARGO_BIN_EXE_herald-dispatcher"))
        .env("HERALD_ENGINE", "waha")
        .env_remove("HERALD_WAHA_URL")
        .env("HERALD_DISPATCHER_LISTEN", "127.0.0.1:0")
        .output()
        .expect("run herald-dispatcher");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HERALD_WAHA_URL is required"));
}
