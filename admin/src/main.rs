//! `ukey-admin`: parses arguments, loads the configuration, starts tracing, calls the library.

use anyhow::Context;
use clap::Parser;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;
use ukey_admin::cli::{Cli, Command, InitOptions};
use ukey_admin::clock::{Clock, SystemClock};
use ukey_admin::config::{Config, LogFormat};
use ukey_admin::service::OperatorLogin;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ukey-admin: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn start_tracing(default_level: &str, format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = if cli.config.exists() || cli.database.is_none() {
        Config::load(&cli.config, std::env::vars())?
    } else {
        // `--database` alone is enough for management commands.
        let mut config = Config::with_database("", &std::env::current_dir()?);
        config.apply_env(std::env::vars())?;
        config
    };
    if let Some(db) = &cli.database {
        config.database = db.clone();
    }
    Ok(config)
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    tracing::info!("shutdown requested");
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if let Command::Init(args) = &cli.command {
        start_tracing("warn", LogFormat::Text);
        let operator_login = match args.operator_login.as_str() {
            "token+password" => OperatorLogin::TokenAndPassword,
            "password" => OperatorLogin::Password,
            other => anyhow::bail!("--operator-login {other:?}: use token+password or password"),
        };
        let options = InitOptions {
            data_dir: args.data_dir.clone(),
            listen: args.listen,
            server_names: args.server_names.clone(),
            organization: args.organization.clone(),
            database: cli.database.clone(),
            operator_login,
        };
        let made = runtime.block_on(ukey_admin::cli::init(&options, SystemClock.now()))?;
        println!("created {}", made.config.display());
        println!(
            "\nOne-time bootstrap secrets for the three officers' first accounts. Hand each to its\n\
             officer in person. Each works once, until the time shown, and only to set a new\n\
             password; they are not stored and will not be shown again.\n"
        );
        for officer in &made.officers {
            use secrecy::ExposeSecret;
            println!(
                "  {:<10} {:<16} {}   (until {})",
                officer.username,
                officer.role.label(),
                officer.secret.expose_secret(),
                ukey_admin::clock::shanghai_rfc3339(officer.expires_at)
            );
        }
        println!(
            "\nstart the service with: ukey-admin serve --config {}",
            made.config.display()
        );
        return Ok(());
    }
    let config = load_config(&cli)?;
    if matches!(cli.command, Command::Serve) {
        start_tracing(&config.log.level, config.log.format);
        runtime.block_on(ukey_admin::cli::serve(config, shutdown_signal()))?;
    } else {
        start_tracing("warn", config.log.format);
        runtime.block_on(ukey_admin::cli::execute(cli, config))?;
    }
    Ok(())
}
