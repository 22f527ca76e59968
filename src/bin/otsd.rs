use anyhow::Context;
use clap::Parser;
use otsd::cli::OtsdArgs;
use otsd::config;

fn main() -> anyhow::Result<()> {
    let args = OtsdArgs::parse();
    otsd::sync::abort_on_panic();
    otsd::telemetry::init_with(
        args.verbosity(),
        config::debug_file(&args).as_ref(),
        args.log_json,
    )
    .context("opening --debug-file")?;
    otsd::failpoint::check().map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    if args.dev {
        return runtime
            .block_on(otsd::daemon::dev::run(
                args.rpc_port,
                args.dev_block_interval_ms,
                |dir, port, node_url| config::dev_serve_config(&args, dir, port, node_url),
            ))
            .context("otsd --dev");
    }
    let cfg = config::serve_config(&args)
        .context("finding the Bitcoin node (give --btc-rpc, or --intake-only not to stamp)")?;
    let result = runtime.block_on(async {
        let running = otsd::daemon::start(cfg, otsd::daemon::shutdown_signal()).await?;
        running.done.await.context("otsd main task")??;
        Ok(())
    });
    // The log is closed by now. A stamper RPC cancelled at shutdown may still block a thread until
    // its --btc-rpc-timeout; do not wait for it (dropping the runtime would).
    runtime.shutdown_timeout(otsd::daemon::RUNTIME_STOP_GRACE);
    result
}
