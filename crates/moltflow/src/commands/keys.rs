//! `moltflow keys list|create|show|rotate|revoke|scopes`.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{ClientArgs, confirm};
use crate::client::failure::{CliResult, Failure};
use crate::client::render::{cell, fields, table};
use crate::client::{Api, segment};

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Every key you may see (owners and admins: the whole tenant), newest first.
    List,
    /// Create a key; its secret is printed once and never again.
    Create(CreateArgs),
    /// One key.
    Show { id: String },
    /// A new secret for a key you created; the old one works for the grace period only.
    Rotate {
        id: String,
        /// Minutes the old secret keeps working (0–1440).
        #[arg(long, default_value_t = 0)]
        grace_minutes: u32,
    },
    /// Revoke a key at once (idempotent).
    Revoke {
        id: String,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
    },
    /// The scope catalogue and the presets.
    Scopes,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// A name to recognise the key by (1–100 characters).
    #[arg(long)]
    pub name: String,
    /// A scope to grant (repeat, or separate with commas), e.g. `usage:read`.
    #[arg(long = "scope", value_delimiter = ',')]
    pub scopes: Vec<String>,
    /// A preset from `moltflow keys scopes` (read-only, messaging, outreach, admin).
    #[arg(long)]
    pub preset: Option<String>,
    /// Days until the key expires (1–3650); without it the key never expires.
    #[arg(long)]
    pub expires_in_days: Option<u32>,
}

pub async fn run(client: &ClientArgs, command: &KeysCommand) -> CliResult {
    let api = client.api().await?;
    match command {
        KeysCommand::List => {
            let reply = api.get("/api-keys").await?;
            client.emit(&reply, |keys| keys_table(keys.as_array().map(Vec::as_slice).unwrap_or_default()));
        }
        KeysCommand::Create(args) => {
            let scopes = requested_scopes(&api, args).await?;
            let mut body = json!({"name": args.name, "scopes": scopes});
            if let Some(days) = args.expires_in_days {
                body["expires_in_days"] = json!(days);
            }
            let reply = api.post("/api-keys", body).await?;
            client.emit(&reply, |key| format!("{}\n\n{}", key_fields(key), secret_notice(key)));
            if client.json {
                eprintln!("{}", SECRET_WARNING);
            }
        }
        KeysCommand::Show { id } => {
            let reply = api.get(&format!("/api-keys/{}", segment(id))).await?;
            client.emit(&reply, key_fields);
        }
        KeysCommand::Rotate { id, grace_minutes } => {
            let body = json!({"grace_period_minutes": grace_minutes});
            let reply = api.post(&format!("/api-keys/{}/rotate", segment(id)), body).await?;
            client.emit(&reply, |key| {
                let grace = if *grace_minutes == 0 {
                    "The old secret stopped working now.".to_owned()
                } else {
                    format!("The old secret keeps working for {grace_minutes} minute(s).")
                };
                format!("{}\n\n{}\n{grace}", key_fields(key), secret_notice(key))
            });
            if client.json {
                eprintln!("{}", SECRET_WARNING);
            }
        }
        KeysCommand::Revoke { id, yes } => {
            confirm(&format!("Revoke API key {id}? Services using it stop working at once."), *yes)?;
            let reply = api.delete(&format!("/api-keys/{}", segment(id))).await?;
            client.emit(&reply, |_| format!("Revoked {id}."));
        }
        KeysCommand::Scopes => {
            let reply = api.get("/api-keys/scopes").await?;
            client.emit(&reply, scopes_text);
        }
    }
    Ok(())
}

const SECRET_WARNING: &str = "Copy the secret now: it is shown only once and cannot be shown again.";

fn secret_notice(key: &Value) -> String {
    format!("secret  {}\n{SECRET_WARNING}", cell(&key["raw_key"]))
}

/// The scopes of `--scope` and `--preset` together, in order, without repeats.
async fn requested_scopes(api: &Api, args: &CreateArgs) -> CliResult<Vec<String>> {
    let mut scopes: Vec<String> = Vec::new();
    if let Some(name) = &args.preset {
        let catalogue = api.get("/api-keys/scopes").await?.body;
        let presets = catalogue["presets"].as_array().cloned().unwrap_or_default();
        let preset = presets.iter().find(|p| p["name"].as_str() == Some(name.as_str())).ok_or_else(|| {
            let names: Vec<String> = presets.iter().map(|p| cell(&p["name"])).collect();
            Failure::usage(format!("unknown preset {name:?}; presets: {}", names.join(", ")))
        })?;
        scopes.extend(preset["scopes"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned));
    }
    for s in &args.scopes {
        let s = s.trim();
        if !s.is_empty() && !scopes.iter().any(|x| x == s) {
            scopes.push(s.to_owned());
        }
    }
    if scopes.is_empty() {
        return Err(Failure::usage("give at least one --scope or a --preset (see `moltflow keys scopes`)"));
    }
    Ok(scopes)
}

fn state(key: &Value) -> String {
    if !key["revoked_at"].is_null() {
        "revoked".to_owned()
    } else if key["is_active"] == json!(false) {
        "expired".to_owned()
    } else {
        "active".to_owned()
    }
}

fn keys_table(keys: &[Value]) -> String {
    if keys.is_empty() {
        return "No API keys yet: `moltflow keys create --name NAME --preset read-only`.".to_owned();
    }
    table(
        ["ID", "NAME", "PREFIX", "SCOPES", "CREATED BY", "LAST USED", "EXPIRES", "STATE"],
        keys.iter().map(|k| {
            [
                cell(&k["id"]),
                cell(&k["name"]),
                cell(&k["key_prefix"]),
                cell(&k["scopes"]),
                cell(&k["created_by"]),
                cell(&k["last_used_at"]),
                if k["expires_at"].is_null() { "never".to_owned() } else { cell(&k["expires_at"]) },
                state(k),
            ]
        }),
    )
}

fn key_fields(key: &Value) -> String {
    fields(&[
        ("id", cell(&key["id"])),
        ("name", cell(&key["name"])),
        ("prefix", cell(&key["key_prefix"])),
        ("scopes", cell(&key["scopes"])),
        ("state", state(key)),
        ("created", cell(&key["created_at"])),
        ("created by", cell(&key["created_by"])),
        ("last used", cell(&key["last_used_at"])),
        ("expires", if key["expires_at"].is_null() { "never".to_owned() } else { cell(&key["expires_at"]) }),
    ])
}

fn scopes_text(catalogue: &Value) -> String {
    let scopes = catalogue["scopes"].as_array().cloned().unwrap_or_default();
    let presets = catalogue["presets"].as_array().cloned().unwrap_or_default();
    let scope_table =
        table(["SCOPE", "DESCRIPTION"], scopes.iter().map(|s| [cell(&s["scope"]), cell(&s["description"])]));
    let preset_table = table(["PRESET", "SCOPES"], presets.iter().map(|p| [cell(&p["name"]), cell(&p["scopes"])]));
    format!("{scope_table}\n\n{preset_table}")
}
