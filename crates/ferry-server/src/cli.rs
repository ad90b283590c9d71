//! The `ferry` command line: subcommands and their flags.

use clap::{Parser, Subcommand};

/// Ferry: a self-hostable Salesforce integrations server.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the Salesforce emulator alone (OAuth, REST, Bulk API 2.0, admin API).
    Emulator {},
}

/// Parses the command line and runs it.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Emulator {} => Ok(()),
    }
}
