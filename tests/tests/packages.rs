//! The packages as a user gets them. `scripts/package.sh` (scripts/test.sh runs it, with the dev
//! profile, before the tests) leaves in `SSHCA_DIST` the two .debs, the two tarballs, the Lambda
//! zip and `SHA256SUMS`. This test checks the sums and lintian's verdict, installs the .debs with
//! `dpkg -i` on this machine, and runs what they installed as a server, an engineer and a shell
//! would: `sshca doctor` on a real sshd's configuration, `get_key` on a real presigned link,
//! `get_key request` through the Lambda zip's own `bootstrap` and a real ssh login with what it
//! got, bash completion, man pages, and systemd-analyze on the units. `dpkg -r` must then leave
//! nothing behind but the configuration the admin wrote.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use sshca_tests::fleet::{Server, ENV};
use sshca_tests::identities::Identity;
use sshca_tests::*;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const PACKAGES: [&str; 2] = ["sshca", "get-key"];
/// Where the admin puts a unit's settings: theirs, not the package's.
const ADMIN_CONFIG: &str = "/etc/sshca/krl.env";

/// The artifacts directory: `SSHCA_DIST`, or `target/dist`.
fn dist() -> PathBuf {
    let dir = std::env::var_os("SSHCA_DIST").map_or_else(|| workspace_root().join("target/dist"), PathBuf::from);
    assert!(
        dir.join("SHA256SUMS").exists(),
        "no packages in {0}: run `scripts/package.sh --profile dev --out {0}` (scripts/test.sh does)",
        dir.display()
    );
    dir
}

/// Runs `command`, panicking with its output unless it succeeds; returns its stdout.
fn run(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|err| panic!("{command:?}: {err}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{command:?} failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// dpkg's state of `package` (`ii`: installed, `rc`: removed with its configuration left, …),
/// or `None` where dpkg knows nothing of it.
fn state(package: &str) -> Option<String> {
    let output = Command::new("dpkg-query").args(["-W", "-f=${db:Status-Abbrev}", package]).output().expect("dpkg-query");
    let state = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    (output.status.success() && !state.is_empty() && !state.starts_with("un")).then_some(state)
}

/// Everything under `dir`, recursively (files, links and directories).
fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.map(Result::unwrap) {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                found.extend(tree(&path));
            }
            found.insert(path);
        }
    }
    found
}

/// The two packages on this machine, purged again if the test stops half-way (a failed
/// `dpkg -i` included).
struct Installed;

impl Installed {
    fn install(debs: &[PathBuf]) -> Self {
        assert_eq!(run(Command::new("id").arg("-u")).trim(), "0", "dpkg -i needs root: run the package test as root (CI does)");
        for package in PACKAGES {
            assert_eq!(
                state(package),
                None,
                "{package} is on this machine: `dpkg --purge {package}` first (this test installs its own build)"
            );
        }
        let installed = Installed;
        run(Command::new("dpkg").arg("-i").args(debs));
        installed
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        if PACKAGES.iter().any(|package| state(package).is_some()) {
            let _ = Command::new("dpkg").arg("--purge").args(PACKAGES).status();
        }
    }
}

/// What is in the directories packages install into.
fn system_files() -> BTreeSet<PathBuf> {
    ["/etc", "/usr"].iter().flat_map(|dir| tree(Path::new(dir))).collect()
}

/// The settings an admin writes for the KRL unit (theirs, not the packages'); removed on drop.
struct AdminConfig;

impl AdminConfig {
    const CONTENT: &'static str = "SSHCA_ENVIRONMENT=staging\n";

    fn write() -> Self {
        std::fs::create_dir_all(Path::new(ADMIN_CONFIG).parent().unwrap()).unwrap();
        std::fs::write(ADMIN_CONFIG, Self::CONTENT).unwrap();
        AdminConfig
    }
}

impl Drop for AdminConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(ADMIN_CONFIG);
        let _ = std::fs::remove_dir(Path::new(ADMIN_CONFIG).parent().unwrap());
    }
}

#[test]
fn packages_install_work_and_remove_cleanly() {
    let dist = dist();
    let sshca_deb = dist.join(format!("sshca_{VERSION}-1_amd64.deb"));
    let get_key_deb = dist.join(format!("get-key_{VERSION}-1_amd64.deb"));
    let artifacts = [
        format!("sshca_{VERSION}-1_amd64.deb"),
        format!("get-key_{VERSION}-1_amd64.deb"),
        format!("sshca-{VERSION}-x86_64-linux.tar.gz"),
        format!("get-key-{VERSION}-x86_64-linux.tar.gz"),
        format!("sign_key-{VERSION}-x86_64-lambda.zip"),
    ];
    let sums = run(Command::new("sha256sum").args(["-c", "SHA256SUMS"]).current_dir(&dist));
    for artifact in &artifacts {
        assert!(sums.contains(&format!("{artifact}: OK")), "SHA256SUMS covers {artifact}: {sums}");
    }

    // lintian: no error, no warning
    let lintian = Command::new("lintian").args(["--fail-on", "error,warning"]).arg(&sshca_deb).arg(&get_key_deb).output().unwrap();
    let verdict = String::from_utf8_lossy(&lintian.stdout);
    assert!(lintian.status.success(), "lintian: {verdict}{}", String::from_utf8_lossy(&lintian.stderr));
    assert!(!verdict.lines().any(|line| line.starts_with("E:") || line.starts_with("W:")), "lintian: {verdict}");
    let field = |deb: &Path, name: &str| run(Command::new("dpkg-deb").arg("-f").arg(deb).arg(name));
    assert!(field(&get_key_deb, "Depends").contains("openssh-client"), "get_key runs ssh-keygen and ssh-add");
    assert!(field(&sshca_deb, "Recommends").contains("openssh-server"), "sshca doctor reads sshd's configuration");

    // the tarballs: the same programs, for machines without dpkg
    let sshca_tarball = run(Command::new("tar").arg("-tzf").arg(dist.join(&artifacts[2])));
    let root = format!("sshca-{VERSION}-x86_64-linux/");
    for file in ["bin/sshca", "systemd/sshca-krl.timer", "prometheus/sshca.rules.yml", "completions/sshca.bash", "man/sshca-doctor.1.gz"] {
        assert!(sshca_tarball.lines().any(|line| line == format!("{root}{file}")), "{file} in {sshca_tarball}");
    }
    let unpacked = tempfile::tempdir().unwrap();
    run(Command::new("tar").arg("-xzf").arg(dist.join(&artifacts[3])).arg("-C").arg(unpacked.path()));
    let get_key_bin = unpacked.path().join(format!("get-key-{VERSION}-x86_64-linux/bin"));
    assert!(run(Command::new(get_key_bin.join("get_key")).arg("--help")).contains("get_key"));
    assert!(get_key_bin.join("get_key-request").exists());

    // the Lambda zip: a `bootstrap`, as provided.al2023 runs it
    run(Command::new("unzip").arg("-q").arg(dist.join(&artifacts[4])).arg("-d").arg(unpacked.path()));
    let bootstrap = unpacked.path().join("bootstrap");
    assert!(std::fs::metadata(&bootstrap).unwrap().permissions().mode() & 0o111 != 0, "bootstrap is executable");

    // the units come with Debian's systemd handling in sshca's maintainer scripts; get-key has none
    let (sshca_info, get_key_info) =
        (run(Command::new("dpkg-deb").arg("-I").arg(&sshca_deb)), run(Command::new("dpkg-deb").arg("-I").arg(&get_key_deb)));
    assert!(sshca_info.contains("postinst") && sshca_info.contains("postrm"), "{sshca_info}");
    assert!(!get_key_info.contains("postinst"), "{get_key_info}");

    // dpkg -i: files in place, no unit enabled by itself
    assert!(!Path::new(ADMIN_CONFIG).exists(), "{ADMIN_CONFIG} exists already: this test writes it as the admin would");
    let before = system_files();
    let enabled_before = tree(Path::new("/etc/systemd/system"));
    let packages = Installed::install(&[sshca_deb.clone(), get_key_deb.clone()]);
    assert_eq!(tree(Path::new("/etc/systemd/system")), enabled_before, "installing enabled a unit");
    let listing = run(Command::new("dpkg").arg("-L").args(PACKAGES));
    let files: Vec<&Path> = listing.lines().map(Path::new).filter(|path| path.is_file()).collect();
    for expected in [
        "/usr/bin/sshca",
        "/usr/bin/get_key",
        "/usr/bin/get_key-request",
        "/usr/lib/systemd/system/sshca-krl.service",
        "/usr/lib/systemd/system/sshca-renew-host.timer",
        "/usr/share/sshca/sshca.rules.yml",
        "/usr/share/bash-completion/completions/sshca",
        "/usr/share/zsh/vendor-completions/_get_key",
        "/usr/share/fish/vendor_completions.d/sshca.fish",
        "/usr/share/man/man1/sshca-certs.1.gz",
        "/usr/share/man/man1/get_key-status.1.gz",
    ] {
        assert!(files.contains(&Path::new(expected)), "{expected} installed: {listing}");
    }
    let units: Vec<&Path> = files.iter().copied().filter(|path| path.starts_with("/usr/lib/systemd/system")).collect();
    assert_eq!(units.len(), 6, "three services and their timers: {units:?}");
    run(Command::new("systemd-analyze").arg("verify").args(&units));

    // a shell and man find what the packages installed
    let completion = run(Command::new("bash").arg("-c").arg(
        "source /usr/share/bash-completion/completions/sshca && source /usr/share/bash-completion/completions/get_key && complete -p sshca get_key",
    ));
    assert!(completion.contains("-F _sshca sshca") && completion.contains("-F _get_key get_key"), "{completion}");
    let page = run(Command::new("man").args(["-l", "/usr/share/man/man1/sshca-certs.1.gz"]).env("MANPAGER", "cat").env("COLUMNS", "100"));
    assert!(page.contains("sshca-certs") && page.contains("--active"), "{page}");

    // the installed sshca, as a server: doctor on a real sshd's configuration
    let installed_world = || World::new(S3Server::LocalStack).with_programs_in(Path::new("/usr/bin"));
    let server = Server::on(installed_world());
    let (output, report) = server.doctor(&server.config(&[]), &[]);
    assert!(output.status.success(), "the installed sshca doctor: {report}{}", String::from_utf8_lossy(&output.stderr));
    assert!(report.starts_with(&format!("sshca doctor {ENV}: healthy")), "{report}");
    let (output, report) = server.doctor(&server.config(&[("TrustedUserCAKeys", "")]), &[]);
    assert!(!output.status.success() && report.contains("TrustedUserCAKeys"), "{report}");

    // the installed get_key, as an engineer: a real presigned link from the installed sshca
    let world = &server.world;
    let ssh_dir = world.path("ssh");
    std::fs::create_dir(&ssh_dir).unwrap();
    let key = keygen(&ssh_dir, "id_ed25519_staging", "ed25519", None, "");
    let link = world.sshca_ok(&["sign", "--local", "-e", ENV, "-u", "jane", "-r", "package test", "-p", pub_path(&key).to_str().unwrap()]);
    let said = run(world.command("get_key").arg(link.trim()).arg("--ssh-dir").arg(&ssh_dir).arg("--no-agent"));
    assert!(said.contains("id_ed25519_staging-cert.pub"), "{said}");
    assert!(ssh_keygen_list(&cert_path(&key)).contains("Key ID: \"jane#"), "a certificate OpenSSH reads");

    // the packaged function, behind the Lambda emulator, serves the installed get_key request
    let world = installed_world();
    let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let alice = format!("alice-{id}");
    let rules = json!([{"match": format!("arn:aws:iam::000000000000:user/{alice}"), "grant": "user", "principals": ["{user}"]}]);
    let rules_file = world.path("rules.json");
    std::fs::write(&rules_file, rules.to_string()).unwrap();
    let user_ca =
        world.init(ENV, &["--principals", "deploy", "--allowed-principals", "deploy,alice-*", "--rules", rules_file.to_str().unwrap()]);
    let lambda = LambdaEmulator::start_binary(&bootstrap, &world.env());
    let ssh_dir = world.path("alice-ssh");
    std::fs::create_dir(&ssh_dir).unwrap();
    let mut request = world.command("get_key");
    Identity::iam_user(&alice)
        .apply(&mut request)
        .env("AWS_ENDPOINT_URL_LAMBDA", lambda.endpoint())
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let audience = default_audience(&world, ENV);
    run(request.args(["request", "-e", ENV, "--create-key", "--no-agent", "--audience", &audience, "--ssh-dir"]).arg(&ssh_dir));
    let sshd = Sshd::start(&user_ca, &[&alice], "");
    assert!(sshd.login_with(&ssh_dir.join("id_ed25519_staging")), "the self-served certificate: {}", sshd.log());

    // the admin's configuration: the KRL unit's settings, and its timer enabled
    let admin_config = AdminConfig::write();
    let enabled = Path::new("/etc/systemd/system/timers.target.wants/sshca-krl.timer");
    run(Command::new("systemctl").args(["enable", "sshca-krl.timer"]));
    assert!(enabled.is_symlink(), "systemctl enable linked {}", enabled.display());

    // dpkg -r: nothing of the packages left, nothing of the machine's touched; what the admin
    // made stays (their file, their enabling), and dpkg --purge forgets the enabling too
    run(Command::new("dpkg").arg("-r").args(PACKAGES));
    assert!(PACKAGES.iter().all(|package| state(package).is_none_or(|state| state.starts_with('r'))), "removed");
    let admins: BTreeSet<PathBuf> =
        [Path::new(ADMIN_CONFIG), Path::new(ADMIN_CONFIG).parent().unwrap(), enabled, enabled.parent().unwrap()]
            .iter()
            .map(|path| path.to_path_buf())
            .collect();
    let after = system_files();
    // …and, as for any Debian package's units until it is purged, the timers masked (links to
    // /dev/null: an enabled timer must not fire a program that is gone)
    let masked = |path: &Path| {
        path.parent() == Some(Path::new("/etc/systemd/system")) && std::fs::read_link(path).is_ok_and(|to| to == Path::new("/dev/null"))
    };
    let added: Vec<&PathBuf> = after.difference(&before).filter(|path| !admins.contains(*path) && !masked(path)).collect();
    assert!(added.is_empty(), "dpkg -r left {added:?}");
    assert!(masked(Path::new("/etc/systemd/system/sshca-krl.timer")), "the enabled timer is masked while its program is gone");
    let lost: Vec<&PathBuf> = before.difference(&after).collect();
    assert!(lost.is_empty(), "installing and removing took {lost:?} from the machine");
    assert!(enabled.is_symlink(), "removing is not purging: the admin's enabling stays");
    assert_eq!(std::fs::read_to_string(ADMIN_CONFIG).unwrap(), AdminConfig::CONTENT, "the admin's configuration stays");
    run(Command::new("dpkg").arg("--purge").args(PACKAGES));
    assert!(PACKAGES.iter().all(|package| state(package).is_none()), "purged");
    assert!(!enabled.is_symlink(), "dpkg --purge forgets the enabling");
    let purged: Vec<PathBuf> = system_files().difference(&before).cloned().collect();
    assert_eq!(
        purged,
        [Path::new(ADMIN_CONFIG).parent().unwrap().to_path_buf(), PathBuf::from(ADMIN_CONFIG)],
        "only the admin's file is left"
    );
    drop(admin_config);
    drop(packages);
}
