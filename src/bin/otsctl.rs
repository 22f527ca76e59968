use anyhow::Context;
use clap::Parser;
use otsd::cli::{OtsctlArgs, OtsctlCommand};

fn main() -> anyhow::Result<()> {
    let args = OtsctlArgs::parse();
    otsd::telemetry::init(0, None).context("logging")?;
    match args.command {
        OtsctlCommand::Init(a) => {
            let dir = otsd::calendar::dir::CalendarDir::init(&a.dir, &a.uri, &a.donation_addr)?;
            println!(
                "created calendar {} (uri {}); start it with: otsd -c {}",
                dir.path.display(),
                dir.uri,
                dir.path.display()
            );
        }
        OtsctlCommand::Address(a) => {
            let dir = otsd::calendar::dir::CalendarDir::load(&a.dir)?;
            println!(
                "{}",
                otsd::stamper::key::funding_address(&dir, a.network())?
            );
        }
    }
    Ok(())
}
