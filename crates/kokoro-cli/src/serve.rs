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
    /// Print the configuration's JSON Schema.
    Schema,
    /// Print docs/configuration.md (every key, its type, default and meaning).
    Docs,
}

pub fn config(command: ConfigCommand) -> Result<()> {
    match command {
        ConfigCommand::Check(args) => {
            args.load()?;
            println!("ok");
        }
        ConfigCommand::Print(args) => print!("{}", args.load()?.to_toml()),
        ConfigCommand::Schema => println!("{}", serde_json::to_string_pretty(&kokoro_server::config::schema())?),
        ConfigCommand::Docs => print!("{}", kokoro_server::config::docs_markdown()),
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
    let listen = args.listen;
    let load_config = {
        let config_args = args.config.clone();
        let log_json = args.log_json;
        let jobs_dir = cache.root.join("jobs");
        move || -> Result<ServerConfig, kokoro_server::ConfigError> {
            let mut config = ServerConfig::load(config_args.config.as_deref(), config_args.profile.as_deref(), std::env::vars())?;
            if let Some(listen) = listen {
                config.listen = listen;
            }
            // Jobs live in the cache unless the configuration puts them elsewhere.
            config.jobs.dir.get_or_insert_with(|| jobs_dir.clone());
            if log_json {
                config.log.format = kokoro_server::config::LogFormat::Json;
            }
            Ok(config)
        }
    };
    let config = load_config()?;
    // KOKORO_LOG, when set, wins over the configured level at start.
    let level = std::env::var("KOKORO_LOG").ok().filter(|l| !l.trim().is_empty());
    let log = kokoro_server::logging::init(&config.log, level.as_deref()).map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("listening on {}", config.listen))?;
        let address = listener.local_addr()?;
        tracing::info!(%address, "listening; loading the model");
        let app = AppState::starting(config.clone());
        app.set_log_handle(log);
        app.set_reloader(Box::new(load_config));
        app.start_jobs().context("starting the jobs")?;
        tokio::spawn(reload_on_sighup(app.clone()));
        if let Some(path) = args.config.config.clone() {
            tokio::spawn(kokoro_server::watch_config(app.clone(), path));
        }
        // Load in the background: health checks are answered meanwhile.
        let loading = {
            let (app, cache) = (app.clone(), cache.clone());
            tokio::task::spawn_blocking(move || -> Result<_> {
                let (engine, load) = crate::load::engine(&cache, args.weights.as_ref(), args.device, config.engine.precision, &args.voice_source)?;
                tracing::info!(backend = engine.backend().as_str(), seconds = load.as_secs_f64(), "weights loaded");
                engine.voice_cache().resize(config.voices.cache_bytes);
                let engine = Arc::new(engine);
                let usage = crate::load::save_usage(&cache, &engine);
                app.set_synthesizer(Arc::new(Scheduler::with_observer(engine, config.engine.clone(), app.metrics.clone())));
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

/// SIGHUP reads the configuration again and applies what can change live (an invalid file is
/// refused and logged; the old configuration stays).
async fn reload_on_sighup(app: Arc<AppState>) {
    #[cfg(unix)]
    {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the configuration");
            let app = app.clone();
            // Errors are logged by reload itself.
            let _ = tokio::task::spawn_blocking(move || app.reload()).await;
        }
    }
    #[cfg(not(unix))]
    let _ = app;
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
