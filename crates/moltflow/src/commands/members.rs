//! `moltflow members list|invite|role|remove|invitations`.

use clap::Subcommand;
use moltflow_types::{ChangeRoleRequest, InviteRequest};
use serde_json::Value;

use super::{ClientArgs, confirm};
use crate::client::failure::CliResult;
use crate::client::render::{cell, table};
use crate::client::segment;

#[derive(Subcommand, Debug)]
pub enum MembersCommand {
    /// The tenant's members.
    List,
    /// Mail an invitation to join the tenant.
    Invite {
        email: String,
        #[arg(long, default_value = "member", value_parser = ["member", "admin", "owner"])]
        role: String,
    },
    /// Change a member's role (only owners grant admin or owner).
    Role {
        user_id: String,
        #[arg(value_parser = ["member", "admin", "owner"])]
        role: String,
    },
    /// Remove a member: their sessions, keys and pending invitations end at once.
    Remove {
        user_id: String,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
    },
    /// Invitations sent, with their state.
    Invitations,
}

pub async fn run(client: &ClientArgs, command: &MembersCommand) -> CliResult {
    let api = client.api().await?;
    match command {
        MembersCommand::List => {
            let reply = api.get("/tenant/members").await?;
            client.emit(&reply, members_table);
        }
        MembersCommand::Invite { email, role } => {
            let reply = api
                .post("/tenant/invitations", &InviteRequest { email: email.clone(), role: Some(role.clone()) })
                .await?;
            client.emit(&reply, |i| {
                format!(
                    "Invited {} as {} (invitation {}, expires {}).",
                    email,
                    role,
                    cell(&i["id"]),
                    cell(&i["expires_at"])
                )
            });
        }
        MembersCommand::Role { user_id, role } => {
            let reply = api
                .patch(&format!("/tenant/members/{}", segment(user_id)), &ChangeRoleRequest { role: role.clone() })
                .await?;
            client.emit(&reply, |m| format!("{} is now {}.", cell(&m["email"]), cell(&m["role"])));
        }
        MembersCommand::Remove { user_id, yes } => {
            confirm(&format!("Remove member {user_id}? Their sessions and API keys end at once."), *yes)?;
            let reply = api.delete(&format!("/tenant/members/{}", segment(user_id))).await?;
            client.emit(&reply, |_| format!("Removed {user_id}."));
        }
        MembersCommand::Invitations => {
            let reply = api.get("/tenant/invitations").await?;
            client.emit(&reply, |list| {
                let rows = list.as_array().cloned().unwrap_or_default();
                table(
                    ["ID", "EMAIL", "ROLE", "STATUS", "EXPIRES"],
                    rows.iter().map(|i| {
                        [
                            cell(&i["id"]),
                            cell(&i["email"]),
                            cell(&i["role"]),
                            cell(&i["status"]),
                            cell(&i["expires_at"]),
                        ]
                    }),
                )
            });
        }
    }
    Ok(())
}

fn members_table(list: &Value) -> String {
    let rows = list.as_array().cloned().unwrap_or_default();
    table(
        ["USER ID", "EMAIL", "NAME", "ROLE", "VERIFIED", "SINCE"],
        rows.iter().map(|m| {
            [
                cell(&m["user_id"]),
                cell(&m["email"]),
                cell(&m["full_name"]),
                cell(&m["role"]),
                cell(&m["email_verified"]),
                cell(&m["created_at"]),
            ]
        }),
    )
}
