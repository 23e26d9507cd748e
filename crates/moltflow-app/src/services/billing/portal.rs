//! The billing portal: where a customer manages payment details (Stripe's, or the local
//! provider's page).

use moltflow_core::secret::new_token;
use moltflow_store::billing::find_customer;
use moltflow_types::{PortalResponse, SubscriptionView};

use super::Billing;
use crate::billing::ProviderClient;
use crate::services::failure::{Failure, Issues, Outcome};
use crate::services::principal::Authorized;
use crate::services::principal::guards::BillingManage;

impl Billing<'_> {
    /// A portal link for the tenant's billing customer (`no_billing_customer` before any checkout).
    pub async fn portal(&self, p: &Authorized<BillingManage>, return_url: Option<&str>) -> Outcome<PortalResponse> {
        let tenant_id = p.tenant_id();
        let mut issues = Issues::default();
        let return_url = self.check_redirect(&mut issues, "return_url", return_url, self.public_url.to_owned());
        issues.finish()?;
        let customer = {
            let mut conn = self.store.conn().await?;
            find_customer(&mut conn, tenant_id).await?
        };
        let Some(customer) = customer else {
            return Err(Failure::conflict(
                "no_billing_customer",
                "This tenant has never checked out; there is no billing account to manage",
            ));
        };
        let portal_url = match self.provider {
            ProviderClient::Local => {
                let token = new_token();
                self.local_portals.insert(token.clone(), tenant_id.to_owned());
                format!("{}/api/v2/billing/local/portal/{token}", self.public_url)
            }
            ProviderClient::Stripe(stripe) => {
                let key = format!("portal-{}", uuid::Uuid::new_v4());
                stripe.create_portal_session(&customer, &return_url, &key).await?
            }
        };
        Ok(PortalResponse { portal_url })
    }

    /// The tenant a local portal session was opened for (`NotFound` once it expired).
    pub(crate) fn local_portal_tenant(&self, token: &str) -> Outcome<String> {
        self.local_portals.get(token).ok_or(Failure::NotFound("Portal session"))
    }

    /// The subscription a local portal page shows; its token is the proof.
    pub async fn local_portal_subscription(&self, token: &str) -> Outcome<SubscriptionView> {
        let tenant_id = self.local_portal_tenant(token)?;
        self.subscription_of(&tenant_id).await
    }
}
