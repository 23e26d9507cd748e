//! The client subcommands of `moltflow`: each parses its flags, calls the API and prints either
//! a table for people or, with `--json`, the API's JSON unchanged for scripts and agents.

pub mod account;
pub mod billing;
pub mod keys;
pub mod members;
pub mod settings;
pub mod usage;

use std::io::IsTerminal;

use clap::Args;
use serde_json::Value;

use crate::client::failure::{CliResult, Failure};
use crate::client::{Api, DEFAULT_API_URL, Reply};

/// Where the API is and who is calling: shared by every client subcommand.
#[derive(Args, Clone, Debug)]
pub struct ClientArgs {
    /// The API's base address.
    #[arg(long, global = true, env = "MOLTFLOW_API_URL", default_value = DEFAULT_API_URL)]
    pub api_url: String,
    /// An API key (`mf_…`); without one, the login stored by `moltflow login` is used.
    #[arg(long, global = true, env = "MOLTFLOW_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Print the API's JSON unchanged instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

impl ClientArgs {
    pub async fn api(&self) -> CliResult<Api> {
        Api::authenticated(&self.api_url, self.api_key.as_deref()).await
    }

    /// Prints the reply: its JSON as it came with `--json`, otherwise what `human` makes of it.
    /// As [`ClientArgs::emit`], the body read as the contract's type `T` for the human text
    /// (`--json` prints the server's text as it came).
    pub fn emit_as<T: serde::de::DeserializeOwned>(
        &self,
        reply: &Reply,
        human: impl FnOnce(&T) -> String,
    ) -> CliResult {
        if self.json {
            print_json_text(&reply.text);
        } else {
            let text = human(&reply.parse::<T>()?);
            if !text.is_empty() {
                println!("{text}");
            }
        }
        Ok(())
    }

    pub fn emit(&self, reply: &Reply, human: impl FnOnce(&Value) -> String) {
        if self.json {
            print_json_text(&reply.text);
        } else {
            let text = human(&reply.body);
            if !text.is_empty() {
                println!("{text}");
            }
        }
    }
}

pub fn print_json_text(text: &str) {
    // A `204` has no body: nothing to print.
    if text.is_empty() {
        return;
    }
    if text.ends_with('\n') {
        print!("{text}");
    } else {
        println!("{text}");
    }
}

/// Asks before a destructive step when a person is at the terminal; `--yes` (or no terminal,
/// as for scripts and agents) skips the question.
pub fn confirm(question: &str, yes: bool) -> CliResult {
    if yes || !std::io::stdin().is_terminal() {
        return Ok(());
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).map_err(|e| Failure::usage(format!("cannot read the answer: {e}")))?;
    if matches!(answer.trim(), "y" | "Y" | "yes") { Ok(()) } else { Err(Failure::usage("cancelled")) }
}

/// `?a=1&b=x` from the pairs that have a value.
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in pairs {
        if let Some(v) = v {
            s.append_pair(k, v);
            any = true;
        }
    }
    if any { format!("?{}", s.finish()) } else { String::new() }
}
