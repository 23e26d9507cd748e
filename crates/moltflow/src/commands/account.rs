//! `moltflow login`, `logout`, `whoami` and `audit`.

use std::io::{BufRead, IsTerminal};

use clap::Args;
use moltflow_types::{EmailRequest, LoginRequest, LogoutRequest, TokenRequest};

use super::{ClientArgs, print_json_text, query};
use crate::client::failure::{Class, CliResult, Failure};
use crate::client::render::{cell, fields, table};
use crate::client::stored_login::{StoredLogin, path};
use crate::client::{Api, segment};

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The account's email (asked for when missing).
    #[arg(long)]
    pub email: Option<String>,
    /// Read the password from the first line of standard input (for scripts).
    #[arg(long, conflicts_with_all = ["magic_link", "magic_link_token"])]
    pub password_stdin: bool,
    /// Sign in with a magic link: the link is mailed, then paste it (or its token) here.
    #[arg(long)]
    pub magic_link: bool,
    /// Finish a magic-link sign-in with the link or token from the mail.
    #[arg(long, value_name = "LINK_OR_TOKEN")]
    pub magic_link_token: Option<String>,
}

pub async fn login(client: &ClientArgs, args: &LoginArgs) -> CliResult {
    let api = Api::anonymous(&client.api_url)?;
    let reply = if let Some(link) = &args.magic_link_token {
        api.post("/auth/magic-link/verify", &TokenRequest { token: token_from_link(link) }).await?
    } else {
        let email = match &args.email {
            Some(e) => e.clone(),
            None => prompt_line("Email: ")?,
        };
        if args.magic_link {
            api.post("/auth/magic-link/request", &EmailRequest { email: email.clone() }).await?;
            eprintln!("If {email} has an account, a sign-in link is on its way (valid 15 minutes).");
            let link = prompt_line("Paste the link (or its token) from the mail: ")?;
            api.post("/auth/magic-link/verify", &TokenRequest { token: token_from_link(&link) }).await?
        } else {
            let password = read_password(args.password_stdin)?;
            api.post("/auth/login", &LoginRequest { email: email.clone(), password }).await?
        }
    };
    let email = reply.body["user"]["email"].as_str().unwrap_or_default().to_owned();
    api.store_pair(&email, &reply.body)?;
    if client.json {
        // The token pair stays in the login file: print who signed in, not the secrets.
        print_json_text(&reply.body["user"].to_string());
    } else {
        let user = &reply.body["user"];
        println!("Signed in to {} as {} ({}).", api.base(), cell(&user["email"]), cell(&user["role"]));
        println!("The login is kept in {} (readable by you only).", path()?.display());
    }
    Ok(())
}

/// The token of a pasted `…/magic-link?token=…` link, or the text itself.
fn token_from_link(text: &str) -> String {
    let text = text.trim();
    url::Url::parse(text)
        .ok()
        .and_then(|u| u.query_pairs().find(|(k, _)| k == "token").map(|(_, v)| v.into_owned()))
        .unwrap_or_else(|| text.to_owned())
}

fn prompt_line(prompt: &str) -> CliResult<String> {
    if std::io::stdin().is_terminal() {
        eprint!("{prompt}");
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| Failure::usage(format!("cannot read input: {e}")))?;
    let line = line.trim().to_owned();
    if line.is_empty() {
        return Err(Failure::usage(format!("{} is required", prompt.trim_end_matches([':', ' ']))));
    }
    Ok(line)
}

fn read_password(from_stdin: bool) -> CliResult<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::usage(format!("cannot read the password: {e}")))?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::usage("no terminal to ask the password on: pass --password-stdin"));
    }
    rpassword::prompt_password("Password: ").map_err(|e| Failure::usage(format!("cannot read the password: {e}")))
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// End every session of the account, not only this one.
    #[arg(long)]
    pub all: bool,
}

pub async fn logout(client: &ClientArgs, args: &LogoutArgs) -> CliResult {
    let api = Api::anonymous(&client.api_url)?;
    // A login kept for another API address is left alone: it is not this server's to end.
    let Some(_) = StoredLogin::load(api.base())? else {
        println!("Not signed in to {}.", api.base());
        return Ok(());
    };
    // Ends the session on the server too; a login that already ended is still removed here.
    let ended = match Api::authenticated(&client.api_url, None).await {
        Ok(api) => api.post("/auth/logout", &LogoutRequest { all_sessions: Some(args.all) }).await.map(|_| ()),
        Err(f) => Err(f),
    };
    StoredLogin::remove()?;
    match ended {
        Ok(()) => println!("Signed out{}.", if args.all { " of every session" } else { "" }),
        Err(f) if f.class == Class::Auth => println!("Signed out (the session had already ended)."),
        Err(f) => return Err(f),
    }
    Ok(())
}

pub async fn whoami(client: &ClientArgs) -> CliResult {
    let api = client.api().await?;
    let reply = api.get("/auth/me").await?;
    client.emit(&reply, |me| {
        let auth = &me["auth"];
        let how = match auth["method"].as_str() {
            Some("api_key") => format!("API key {}", cell(&auth["api_key_id"])),
            _ => format!("session {}", cell(&auth["session_id"])),
        };
        fields(&[
            ("email", cell(&me["email"])),
            ("name", cell(&me["full_name"])),
            ("role", cell(&me["role"])),
            ("tenant", cell(&me["tenant_id"])),
            ("verified", cell(&me["email_verified"])),
            ("signed in by", how),
            ("scopes", cell(&auth["scopes"])),
        ])
    });
    Ok(())
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Entries per page (1–200).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Only this action (e.g. `api_key.created`, `login.failed`).
    #[arg(long)]
    pub action: Option<String>,
    /// The `next_cursor` of the previous page.
    #[arg(long)]
    pub cursor: Option<String>,
}

pub async fn audit(client: &ClientArgs, args: &AuditArgs) -> CliResult {
    let api = client.api().await?;
    let q = query(&[
        ("limit", args.limit.map(|l| l.to_string())),
        ("action", args.action.clone()),
        ("cursor", args.cursor.clone()),
    ]);
    let reply = api.get(&format!("/audit-logs{q}")).await?;
    client.emit(&reply, |page| {
        let items = page["items"].as_array().cloned().unwrap_or_default();
        let mut out = table(
            ["AT", "ACTION", "ACTOR", "TARGET", "IP"],
            items.iter().map(|e| {
                [
                    cell(&e["at"]),
                    cell(&e["action"]),
                    format!("{} {}", cell(&e["actor"]["type"]), cell(&e["actor"]["id"])),
                    cell(&e["target"]),
                    cell(&e["ip"]),
                ]
            }),
        );
        if let Some(next) = page["next_cursor"].as_str() {
            out.push_str(&format!("\nmore: moltflow audit --cursor {}", segment(next)));
        }
        out
    });
    Ok(())
}
