//! `get_key`: install an SSH certificate next to its key from a download link (`get_key '<url>'`),
//! or check the installed one (`get_key ensure`, run by ssh's `Match exec`). Asking the function
//! for a certificate (`request`, or `ensure` when one is due) is `get_key-request`'s job: it holds
//! the AWS SDK, which this program then does not load.

use std::os::unix::process::CommandExt;
use std::process::{exit, Command};

use clap::{CommandFactory, Parser};
use get_key::cli::{Cli, Command as Subcommand};

fn main() {
    let cli = Cli::parse();
    match &cli.command {
        None => exit(cli.report(get_key::run(&cli.options(cli.url.clone().unwrap_or_default(), cli.install.key.clone())))),
        Some(Subcommand::Ensure(args)) => {
            let ask = cli.ask(&args.request);
            let options = cli.options(String::new(), None);
            let trusted = get_key::verify::trusted_fingerprints(&options.ca_keys, &options.ca_fingerprints, options.pin_file.as_deref());
            let why = match &trusted {
                Ok(trusted) => get_key::ensure::still_valid(&ask.key, args.min_validity, trusted, get_key::unix_now()),
                Err(err) => Err(err.to_string()),
            };
            match why {
                // a good certificate, and the file RevokedHostKeys names (ssh refuses every host without it)
                Ok(()) if get_key::host_krl::ensure_exists(&get_key::host_krl::path(&ask.key, &ask.environment)).is_ok() => exit(0),
                Ok(()) => {}
                Err(why) if !cli.install.quiet => eprintln!("get_key: {why}: asking for a new certificate"),
                Err(_) => {}
            }
            run_request()
        }
        Some(Subcommand::Request(_)) => run_request(),
        Some(Subcommand::Completions { shell }) => get_key::docs::completions(Cli::command(), *shell),
        Some(Subcommand::Man { dir }) => match get_key::docs::man_pages(Cli::command(), dir) {
            Ok(pages) => pages.iter().for_each(|page| println!("{}", page.display())),
            Err(err) => {
                eprintln!("get_key: cannot write the man pages into {}: {err}", dir.display());
                exit(1)
            }
        },
        Some(Subcommand::Status(args)) => {
            let found = get_key::status::installed(&cli.ssh_dir(), args.environment.as_deref(), args.min_validity, get_key::unix_now());
            match found {
                Ok(found) => {
                    if cli.install.json {
                        println!("{}", serde_json::to_string_pretty(&found).expect("a status serializes"));
                    } else if found.is_empty() {
                        eprintln!("get_key: no certificates installed in {}", cli.ssh_dir().display());
                    } else {
                        print!("{}", get_key::status::table(&found));
                    }
                    exit(if !found.is_empty() && found.iter().all(|c| c.state == "good") { 0 } else { 1 })
                }
                Err(why) => {
                    eprintln!("get_key: {why}");
                    exit(1)
                }
            }
        }
        Some(Subcommand::Logout(args)) => {
            let removed = get_key::status::installed(&cli.ssh_dir(), args.environment.as_deref(), 0, get_key::unix_now())
                .and_then(|found| get_key::status::logout(&found));
            match removed {
                Ok(lines) => {
                    if !cli.install.quiet {
                        lines.iter().for_each(|line| println!("{line}"));
                    }
                    exit(0)
                }
                Err(why) => {
                    eprintln!("get_key: {why}");
                    exit(1)
                }
            }
        }
    }
}

/// Hands the same command line to `get_key-request`, installed next to this program.
fn run_request() -> ! {
    let here = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|dir| dir.join("get_key-request")));
    let Some(program) = here.filter(|path| path.exists()) else {
        eprintln!("get_key: get_key-request is not installed next to get_key: install both (`cargo install --path cli/get_key && cargo install --path cli/get_key_request`)");
        exit(1)
    };
    let error = Command::new(&program).args(std::env::args_os().skip(1)).exec();
    eprintln!("get_key: cannot run {}: {error}", program.display());
    exit(1)
}
