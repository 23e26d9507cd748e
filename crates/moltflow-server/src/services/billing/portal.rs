//! The billing portal: where a customer manages payment details (Stripe's, or the local
//! provider's page).

use moltflow_core::secret::new_token;
use moltflow_store::billing::find_customer;
use moltflow_types::PortalResponse;

use super::checkout::check_redirect;
use crate::billing::Provider;
use crate::error::{ApiError, ApiResult};
use crate::extract::Checks;
use crate::state::App;

pub async fn portal(app: &App, tenant_id: &str, return_url: Option<&str>) -> ApiResult<PortalResponse> {
    let mut checks = Checks::default();
    let return_url = check_redirect(app, &mut checks, "return_url", return_url, app.config.public_url.clone());
    checks.finish()?;
    let customer = {
        let mut conn = app.store.conn().await?;
        find_customer(&mut conn, tenant_id).await?
    };
    let Some(customer) = customer else {
        return Err(ApiError::conflict(
            "no_billing_customer",
            "This tenant has never checked out; there is no billing account to manage",
        ));
    };
    let portal_url = match &app.billing.provider {
        Provider::Local => {
            let token = new_token();
            app.billing.local_portals.insert(token.clone(), tenant_id.to_owned());
            format!("{}/api/v2/billing/local/portal/{token}", app.config.public_url)
        }
        Provider::Stripe(stripe) => {
            stripe.create_portal_session(&customer, &return_url, &format!("portal-{}", uuid::Uuid::new_v4())).await?
        }
    };
    Ok(PortalResponse { portal_url })
}
