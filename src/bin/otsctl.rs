use anyhow::Context;
use clap::Parser;
use otsd::cli::OtsctlArgs;

fn main() -> anyhow::Result<()> {
    let args = OtsctlArgs::parse();
    otsd::telemetry::init(0, None).context("logging")?;
    let report = otsd::ctl::run(args.command)?;
    print!("{}", report.stdout);
    if report.exit_code != 0 {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        std::process::exit(report.exit_code);
    }
    Ok(())
}
