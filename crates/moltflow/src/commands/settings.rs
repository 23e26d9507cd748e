//! `moltflow settings get|set`.

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::ClientArgs;
use crate::client::failure::{CliResult, Failure};
use crate::client::render::{cell, fields};

#[derive(Subcommand, Debug)]
pub enum SettingsCommand {
    /// The tenant's settings.
    Get,
    /// Change some settings (owners and admins, or `settings:manage`).
    Set(SetArgs),
}

#[derive(Args, Debug)]
pub struct SetArgs {
    /// The numbers allowed to send, E.164, comma separated; an empty value clears the list.
    #[arg(long, value_name = "+5511999999999,…")]
    pub allowed_numbers: Option<String>,
    #[arg(long)]
    pub require_approval: Option<bool>,
    /// GDPR consent for AI processing; every change is recorded (who, when, IP, user agent).
    #[arg(long)]
    pub ai_consent: Option<bool>,
    #[arg(long)]
    pub chat_history_access: Option<bool>,
}

pub async fn run(client: &ClientArgs, command: &SettingsCommand) -> CliResult {
    let api = client.api().await?;
    let reply = match command {
        SettingsCommand::Get => api.get("/tenant/settings").await?,
        SettingsCommand::Set(args) => api.patch("/tenant/settings", &changes(args)?).await?,
    };
    client.emit(&reply, settings_text);
    Ok(())
}

fn changes(args: &SetArgs) -> CliResult<Value> {
    let mut body = Map::new();
    if let Some(list) = &args.allowed_numbers {
        let numbers: Vec<&str> = list.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
        body.insert("allowed_numbers".into(), json!(numbers));
    }
    let flags = [
        ("require_approval", args.require_approval),
        ("ai_consent_enabled", args.ai_consent),
        ("chat_history_access_enabled", args.chat_history_access),
    ];
    for (name, value) in flags {
        if let Some(v) = value {
            body.insert(name.into(), json!(v));
        }
    }
    if body.is_empty() {
        return Err(Failure::usage(
            "nothing to change: give --allowed-numbers, --require-approval, --ai-consent or --chat-history-access",
        ));
    }
    Ok(Value::Object(body))
}

fn settings_text(s: &Value) -> String {
    let numbers = s["allowed_numbers"].as_array().map_or(0, Vec::len);
    fields(&[
        ("allowed numbers", if numbers == 0 { "(any)".to_owned() } else { cell(&s["allowed_numbers"]) }),
        ("require approval", cell(&s["require_approval"])),
        ("AI consent", cell(&s["ai_consent_enabled"])),
        ("chat history access", cell(&s["chat_history_access_enabled"])),
    ])
}
