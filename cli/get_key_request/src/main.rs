//! `get_key-request`: the part of `get_key` that asks `sign_key` for a certificate with the
//! user's AWS identity (`get_key request`, and `get_key ensure` when a certificate is due). It
//! takes `get_key`'s command line, which `get_key` hands it.

use std::process::exit;

use clap::Parser;
use get_key::cli::{Cli, Command};

mod request;

fn main() {
    let cli = Cli::parse();
    let args = match &cli.command {
        Some(Command::Request(args)) => args,
        Some(Command::Ensure(ensure)) => &ensure.request,
        _ => {
            eprintln!("get_key-request: run it as `get_key request …` or `get_key ensure …`");
            exit(2)
        }
    };
    let outcome = request::request(&cli.ask(args), &cli.options(String::new(), None));
    exit(cli.report(outcome))
}
