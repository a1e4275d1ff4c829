//! Completions and man pages, generated from the clap definitions: the bash completion script
//! loads (`complete -p` names it), and every man page renders with `man -l`.

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
