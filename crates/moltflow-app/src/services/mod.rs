//! Use cases: each decides in domain terms and runs one transaction; the ways in (API handlers,
//! dashboard forms, MCP tools) only parse and answer. Nothing under `services` knows about HTTP:
//! inputs are plain values, the caller is a [`principal::Principal`], the origin an
//! [`origin::Origin`], and every failure a [`failure::Failure`].

pub mod api_keys;
pub mod audit;
pub mod audit_queue;
pub mod auth;
pub mod billing;
pub mod cursor;
pub mod failure;
pub mod invitations;
pub mod mailbox_proof;
pub mod mailing;
pub mod members;
pub mod one_time;
pub mod origin;
pub mod principal;
pub mod recovery;
pub mod sessions;
pub mod signup;
pub mod standing;
pub mod tenant;
pub mod usage;
pub mod users;
pub mod verification;
