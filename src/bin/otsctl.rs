use anyhow::Context;
use clap::Parser;
use otsd::cli::{
    ImportOtsdArgs, InspectArgs, OtsctlArgs, OtsctlCommand, ProveHeadArgs, ReadmitArgs,
    RecoverArgs, ReplayArgs, ShipArgs, VerifyArgs,
};
use otsd::ctl::{self, LogSource, Progress, SeqRange};

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
        OtsctlCommand::ImportOtsd(a) => import_otsd(a)?,
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
        Some(url) => Some(ctl::node::Node::connect(url, a.btc_rpc_cookie.as_deref())?),
        None => None,
    };
    let range = SeqRange::new(a.from, a.to);
    let report = ctl::verify::verify_with_node(&source, range, node.as_ref(), &mut print_progress)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", ctl::verify::render(&report));
    }
    if !report.is_clean() {
        std::process::exit(1);
    }
    Ok(())
}

fn inspect(a: InspectArgs) -> anyhow::Result<()> {
    let source = LogSource::open(&a.dir, true).context("open the calendar")?;
    let target = match (&a.commitment, &a.digest) {
        (Some(c), _) => Some(ctl::inspect::Target::Commitment(ctl::parse_hex(c)?)),
        (_, Some(d)) => Some(ctl::inspect::Target::Digest(ctl::parse_hex(d)?)),
        _ => None,
    };
    if let Some(target) = target {
        let loc = ctl::inspect::locate(&source, &target)?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&loc)?);
        } else {
            print!("{}", ctl::inspect::render_location(&loc));
        }
        if !loc.found {
            std::process::exit(1);
        }
        return Ok(());
    }
    let filter = ctl::inspect::Filter {
        range: SeqRange::new(a.from, a.to),
        event_type: a.event_type,
    };
    ctl::inspect::dump(&source, &filter, |seq, event| {
        if a.json {
            println!("{}", ctl::inspect::event_json(seq, event));
        } else {
            println!("{}", ctl::inspect::event_line(seq, event));
        }
    })?;
    Ok(())
}

fn replay(a: ReplayArgs) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let output = match (&a.out, a.dry_run) {
        (_, true) => ctl::replay::Output::Nowhere,
        (Some(dir), false) => ctl::replay::Output::Into(dir.clone()),
        (None, false) => ctl::replay::Output::InPlace,
    };
    let bar = (!a.no_bar && std::io::stderr().is_terminal())
        .then(|| ctl::replay::log_events(&a.dir))
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
    let result = ctl::replay::replay(&a.dir, &output, a.btc_min_confirmations, &mut sink);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let (_, summary) = result?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", ctl::replay::render(&summary));
    }
    Ok(())
}

fn ship(a: ShipArgs) -> anyhow::Result<()> {
    let report = ctl::ship::ship(&a.dir, &a.to).context("ship the log")?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", ctl::ship::render(&report));
    }
    Ok(())
}

fn recover(a: RecoverArgs) -> anyhow::Result<()> {
    let replica = ctl::replica::Replica::parse(&a.from);
    let opts = ctl::recover::Options { dry_run: a.dry_run };
    let report = ctl::recover::recover(&a.dir, &replica, opts, &mut print_progress)
        .context("recover the log")?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", ctl::recover::render(&report));
    }
    if !report.is_clean() {
        std::process::exit(2);
    }
    Ok(())
}

fn readmit(a: ReadmitArgs) -> anyhow::Result<()> {
    let report = ctl::readmit::readmit(&a.dir, &a.files, a.dry_run, &mut print_progress)
        .context("readmit")?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", ctl::readmit::render(&report));
    }
    if !report.is_clean() {
        std::process::exit(1);
    }
    Ok(())
}

fn prove_head(a: ProveHeadArgs) -> anyhow::Result<()> {
    let source = LogSource::open(&a.dir, false).context("open the calendar")?;
    let proof = ctl::prove_head::prove_head(&source, a.seq, &mut print_progress)?;
    let out = a
        .output
        .unwrap_or_else(|| format!("log-head-{}.ots", proof.next_seq).into());
    std::fs::write(&out, &proof.ots).with_context(|| format!("write {}", out.display()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&proof)?);
    } else {
        print!(
            "{}",
            ctl::prove_head::render(&proof, &out.display().to_string())
        );
    }
    Ok(())
}

fn import_otsd(a: ImportOtsdArgs) -> anyhow::Result<()> {
    let mut progress = |p: otsd::pycal::importer::ImportProgress| match p.total {
        0 => eprintln!("... {}", p.phase),
        total => eprintln!(
            "... {}: {} of {} journal records ({:.0}%)",
            p.phase,
            p.done,
            total,
            100.0 * p.done as f64 / total as f64
        ),
    };
    let report = otsd::pycal::importer::import_otsd(&a.python_calendar_dir, &a.dir, &mut progress)
        .context("import-otsd")?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", otsd::pycal::importer::render(&report));
    }
    Ok(())
}
