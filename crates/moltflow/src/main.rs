//! `moltflow`: the MoltFlow admin service (`serve`, `migrate`) and its tools.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use moltflow_server::config::Config;
use moltflow_server::{serve, telemetry};

#[derive(Parser)]
#[command(name = "moltflow", version, about = "MoltFlow admin service: auth, API keys, billing, usage, tenants")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply migrations and serve the HTTP API (configuration from MOLTFLOW_* and moltflow.toml).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Measure raw Argon2id verifications per second with the configured parameters.
    HashBench {
        /// Threads verifying at once (default: the configured hashing concurrency).
        #[arg(long)]
        threads: Option<usize>,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
}

/// Argon2id allocates a 19 MiB block per hash on blocking threads; glibc's adaptive mmap
/// threshold would keep those blocks in per-thread arenas for good (hundreds of MB after a login
/// flood). A fixed threshold serves them from mmap, so they go back to the system when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_large_allocations_to_the_system() {
    // SAFETY: mallopt only tunes the allocator; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_large_allocations_to_the_system() {}

fn main() -> ExitCode {
    return_large_allocations_to_the_system();
    let cli = Cli::parse();
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("moltflow: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_logging(&config);
    telemetry::log_panics();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("moltflow: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve => serve::serve(config).await,
            Command::Migrate => {
                let store = serve::open_store(&config).await?;
                store.close().await;
                println!("migrations applied");
                Ok(())
            }
            Command::HashBench { threads, seconds } => {
                let threads = threads.unwrap_or(config.hash_concurrency);
                let rate = moltflow_server::auth::password::measure_verify_rate(&config.hash_params, threads, seconds)?;
                println!("argon2id verify: {rate:.1}/s with {threads} thread(s)");
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("moltflow: {e:#}");
            ExitCode::FAILURE
        }
    }
}
