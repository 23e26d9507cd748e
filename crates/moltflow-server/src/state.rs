//! `AppState`: the application behind one `Arc`, as every handler, page and tool receives it.

use std::ops::Deref;
use std::sync::Arc;

use moltflow_app::App;
use moltflow_app::config::Config;
use moltflow_store::Store;

#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

impl AppState {
    /// Builds the application over a migrated store: loads (or creates) the signing key.
    pub async fn new(config: Config, store: Store) -> anyhow::Result<AppState> {
        Ok(AppState(Arc::new(App::new(config, store).await?)))
    }
}
