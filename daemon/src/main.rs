//! `ukeyd`: parses arguments, starts tracing and calls the library.

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use tracing_subscriber::EnvFilter;

/// The local U-Key daemon.
#[derive(Debug, Parser)]
#[command(name = "ukeyd", version, about)]
struct Cli {
    /// Log filter (tracing EnvFilter syntax); logs go to standard error. cryptoki's complaints
    /// about mechanisms it has no name for are noise, so they are off by default.
    #[arg(
        long,
        global = true,
        env = "UKEYD_LOG",
        default_value = "warn,cryptoki::mechanism=off"
    )]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print readers, cards, tokens and their keys and certificates, then exit.
    Probe(ProbeArgs),
}

#[derive(Debug, Args)]
struct ProbeArgs {
    /// PKCS#11 module to load (repeatable). Without any, the modules registered with p11-kit.
    #[arg(long = "module", value_name = "PATH")]
    modules: Vec<PathBuf>,
    /// Also load the modules registered with p11-kit when --module is given.
    #[arg(long)]
    p11_kit: bool,
    /// Do not look at PC/SC readers.
    #[arg(long)]
    no_pcsc: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&cli.log).context("--log / UKEYD_LOG")?)
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Probe(args) => {
            let report = ukeyd::probe::probe(&ukeyd::probe::ProbeOptions {
                modules: args.modules,
                p11kit: args.p11_kit,
                no_pcsc: args.no_pcsc,
            })?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", ukeyd::probe::render_text(&report));
            }
        }
    }
    Ok(())
}
