//! The `wxhost` command line: a thin shell over the library.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use wxhost::demo::Handler;
use wxhost::plugin::{Runtime, RuntimeLimits};

/// Hosts WeChat Official Account bots with the bot logic in sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Walk one push through verification, decryption, a plugin, and encryption in each mode.
    Demo {
        /// The text the simulated user sends.
        #[arg(long, default_value = "hello, wxhost")]
        text: String,
        /// A plugin (`.wasm`) to answer with; without one, a native echo answers.
        #[arg(long)]
        plugin: Option<PathBuf>,
    },
    /// Create a plugin crate that builds for wasm32-wasip2 out of the box.
    NewPlugin {
        /// The plugin's name (lowercase letter first, then a-z 0-9 - _).
        name: String,
        /// The directory to create it in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The wxhost-sdk crate to depend on (default: the one this wxhost was built from).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Demo { text, plugin } => {
            let now = i64::try_from(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .context("system clock is before 1970")?
                    .as_secs(),
            )
            .context("system clock out of range")?;
            let transcript = match plugin {
                None => wxhost::demo::run(&text, now, Handler::NativeEcho).await?,
                Some(path) => {
                    let wasm = std::fs::read(&path)
                        .with_context(|| format!("reading plugin {}", path.display()))?;
                    let name = path
                        .file_stem()
                        .and_then(|s| s.to_str())
                        .context("plugin path has no file name")?;
                    let runtime = Runtime::new(RuntimeLimits::default(), None)?;
                    let plugin = runtime.load(name, &wasm)?;
                    wxhost::demo::run(&text, now, Handler::Plugin(&runtime, &plugin)).await?
                }
            };
            print!("{transcript}");
        }
        Command::NewPlugin { name, dir, sdk } => {
            let sdk = sdk.unwrap_or_else(wxhost::scaffold::default_sdk_path);
            let created = wxhost::scaffold::new_plugin(&name, &dir, &sdk)?;
            println!("created {}", created.display());
            println!(
                "build it: cd {} && cargo build --release",
                created.display()
            );
        }
    }
    Ok(())
}
