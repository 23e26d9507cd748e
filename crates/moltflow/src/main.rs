//! `moltflow`: the MoltFlow admin service (`serve`, `migrate`), its tools, and a client of its
//! API for people and agents (`keys`, `usage`, `billing`, …).

mod client;
mod commands;
mod mcp_stdio;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use commands::ClientArgs;
use commands::account::{AuditArgs, LoginArgs, LogoutArgs};
use commands::billing::BillingCommand;
use commands::keys::KeysCommand;
use commands::members::MembersCommand;
use commands::settings::SettingsCommand;
use commands::usage::UsageCommand;
use moltflow_app::config::{Config, Loaded, LogFormat};
use moltflow_app::telemetry;
use moltflow_server::serve;

#[derive(Parser)]
#[command(name = "moltflow", version, about = "MoltFlow admin service: auth, API keys, billing, usage, tenants")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Service(ServiceCommand),
    #[command(flatten)]
    Client(ClientCommand),
}

/// The service's own commands: they read the configuration.
#[derive(Subcommand)]
enum ServiceCommand {
    /// Apply migrations and serve the HTTP API (configuration from MOLTFLOW_* and moltflow.toml).
    #[command(after_help = moltflow_app::config::settings::help_text())]
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

/// Commands of the API's client (and the shell completions): they never read the service's
/// configuration.
#[derive(Subcommand)]
enum ClientCommand {
    /// API keys: list, create, show, rotate, revoke, scopes.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Usage against the plan: current, daily, history; report with consume and events.
    #[command(subcommand)]
    Usage(UsageCommand),
    /// Plans, the subscription, checkout and portal links, cancel.
    #[command(subcommand)]
    Billing(BillingCommand),
    /// The tenant's settings.
    #[command(subcommand)]
    Settings(SettingsCommand),
    /// Members and invitations.
    #[command(subcommand)]
    Members(MembersCommand),
    /// The audit log, newest first.
    Audit(AuditArgs),
    /// Who the current credential is, and what it may do.
    Whoami,
    /// Sign in (password or magic link) and keep the login for the next commands.
    Login(LoginArgs),
    /// End the stored login, here and on the server.
    Logout(LogoutArgs),
    /// Serve the Model Context Protocol over stdio for an AI agent (MOLTFLOW_API_KEY, MOLTFLOW_API_URL).
    Mcp,
    /// Shell completions: `moltflow completions bash > /etc/bash_completion.d/moltflow`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Runs a client subcommand.
fn run_client(client: &ClientArgs, command: &ClientCommand) -> ExitCode {
    if !matches!(command, ClientCommand::Mcp) {
        stop_quietly_on_a_closed_pipe();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("moltflow: cannot start the async runtime: {e}");
            return ExitCode::from(8);
        }
    };
    let result = runtime.block_on(async {
        match command {
            ClientCommand::Keys(c) => commands::keys::run(client, c).await,
            ClientCommand::Usage(c) => commands::usage::run(client, c).await,
            ClientCommand::Billing(c) => commands::billing::run(client, c).await,
            ClientCommand::Settings(c) => commands::settings::run(client, c).await,
            ClientCommand::Members(c) => commands::members::run(client, c).await,
            ClientCommand::Audit(a) => commands::account::audit(client, a).await,
            ClientCommand::Whoami => commands::account::whoami(client).await,
            ClientCommand::Login(a) => commands::account::login(client, a).await,
            ClientCommand::Logout(a) => commands::account::logout(client, a).await,
            ClientCommand::Mcp => mcp_stdio::run(client).await,
            ClientCommand::Completions { shell } => {
                clap_complete::generate(*shell, &mut Cli::command(), "moltflow", &mut std::io::stdout());
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            match (&failure.raw_body, client.json) {
                (Some(raw), true) => eprintln!("{raw}"),
                _ => eprintln!("moltflow: {failure}"),
            }
            failure.exit_code()
        }
    }
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

/// `moltflow audit --json | head`: when the reader goes away the command ends as Unix tools do
/// (killed by `SIGPIPE`, no output), instead of Rust's default of ignoring the signal and then
/// panicking in `println!`. Not for `moltflow mcp`, whose peer closing the pipe is an answer.
#[cfg(unix)]
fn stop_quietly_on_a_closed_pipe() {
    // SAFETY: restores the default disposition of one signal, before any thread writes.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn stop_quietly_on_a_closed_pipe() {}

fn main() -> ExitCode {
    return_large_allocations_to_the_system();
    let cli = Cli::parse();
    let service = match cli.command {
        Command::Client(command) => return run_client(&cli.client, &command),
        Command::Service(service) => service,
    };
    let Loaded { config, warnings } = match Config::load() {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("moltflow: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_logging(&config);
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    telemetry::log_panics();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("moltflow: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match service {
            ServiceCommand::Serve => serve::serve(config).await,
            ServiceCommand::Migrate => {
                let (store, applied) = serve::open_store(&config).await?;
                store.close().await;
                let database = moltflow_server::startup::describe_database(&config.database.url);
                let outcome = match applied {
                    0 => "already up to date, no migration applied".to_owned(),
                    1 => "1 migration applied".to_owned(),
                    n => format!("{n} migrations applied"),
                };
                // JSON logs stay one object a line, for whatever collects them.
                match config.telemetry.log_format {
                    LogFormat::Json => tracing::info!(database, applied, "{outcome}"),
                    LogFormat::Pretty => println!("{database}: {outcome}"),
                }
                Ok(())
            }
            ServiceCommand::HashBench { threads, seconds } => {
                let threads = threads.unwrap_or(config.auth.hash_concurrency);
                let rate =
                    moltflow_app::auth::password::measure_verify_rate(&config.auth.hash_params, threads, seconds)?;
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
