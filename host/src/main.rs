//! The `wxhost` command line: a thin shell over the library.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::{Parser, Subcommand};

/// Hosts WeChat Official Account bots with the bot logic in sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Walk one push through verification, decryption, parsing, reply and encryption in each mode.
    Demo {
        /// The text the simulated user sends.
        #[arg(long, default_value = "hello, wxhost")]
        text: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo { text } => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .context("system clock is before 1970")?
                .as_secs();
            let now = i64::try_from(now).context("system clock out of range")?;
            let transcript = wxhost::demo::run(&text, now).context("demo failed")?;
            print!("{transcript}");
        }
    }
    Ok(())
}
