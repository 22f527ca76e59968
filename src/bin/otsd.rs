use anyhow::Context;
use clap::Parser;
use otsd::cli::OtsdArgs;

fn main() -> anyhow::Result<()> {
    let args = OtsdArgs::parse();
    otsd::sync::abort_on_panic();
    otsd::telemetry::init(args.verbosity(), args.debug_file.as_deref())
        .context("opening --debug-file")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    if args.dev {
        return runtime
            .block_on(otsd::daemon::dev::run(
                args.rpc_port,
                args.dev_block_interval_ms,
                |dir, port, node_url| args.dev_serve_config(dir, port, node_url),
            ))
            .context("otsd --dev");
    }
    runtime.block_on(async {
        let running =
            otsd::daemon::start(args.serve_config(), otsd::daemon::shutdown_signal()).await?;
        running.done.await.context("otsd main task")??;
        Ok(())
    })
}
