use anyhow::Context;
use clap::Parser;
use otsd::audit::{self, LogSource, SeqFilter};
use otsd::cli::{
    InspectArgs, OtsctlArgs, OtsctlCommand, ProveHeadArgs, ReadmitArgs, RecoverArgs, ReplayArgs,
    ShipArgs, VerifyArgs,
};
use otsd::log::Progress;
use otsd::replica;

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
        OtsctlCommand::Verify(a) => verify(a)?,
        OtsctlCommand::Inspect(a) => inspect(a)?,
        OtsctlCommand::Replay(a) => replay(a)?,
        OtsctlCommand::Ship(a) => ship(a)?,
        OtsctlCommand::Recover(a) => recover(a)?,
        OtsctlCommand::Readmit(a) => readmit(a)?,
        OtsctlCommand::ProveHead(a) => prove_head(a)?,
    }
    Ok(())
}

fn print_progress(p: &Progress) {
    eprintln!(
        "... {} events (seq {}) in {:.1}s, {:.0} events/s",
        p.events,
        p.seq,
        p.elapsed.as_secs_f64(),
        p.rate()
    );
}

fn verify(a: VerifyArgs) -> anyhow::Result<()> {
    let source = LogSource::open(&a.dir, !a.no_key).context("open the calendar")?;
    let node = match &a.btc_rpc {
        Some(url) => Some(audit::node::Node::connect(
            url,
            a.btc_rpc_cookie.as_deref(),
        )?),
        None => None,
    };
    let range = SeqFilter::new(a.from, a.to);
    let report =
        audit::verify::verify_with_node(&source, range, node.as_ref(), &mut print_progress)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", audit::verify::render(&report));
    }
    if !report.is_clean() {
        std::process::exit(1);
    }
    Ok(())
}

fn inspect(a: InspectArgs) -> anyhow::Result<()> {
    let source = LogSource::open(&a.dir, true).context("open the calendar")?;
    let target = match (&a.commitment, &a.digest) {
        (Some(c), _) => Some(audit::inspect::Target::Commitment(audit::parse_hex(c)?)),
        (_, Some(d)) => Some(audit::inspect::Target::Digest(audit::parse_hex(d)?)),
        _ => None,
    };
    if let Some(target) = target {
        let loc = audit::inspect::locate(&source, &target)?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&loc)?);
        } else {
            print!("{}", audit::inspect::render_location(&loc));
        }
        if !loc.found {
            std::process::exit(1);
        }
        return Ok(());
    }
    let filter = audit::inspect::Filter {
        range: SeqFilter::new(a.from, a.to),
        event_type: a.event_type,
    };
    audit::inspect::dump(&source, &filter, |seq, event| {
        if a.json {
            println!("{}", audit::inspect::event_json(seq, event));
        } else {
            println!("{}", audit::inspect::event_line(seq, event));
        }
    })?;
    Ok(())
}

fn replay(a: ReplayArgs) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let output = match (&a.out, a.dry_run) {
        (_, true) => audit::replay::Output::Nowhere,
        (Some(dir), false) => audit::replay::Output::Into(dir.clone()),
        (None, false) => audit::replay::Output::InPlace,
    };
    let bar = (!a.no_bar && std::io::stderr().is_terminal())
        .then(|| audit::replay::log_events(&a.dir))
        .transpose()?
        .map(|total| {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} events, {per_sec}, eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
    let mut sink = |p: &Progress| match &bar {
        Some(bar) => bar.set_position(p.seq + 1),
        None => print_progress(p),
    };
    let result = audit::replay::replay(&a.dir, &output, a.btc_min_confirmations, &mut sink);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let (_, summary) = result?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", audit::replay::render(&summary));
    }
    Ok(())
}

fn ship(a: ShipArgs) -> anyhow::Result<()> {
    let report = replica::ship::ship(&a.dir, &a.to).context("ship the log")?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", replica::ship::render(&report));
    }
    Ok(())
}

fn recover(a: RecoverArgs) -> anyhow::Result<()> {
    let from = replica::mirror::Replica::parse(&a.from);
    let opts = replica::recover::Options { dry_run: a.dry_run };
    let report = replica::recover::recover(&a.dir, &from, opts, &mut print_progress)
        .context("recover the log")?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", replica::recover::render(&report));
    }
    if !report.is_clean() {
        std::process::exit(2);
    }
    Ok(())
}

fn readmit(a: ReadmitArgs) -> anyhow::Result<()> {
    let report = replica::readmit::readmit(&a.dir, &a.files, a.dry_run, &mut print_progress)
        .context("readmit")?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", replica::readmit::render(&report));
    }
    if !report.is_clean() {
        std::process::exit(1);
    }
    Ok(())
}

fn prove_head(a: ProveHeadArgs) -> anyhow::Result<()> {
    let source = LogSource::open(&a.dir, false).context("open the calendar")?;
    let proof = audit::prove_head::prove_head(&source, a.seq, &mut print_progress)?;
    let out = a
        .output
        .unwrap_or_else(|| format!("log-head-{}.ots", proof.next_seq).into());
    std::fs::write(&out, &proof.ots).with_context(|| format!("write {}", out.display()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&proof)?);
    } else {
        print!(
            "{}",
            audit::prove_head::render(&proof, &out.display().to_string())
        );
    }
    Ok(())
}
