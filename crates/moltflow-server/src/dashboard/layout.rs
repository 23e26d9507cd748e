//! The page shell: `lang`, a skip link, header, nav and main landmarks, the stylesheet and script
//! at their cache-busting names, the one-line notice after a redirect ("flash"), and while the
//! email is unverified a banner with a "resend" button.

use maud::{DOCTYPE, Markup, html};

use crate::dashboard::assets;
use crate::dashboard::forms::csrf_field;
use crate::dashboard::session::Viewer;

/// The signed-in navigation: path and label.
pub const NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/keys", "API keys"),
    ("/usage", "Usage"),
    ("/members", "Members"),
    ("/settings", "Settings"),
    ("/billing", "Billing"),
    ("/audit", "Audit log"),
    ("/profile", "Profile"),
];

/// Notices shown after a redirect, by the code in its `?flash=` parameter. Only these texts can
/// appear: nothing from the URL is echoed.
const FLASHES: &[(&str, &str)] = &[
    ("registered", "Welcome! Your workspace is ready. We have sent you a link to verify your email address."),
    ("signed_out", "You are signed out."),
    ("signed_out_everywhere", "You are signed out on every device."),
    ("verified", "Your email address is verified."),
    ("verification_sent", "If your address is not verified yet, we have sent it a new link."),
    ("password_reset", "Your password has been reset. Sign in with the new one."),
    ("password_changed", "Your password is changed. Your other sessions were signed out."),
    ("profile_saved", "Your profile is saved."),
    ("account_deleted", "Your account is deleted."),
    ("session_ended", "Your session ended. Sign in again."),
    ("joined", "Welcome! You have joined the workspace."),
];

/// The notice for a `?flash=` code, if it is one of ours.
pub fn flash(code: Option<&str>) -> Option<&'static str> {
    let code = code?;
    FLASHES.iter().find(|(c, _)| *c == code).map(|(_, text)| *text)
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · MoltFlow" }
            link rel="stylesheet" href=(assets::style_path());
            script src=(assets::script_path()) defer {}
        }
    }
}

fn notice(flash: Option<&str>) -> Markup {
    html! { @if let Some(text) = flash { div.alert.ok role="status" { p { (text) } } } }
}

/// A page for someone not signed in (sign in, register, the mailed links, errors).
pub fn public(title: &str, flash: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.public {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "MoltFlow" }
                    nav aria-label="Help" { a href="/docs" { "API docs" } }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    (notice(flash))
                    (body)
                }
                footer {
                    p {
                        a href="/docs" { "API and agents" } " · " a href="/openapi.json" { "OpenAPI" }
                        " · " a href="/healthz" { "Health" }
                    }
                }
            }
        }
    }
}

/// A signed-in page: `path` marks the current entry of the navigation.
pub fn signed_in(viewer: &Viewer, path: &str, title: &str, flash: Option<&str>, body: Markup) -> Markup {
    let user = viewer.user();
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "MoltFlow" }
                    span.who { (user.full_name) " · " (user.role) }
                    form.inline method="post" action="/sign-out" {
                        (csrf_field(&viewer.csrf))
                        button.link type="submit" { "Sign out" }
                    }
                }
                nav.main aria-label="Main" {
                    ul {
                        @for (href, label) in NAV {
                            li {
                                @if *href == path { a href=(href) aria-current="page" { (label) } }
                                @else { a href=(href) { (label) } }
                            }
                        }
                    }
                }
                main #main tabindex="-1" {
                    @if !user.email_verified {
                        div.alert.warn role="status" {
                            p { "Please verify your email address: we sent a link to " strong { (user.email) } "." }
                            p {
                                "Until then you cannot invite anyone, grant the owner or admin role, or create keys "
                                "that manage members or billing. Confirming signs you out and removes this password "
                                "and any keys made before it; you sign in again with an emailed link."
                            }
                            form.inline method="post" action="/verify-email/resend" {
                                (csrf_field(&viewer.csrf))
                                input type="hidden" name="next" value=(path);
                                button type="submit" { "Resend the link" }
                            }
                        }
                    }
                    h1 { (title) }
                    (notice(flash))
                    (body)
                }
            }
        }
    }
}
