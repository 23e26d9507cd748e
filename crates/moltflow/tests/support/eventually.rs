//! Waiting for what another process does on its own time (a server starting, a mail file
//! written, a node noticing a revocation): poll an observable fact until a deadline, never sleep
//! a fixed time and hope.

use std::fmt::{Debug, Display};
use std::time::{Duration, Instant};

/// The first pause after a miss; it doubles up to [`MOST`].
const FIRST: Duration = Duration::from_millis(1);
const MOST: Duration = Duration::from_millis(50);

/// Calls `probe` until it answers `Ok` and returns that, pausing 1 ms after the first miss and
/// doubling the pause up to 50 ms. Panics once `within` has passed (the last probe starts at the
/// deadline at the latest), naming what was awaited and the last value the probe saw (its `Err`).
#[allow(dead_code)] // not every test file waits on a blocking probe
pub fn eventually<T, E: Debug>(within: Duration, what: impl Display, mut probe: impl FnMut() -> Result<T, E>) -> T {
    let deadline = Instant::now() + within;
    let mut pause = FIRST;
    loop {
        let seen = match probe() {
            Ok(done) => return done,
            Err(seen) => seen,
        };
        let now = Instant::now();
        if now >= deadline {
            panic!("waited {within:?} for {what}; last seen: {seen:?}");
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(MOST);
    }
}

/// [`eventually`] for async probes (on tokio); a probe that itself hangs for `within` fails too.
#[allow(dead_code)] // only the async test files use it
pub async fn eventually_async<T, E: Debug>(
    within: Duration,
    what: impl Display,
    probe: impl AsyncFnMut() -> Result<T, E>,
) -> T {
    poll(within, FIRST, MOST, what, probe).await
}

/// [`eventually_async`] polling every `every`, for the tests that time how soon something
/// happens (a backoff would add its own delay to what they measure).
#[allow(dead_code)] // only the async test files use it
pub async fn eventually_async_every<T, E: Debug>(
    within: Duration,
    every: Duration,
    what: impl Display,
    probe: impl AsyncFnMut() -> Result<T, E>,
) -> T {
    poll(within, every, every, what, probe).await
}

#[allow(dead_code)]
async fn poll<T, E: Debug>(
    within: Duration,
    first: Duration,
    most: Duration,
    what: impl Display,
    mut probe: impl AsyncFnMut() -> Result<T, E>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    let mut pause = first;
    loop {
        let seen = match tokio::time::timeout(within, probe()).await {
            Ok(Ok(done)) => return done,
            Ok(Err(seen)) => seen,
            Err(_) => panic!("waiting for {what}: a probe did not answer within {within:?}"),
        };
        let now = tokio::time::Instant::now();
        if now >= deadline {
            panic!("waited {within:?} for {what}; last seen: {seen:?}");
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(most);
    }
}
