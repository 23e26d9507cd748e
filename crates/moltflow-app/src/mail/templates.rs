//! Mail templates: a plain-text file (its first line `Subject: …`) and an HTML file per kind.
//! The defaults are compiled in; a file of the same name in `MOLTFLOW_MAIL_TEMPLATES_DIR`
//! replaces one. `{{name}}`-style placeholders are filled in; values are HTML-escaped in the HTML
//! part and stripped of control characters in the subject, so no value can add a header.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;

use super::MailKind;

const DEFAULTS: &[(&str, &str)] = &[
    ("verify_email.txt", include_str!("../../templates/mail/verify_email.txt")),
    ("verify_email.html", include_str!("../../templates/mail/verify_email.html")),
    ("password_reset.txt", include_str!("../../templates/mail/password_reset.txt")),
    ("password_reset.html", include_str!("../../templates/mail/password_reset.html")),
    ("magic_link.txt", include_str!("../../templates/mail/magic_link.txt")),
    ("magic_link.html", include_str!("../../templates/mail/magic_link.html")),
    ("invitation.txt", include_str!("../../templates/mail/invitation.txt")),
    ("invitation.html", include_str!("../../templates/mail/invitation.html")),
    ("account_secured.txt", include_str!("../../templates/mail/account_secured.txt")),
    ("account_secured.html", include_str!("../../templates/mail/account_secured.html")),
];

struct Template {
    subject: String,
    text: String,
    html: String,
}

/// A mail ready for the outbox.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub struct Templates {
    by_kind: HashMap<&'static str, Template>,
}

impl Templates {
    /// The built-in templates, each replaced by the file of the same name in `dir` if there is one.
    pub fn load(dir: Option<&Path>) -> anyhow::Result<Templates> {
        let read = |name: &str, default: &str| -> anyhow::Result<String> {
            match dir.map(|d| d.join(name)).filter(|p| p.is_file()) {
                Some(path) => std::fs::read_to_string(&path)
                    .with_context(|| format!("MOLTFLOW_MAIL_TEMPLATES_DIR: cannot read {}", path.display())),
                None => Ok(default.to_owned()),
            }
        };
        let mut by_kind = HashMap::new();
        for kind in MailKind::ALL {
            let name = kind.template();
            let default = |ext: &str| {
                DEFAULTS.iter().find(|(n, _)| *n == format!("{name}.{ext}")).map(|(_, t)| *t).unwrap_or_default()
            };
            let text = read(&format!("{name}.txt"), default("txt"))?;
            let html = read(&format!("{name}.html"), default("html"))?;
            let (subject, text) = split_subject(&text)
                .with_context(|| format!("mail template {name}.txt must start with a `Subject: …` line"))?;
            by_kind.insert(name, Template { subject, text, html });
        }
        Ok(Templates { by_kind })
    }

    pub fn render(&self, kind: MailKind, vars: &[(&str, &str)]) -> Rendered {
        let Some(t) = self.by_kind.get(kind.template()) else {
            // Every kind is loaded at start-up; an empty mail is still better than a panic.
            return Rendered { subject: String::new(), text: String::new(), html: String::new() };
        };
        let subject = fill(&t.subject, vars, |v| v.chars().map(|c| if c.is_control() { ' ' } else { c }).collect());
        Rendered {
            subject: subject.chars().filter(|c| !c.is_control()).collect(),
            text: fill(&t.text, vars, str::to_owned),
            html: fill(&t.html, vars, escape_html),
        }
    }
}

fn split_subject(text: &str) -> Option<(String, String)> {
    let (first, rest) = text.split_once('\n')?;
    let subject = first.trim_end_matches('\r').strip_prefix("Subject:")?.trim().to_owned();
    Some((subject, rest.trim_start_matches(['\r', '\n']).to_owned()))
}

/// Replaces each `{{key}}` of `vars` with its value passed through `encode`.
fn fill(template: &str, vars: &[(&str, &str)], encode: impl Fn(&str) -> String) -> String {
    let mut out = template.to_owned();
    for (key, value) in vars {
        out = out.replace(&format!("{{{{{key}}}}}"), &encode(value));
    }
    out
}

pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_placeholders_escaping_html_and_subject() {
        let t = Templates::load(None).unwrap();
        let r = t.render(
            MailKind::Invitation,
            &[("tenant", "<b>Acme</b>\r\nBcc: x@y.z"), ("inviter", "Ana"), ("role", "member"), ("link", "http://l/x")],
        );
        assert!(!r.subject.contains('\n') && !r.subject.contains('\r'), "{:?}", r.subject);
        assert!(r.html.contains("&lt;b&gt;Acme&lt;/b&gt;"), "{}", r.html);
        assert!(!r.html.contains("<b>Acme"));
        assert!(r.text.contains("http://l/x"));
        assert!(!r.text.contains("{{link}}"));
    }

    #[test]
    fn a_file_in_the_directory_replaces_the_default() {
        let dir = std::env::temp_dir().join(format!("moltflow-tpl-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("magic_link.txt"), "Subject: Hi {{name}}\n\nGo: {{link}}\n").unwrap();
        let t = Templates::load(Some(&dir)).unwrap();
        let r = t.render(MailKind::MagicLink, &[("name", "Ana"), ("link", "http://l/m")]);
        assert_eq!(r.subject, "Hi Ana");
        assert_eq!(r.text, "Go: http://l/m\n");
        assert!(r.html.contains("http://l/m"), "the HTML default stays");
        std::fs::write(dir.join("verify_email.txt"), "no subject line\n").unwrap();
        assert!(Templates::load(Some(&dir)).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
