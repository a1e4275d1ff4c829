//! `sshca verify ENV`: checks the CA's books (certificates, records, serials, leases, counter,
//! KRL, CA keys, overwritten or deleted records), by hand or from a timer. Exit 0 only when
//! nothing is found.

use anyhow::Result;
use clap::Args;
use sign_key::Issuer;

#[derive(Args)]
pub struct VerifyArgs {
    environment: String,
    #[arg(long)]
    json: bool,
}

pub async fn verify(issuer: &Issuer, args: VerifyArgs) -> Result<()> {
    let (summary, findings) = sign_key::books::verify(issuer, &args.environment).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"summary": summary, "findings": findings}))?);
    } else {
        println!(
            "sshca verify {}: {} issued, {} void, {} certificate objects, {} leases ({} unused serials): {}",
            args.environment,
            summary.issued,
            summary.void,
            summary.certificates,
            summary.leases,
            summary.gaps,
            if findings.is_empty() { "nothing wrong".to_owned() } else { format!("{} finding(s)", findings.len()) }
        );
        for finding in &findings {
            println!("  {:<28} {}", finding.check, finding.what);
        }
    }
    if !findings.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
