//! `sshca metrics`: sshd's login counts and the host certificate's and KRL's ages, in the
//! Prometheus text format for node_exporter's textfile collector (run by a timer every minute).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use sshca_core::time::unix_now;
use sshca_fleet::metrics::{self, Paths};
use sshca_fleet::sshd::EffectiveConfig;

#[derive(Args)]
pub struct MetricsArgs {
    /// sshd's log (LogLevel VERBOSE), read from where the last run stopped; `-`: the new lines on
    /// standard input, e.g. from `journalctl -u ssh -o cat --cursor-file=FILE`.
    #[arg(long, default_value = "/var/log/auth.log")]
    log: PathBuf,
    /// Where node_exporter's textfile collector reads (replaced atomically).
    #[arg(short, long, default_value = "/var/lib/prometheus/node-exporter/sshca.prom")]
    output: PathBuf,
    /// The cursor and counters between runs [default: <output>.state].
    #[arg(long)]
    state: Option<PathBuf>,
    /// The host certificate and KRL come from this server's effective configuration (`sshd -T`).
    #[arg(long, default_value = "/etc/ssh/sshd_config")]
    sshd_config: PathBuf,
    #[arg(long, default_value = "/usr/sbin/sshd")]
    sshd: PathBuf,
}

pub fn metrics(args: MetricsArgs) -> Result<()> {
    let config = EffectiveConfig::read(&args.sshd, &args.sshd_config).map_err(anyhow::Error::msg)?;
    let state = args.state.unwrap_or_else(|| PathBuf::from(format!("{}.state", args.output.display())));
    let log = (args.log.as_os_str() != "-").then_some(args.log);
    let paths = Paths { log, output: args.output, state };
    let run = metrics::update(&paths, Some(&config), unix_now()).map_err(anyhow::Error::msg)?;
    eprintln!("{} new log line(s), {} login(s) counted; wrote {}", run.new_lines, run.counted, paths.output.display());
    Ok(())
}
