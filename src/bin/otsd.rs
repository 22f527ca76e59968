use anyhow::Context;
use clap::Parser;
use otsd::cli::OtsdArgs;
use otsd::config;
use std::time::Duration;

fn main() -> anyhow::Result<()> {
    let args = OtsdArgs::parse();
    otsd::telemetry::init(args.verbosity(), args.debug_file.as_deref())
        .context("opening --debug-file")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    if args.dev {
        let interval = Duration::from_millis(args.dev_block_interval_ms);
        let config =
            |dir, port, node_url: &str| config::dev_serve_config(&args, dir, port, node_url);
        return runtime
            .block_on(otsd::dev::run(args.rpc_port, interval, config))
            .context("otsd --dev");
    }
    runtime.block_on(async {
        let running =
            otsd::server::start(config::serve_config(&args), otsd::server::shutdown_signal())
                .await?;
        running.done.await.context("otsd main task")??;
        Ok(())
    })
}
