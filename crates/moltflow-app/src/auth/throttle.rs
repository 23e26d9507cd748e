//! Per-client-network request rates of the public auth routes, scaled by
//! `MOLTFLOW_RATE_LIMIT_SCALE`. A client network is an IPv4 address or an IPv6 /64 (API.md §3):
//! one subscriber usually holds a whole /64, so counting single IPv6 addresses would give an
//! attacker 2^64 allowances. Counted by an [`IpRates`]: this node's memory ([`IpLimiter`],
//! governor) or Redis shared by every node (`auth::shared::rates`), chosen at start-up.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::store::Chosen;

/// The network every per-IP limit counts: the IPv4 address itself (also when written as an
/// IPv4-mapped IPv6 address), or the /64 of an IPv6 address.
pub fn client_network(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !((1u128 << 64) - 1))),
    }
}

/// Where the per-network rates of one route are counted.
pub trait IpRates: Send + Sync {
    /// `Err(seconds to wait)` when `ip`'s network is over its limit; `now` is the service clock
    /// in milliseconds. Nothing is counted without an address or with limits off.
    fn check(&self, ip: Option<IpAddr>, now: i64) -> impl Future<Output = Result<(), u64>> + Send;

    /// Drops per-node state that has gone back to a full allowance.
    fn sweep(&self);
}

/// The limiter of one route: per node, or shared when Redis is configured.
pub type IpThrottle = Chosen<IpLimiter, super::shared::rates::SharedIpRates>;

impl<M: IpRates, R: IpRates> IpRates for Chosen<M, R> {
    async fn check(&self, ip: Option<IpAddr>, now: i64) -> Result<(), u64> {
        match self {
            Chosen::PerNode(m) => m.check(ip, now).await,
            Chosen::Shared(r) => r.check(ip, now).await,
        }
    }

    fn sweep(&self) {
        match self {
            Chosen::PerNode(m) => m.sweep(),
            Chosen::Shared(r) => r.sweep(),
        }
    }
}

/// Requests a minute per client network in this node's memory.
pub struct IpLimiter {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// The scaled limit (0 when off).
    limit: u32,
}

impl IpLimiter {
    /// `per_minute` scaled by `scale`; a scale of 0 turns the limit off.
    pub fn per_minute(per_minute: u32, scale: f64) -> IpLimiter {
        let scaled = (per_minute as f64 * scale).round();
        let limit = if scale > 0.0 { scaled.clamp(1.0, u32::MAX as f64) as u32 } else { 0 };
        let limiter = NonZeroU32::new(limit).map(|n| RateLimiter::keyed(Quota::per_minute(n)));
        IpLimiter { limiter, limit }
    }

    /// Requests a minute per network; `None` when the limit is off.
    pub fn limit(&self) -> Option<u32> {
        (self.limit > 0).then_some(self.limit)
    }

    /// `Err(seconds to wait)` when `ip` is over its limit.
    pub fn check_now(&self, ip: Option<IpAddr>) -> Result<(), u64> {
        let (Some(limiter), Some(ip)) = (&self.limiter, ip) else {
            return Ok(());
        };
        limiter
            .check_key(&client_network(ip))
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()).as_secs().max(1))
    }
}

impl IpRates for IpLimiter {
    /// Governor reads its own monotonic clock; `now` is for the shared store.
    async fn check(&self, ip: Option<IpAddr>, _now: i64) -> Result<(), u64> {
        self.check_now(ip)
    }

    /// Drops the state of IPs that are back to a full allowance.
    fn sweep(&self) {
        if let Some(l) = &self.limiter {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_zero_disables() {
        let ip = IpLimiter::per_minute(1, 0.0);
        for _ in 0..5 {
            assert!(ip.check_now(Some([127, 0, 0, 1].into())).is_ok());
        }
    }

    #[test]
    fn ip_limit_answers_wait_time() {
        let ip = IpLimiter::per_minute(2, 1.0);
        let addr = Some([10, 0, 0, 1].into());
        assert!(ip.check_now(addr).is_ok());
        assert!(ip.check_now(addr).is_ok());
        assert!(ip.check_now(addr).unwrap_err() >= 1);
        assert!(ip.check_now(Some([10, 0, 0, 2].into())).is_ok());
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(client_network(v6("2001:db8:1:2:aaaa:bbbb:cccc:dddd")), v6("2001:db8:1:2::"));
        assert_eq!(client_network(v6("::ffff:10.1.2.3")), v6("10.1.2.3"));
        assert_eq!(client_network(v6("10.1.2.3")), v6("10.1.2.3"));
        let limiter = IpLimiter::per_minute(2, 1.0);
        assert!(limiter.check_now(Some(v6("2001:db8:1:2::1"))).is_ok());
        assert!(limiter.check_now(Some(v6("2001:db8:1:2:ffff::9"))).is_ok());
        assert!(limiter.check_now(Some(v6("2001:db8:1:2::77"))).is_err(), "same /64");
        assert!(limiter.check_now(Some(v6("2001:db8:1:3::1"))).is_ok(), "another /64");
    }
}
