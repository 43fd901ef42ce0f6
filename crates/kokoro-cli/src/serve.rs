//! `kokoro serve`: the OpenAI-compatible speech server (kokoro-server) on this machine's engine.
//!
//! It listens at once and answers `/health/live`; `/health/ready` says 503 until the weights are
//! loaded and the configured voices are pre-warmed. SIGTERM (or Ctrl-C) drains: readiness and new
//! requests answer 503 while the requests in flight finish, for at most `--grace-secs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use kokoro_engine::Scheduler;
use kokoro_server::{AppState, ServerConfig};

use crate::device::DeviceChoice;
use crate::fetch::Cache;
use crate::voices::VoiceSource;

/// Where the server's configuration comes from.
#[derive(Args, Debug, Clone)]
pub struct ConfigArgs {
    /// TOML configuration file (every key optional; see docs/server.md).
    #[arg(long)]
    config: Option<PathBuf>,
    /// A built-in profile laid under the file: cpu, gpu, edge (a small machine) or dev.
    #[arg(long)]
    profile: Option<String>,
}

impl ConfigArgs {
    /// Defaults, then the profile, then the file, then `KOKORO_<SECTION>__<KEY>` variables.
    pub fn load(&self) -> Result<ServerConfig> {
        Ok(ServerConfig::load(self.config.as_deref(), self.profile.as_deref(), std::env::vars())?)
    }
}

/// `kokoro config check | print`.
#[derive(clap::Subcommand, Debug)]
pub enum ConfigCommand {
    /// Load and check the configuration; print what is wrong (key, value, rule), or `ok`.
    Check(ConfigArgs),
    /// Print the effective configuration (every layer applied) as TOML.
    Print(ConfigArgs),
}

pub fn config(command: ConfigCommand) -> Result<()> {
    match command {
        ConfigCommand::Check(args) => {
            args.load()?;
            println!("ok");
        }
        ConfigCommand::Print(args) => print!("{}", args.load()?.to_toml()),
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Address to listen on (overrides the file's `listen`; default 127.0.0.1:8880).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Backend.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// Weights to load (default: the cached canonical file, fetched if missing).
    #[arg(long)]
    weights: Option<PathBuf>,
    #[command(flatten)]
    voice_source: VoiceSource,
    /// Longest the requests in flight may take to finish after SIGTERM, in seconds.
    #[arg(long, default_value_t = 30)]
    grace_secs: u64,
    /// Log lines as JSON (one object per line) instead of text.
    #[arg(long)]
    log_json: bool,
}

pub fn serve(cache: &Cache, args: ServeArgs) -> Result<()> {
    let mut config = args.config.load()?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    init_logs(args.log_json);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("listening on {}", config.listen))?;
        let address = listener.local_addr()?;
        tracing::info!(%address, "listening; loading the model");
        let app = AppState::starting(config.clone());
        // Load in the background: health checks are answered meanwhile.
        let loading = {
            let (app, cache) = (app.clone(), cache.clone());
            tokio::task::spawn_blocking(move || -> Result<_> {
                let (engine, load) = crate::load::engine(&cache, args.weights.as_ref(), args.device, &args.voice_source)?;
                tracing::info!(backend = engine.backend().as_str(), seconds = load.as_secs_f64(), "weights loaded");
                let engine = Arc::new(engine);
                let usage = crate::load::save_usage(&cache, &engine);
                app.set_synthesizer(Arc::new(Scheduler::new(engine, config.engine.clone())));
                app.run_prewarm();
                Ok(usage)
            })
        };
        let server = tokio::spawn(kokoro_server::serve(listener, app.clone(), shutdown_signal(), Duration::from_secs(args.grace_secs)));
        // A load failure (weights missing, device gone) ends the process with its error.
        // Voice usage is saved every 30 s and, when this is dropped after the server stops, at exit.
        let usage = loading.await.context("the loader stopped")??;
        server.await.context("the server task stopped")?.context("serving")?;
        drop(usage);
        tracing::info!("stopped");
        Ok(())
    })
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KOKORO_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown signal");
}
