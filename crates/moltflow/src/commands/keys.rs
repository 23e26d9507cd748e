//! `moltflow keys list|create|show|rotate|revoke|scopes`.

use clap::{Args, Subcommand};
use moltflow_types::{ApiKey, ApiKeyWithSecret, CreateApiKeyRequest, RotateApiKeyRequest, ScopeCatalogue};

use super::{ClientArgs, confirm};
use crate::client::failure::{CliResult, Failure};
use crate::client::render::{fields, table};
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
            client.emit_as(&reply, |keys: &Vec<ApiKey>| keys_table(keys))?;
        }
        KeysCommand::Create(args) => {
            let scopes = requested_scopes(&api, args).await?;
            let body = CreateApiKeyRequest {
                name: args.name.clone(),
                scopes,
                expires_in_days: args.expires_in_days.map(i64::from),
            };
            let reply = api.post("/api-keys", &body).await?;
            client.emit_as(&reply, |made: &ApiKeyWithSecret| {
                format!("{}\n\n{}", key_fields(&made.key), secret_notice(made))
            })?;
            if client.json {
                eprintln!("{}", SECRET_WARNING);
            }
        }
        KeysCommand::Show { id } => {
            let reply = api.get(&format!("/api-keys/{}", segment(id))).await?;
            client.emit_as(&reply, key_fields)?;
        }
        KeysCommand::Rotate { id, grace_minutes } => {
            let body = RotateApiKeyRequest { grace_period_minutes: Some(i64::from(*grace_minutes)) };
            let reply = api.post(&format!("/api-keys/{}/rotate", segment(id)), &body).await?;
            client.emit_as(&reply, |made: &ApiKeyWithSecret| {
                let grace = if *grace_minutes == 0 {
                    "The old secret stopped working now.".to_owned()
                } else {
                    format!("The old secret keeps working for {grace_minutes} minute(s).")
                };
                format!("{}\n\n{}\n{grace}", key_fields(&made.key), secret_notice(made))
            })?;
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
            client.emit_as(&reply, scopes_text)?;
        }
    }
    Ok(())
}

const SECRET_WARNING: &str = "Copy the secret now: it is shown only once and cannot be shown again.";

fn secret_notice(made: &ApiKeyWithSecret) -> String {
    format!("secret  {}\n{SECRET_WARNING}", made.raw_key)
}

/// The scopes of `--scope` and `--preset` together, in order, without repeats.
async fn requested_scopes(api: &Api, args: &CreateArgs) -> CliResult<Vec<String>> {
    let mut scopes: Vec<String> = Vec::new();
    if let Some(name) = &args.preset {
        let catalogue: ScopeCatalogue = api.get("/api-keys/scopes").await?.parse()?;
        let preset = catalogue.presets.iter().find(|p| p.name == *name).ok_or_else(|| {
            let names: Vec<&str> = catalogue.presets.iter().map(|p| p.name.as_str()).collect();
            Failure::usage(format!("unknown preset {name:?}; presets: {}", names.join(", ")))
        })?;
        scopes.extend(preset.scopes.iter().cloned());
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

fn state(key: &ApiKey) -> &'static str {
    if key.revoked_at.is_some() {
        "revoked"
    } else if !key.is_active {
        "expired"
    } else {
        "active"
    }
}

fn when(at: &Option<String>, none: &str) -> String {
    at.clone().unwrap_or_else(|| none.to_owned())
}

fn keys_table(keys: &[ApiKey]) -> String {
    if keys.is_empty() {
        return "No API keys yet: `moltflow keys create --name NAME --preset read-only`.".to_owned();
    }
    table(
        ["ID", "NAME", "PREFIX", "SCOPES", "CREATED BY", "LAST USED", "EXPIRES", "STATE"],
        keys.iter().map(|k| {
            [
                k.id.clone(),
                k.name.clone(),
                k.key_prefix.clone(),
                k.scopes.join(" "),
                k.created_by.clone(),
                when(&k.last_used_at, "-"),
                when(&k.expires_at, "never"),
                state(k).to_owned(),
            ]
        }),
    )
}

fn key_fields(key: &ApiKey) -> String {
    fields(&[
        ("id", key.id.clone()),
        ("name", key.name.clone()),
        ("prefix", key.key_prefix.clone()),
        ("scopes", key.scopes.join(" ")),
        ("state", state(key).to_owned()),
        ("created", key.created_at.clone()),
        ("created by", key.created_by.clone()),
        ("last used", when(&key.last_used_at, "-")),
        ("expires", when(&key.expires_at, "never")),
    ])
}

fn scopes_text(catalogue: &ScopeCatalogue) -> String {
    let scope_table =
        table(["SCOPE", "DESCRIPTION"], catalogue.scopes.iter().map(|s| [s.scope.clone(), s.description.clone()]));
    let preset_table =
        table(["PRESET", "SCOPES"], catalogue.presets.iter().map(|p| [p.name.clone(), p.scopes.join(" ")]));
    format!("{scope_table}\n\n{preset_table}")
}
