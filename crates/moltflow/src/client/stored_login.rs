//! The login `moltflow login` keeps between commands: the refresh token (and the current access
//! token) in `<config dir>/moltflow/login.json`, readable by the user only (0600 in a 0700
//! folder). It is tied to the API address it was obtained from, so a token is never sent to
//! another server because `MOLTFLOW_API_URL` changed.

use std::io::Write;
use std::path::PathBuf;

use serde_json::{Value, json};

use super::failure::{CliResult, Failure};

#[derive(Clone, Debug)]
pub struct StoredLogin {
    pub api_url: String,
    pub email: String,
    pub refresh_token: String,
    pub access_token: String,
    /// Unix seconds after which the access token is not worth sending.
    pub access_expires_at: i64,
}

pub fn path() -> CliResult<PathBuf> {
    dirs::config_dir()
        .map(|d| d.join("moltflow").join("login.json"))
        .ok_or_else(|| Failure::usage("cannot find a configuration folder for this user (set XDG_CONFIG_HOME)"))
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl StoredLogin {
    /// The stored login for `api_url`, if there is one.
    pub fn load(api_url: &str) -> CliResult<Option<StoredLogin>> {
        let path = path()?;
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Failure::usage(format!("cannot read {}: {e}", path.display()))),
        };
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| Failure::usage(format!("{} is damaged ({e}); run `moltflow logout`", path.display())))?;
        let field = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let login = StoredLogin {
            api_url: field("api_url"),
            email: field("email"),
            refresh_token: field("refresh_token"),
            access_token: field("access_token"),
            access_expires_at: v["access_expires_at"].as_i64().unwrap_or(0),
        };
        Ok((login.api_url == api_url && !login.refresh_token.is_empty()).then_some(login))
    }

    /// Writes the login with owner-only permissions, replacing the file atomically.
    pub fn save(&self) -> CliResult {
        let path = path()?;
        let dir = path.parent().ok_or_else(|| Failure::usage("bad configuration path"))?;
        create_private_dir(dir)?;
        let body = json!({
            "api_url": self.api_url,
            "email": self.email,
            "refresh_token": self.refresh_token,
            "access_token": self.access_token,
            "access_expires_at": self.access_expires_at,
        });
        let tmp = dir.join(format!(".login.json.{}", std::process::id()));
        let written = write_private(&tmp, body.to_string().as_bytes()).and_then(|()| std::fs::rename(&tmp, &path));
        written.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Failure::usage(format!("cannot write {}: {e}", path.display()))
        })
    }

    /// Removes the stored login; `false` when there was none.
    pub fn remove() -> CliResult<bool> {
        let path = path()?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Failure::usage(format!("cannot remove {}: {e}", path.display()))),
        }
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &std::path::Path) -> CliResult {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Failure::usage(format!("cannot create {}: {e}", dir.display())))
}

#[cfg(not(unix))]
fn create_private_dir(dir: &std::path::Path) -> CliResult {
    std::fs::create_dir_all(dir).map_err(|e| Failure::usage(format!("cannot create {}: {e}", dir.display())))
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
