//! Completions and man pages, generated from the clap definitions: the bash completion script
//! loads (`complete -p` names it), every man page renders with `man -l`, and every subcommand's
//! `--help` ends with an example of itself.

use std::process::Command;

use sshca_tests::*;

#[test]
fn completions_load_and_man_pages_render() {
    let dir = tempfile::tempdir().unwrap();
    for program in ["sshca", "get_key"] {
        let script = dir.path().join(format!("{program}.bash"));
        let generated = Command::new(bin(program)).args(["completions", "bash"]).output().unwrap();
        assert!(generated.status.success(), "{program} completions: {}", String::from_utf8_lossy(&generated.stderr));
        std::fs::write(&script, &generated.stdout).unwrap();
        let loaded = Command::new("bash").arg("-c").arg(format!("source {} && complete -p {program}", script.display())).output().unwrap();
        assert!(loaded.status.success(), "bash could not load {program}'s completions: {}", String::from_utf8_lossy(&loaded.stderr));
        assert!(String::from_utf8_lossy(&loaded.stdout).contains(program), "{}", String::from_utf8_lossy(&loaded.stdout));

        let pages = dir.path().join(format!("{program}-man"));
        let written = Command::new(bin(program)).arg("man").arg(&pages).output().unwrap();
        assert!(written.status.success(), "{program} man: {}", String::from_utf8_lossy(&written.stderr));
        let listed: Vec<String> = String::from_utf8_lossy(&written.stdout).lines().map(str::to_owned).collect();
        let expected = if program == "sshca" {
            ["sshca.1", "sshca-renew-host.1", "sshca-approve.1"]
        } else {
            ["get_key.1", "get_key-request.1", "get_key-status.1"]
        };
        for page in expected {
            assert!(listed.iter().any(|path| path.ends_with(page)), "{page} among {listed:?}");
        }
        for page in &listed {
            let rendered = Command::new("man").arg("-l").arg(page).env("MANPAGER", "cat").env("MANWIDTH", "100").output().unwrap();
            assert!(
                rendered.status.success() && rendered.stdout.len() > 200,
                "man -l {page}: {}",
                String::from_utf8_lossy(&rendered.stderr)
            );
        }
    }
}

#[test]
fn every_subcommand_shows_an_example() {
    for (program, subcommands) in [
        (
            "sshca",
            &[
                "init",
                "sign",
                "show-policy",
                "doctor",
                "metrics",
                "ca-key",
                "config",
                "renew-host",
                "rotate",
                "revoke",
                "krl",
                "audit",
                "verify",
                "show",
                "certs",
                "requests",
                "approve",
                "deny",
                "completions",
                "man",
            ][..],
        ),
        ("get_key", &["request", "ensure", "status", "logout", "completions", "man"][..]),
    ] {
        let help = Command::new(bin(program)).arg("--help").output().unwrap();
        let listed = String::from_utf8_lossy(&help.stdout).into_owned();
        for subcommand in subcommands {
            assert!(listed.contains(&format!("  {subcommand} ")), "{program} --help lists {subcommand}: {listed}");
            let output = Command::new(bin(program)).args([subcommand, "--help"]).output().unwrap();
            let text = String::from_utf8_lossy(&output.stdout);
            // the usage line names the command too: the example line itself must
            let example = text.lines().find(|line| line.starts_with("Example: ")).unwrap_or_default();
            assert!(example.contains(&format!("{program} {subcommand}")), "{program} {subcommand} --help: {text}");
        }
    }
}
