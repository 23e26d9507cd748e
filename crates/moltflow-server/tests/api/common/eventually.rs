//! Waiting for what other tasks or processes do on real time (a listener connecting, a worker
//! delivering, a proxy cut noticed): poll an observable fact until a deadline. What the injected
//! clock governs is never waited for: tests move it with `TestApp::advance`.

use std::fmt::{Debug, Display};
use std::time::Duration;

use tokio::time::Instant;

/// Calls `probe` until it answers `Ok`, pausing 1 ms after the first miss and doubling the pause
/// up to 50 ms; returns what it answered. Panics once `within` has passed (the last probe starts
/// at the deadline at the latest), naming what was awaited and the last value the probe saw (its
/// `Err`); a probe that itself hangs for `within` fails too.
pub async fn eventually<T, E: Debug>(
    within: Duration,
    what: impl Display,
    probe: impl AsyncFnMut() -> Result<T, E>,
) -> T {
    poll(within, Duration::from_millis(1), Duration::from_millis(50), what, probe).await
}

/// [`eventually`] polling every `every`, for the tests that time how soon something happens
/// (a backoff would add its own delay to what they measure).
pub async fn eventually_every<T, E: Debug>(
    within: Duration,
    every: Duration,
    what: impl Display,
    probe: impl AsyncFnMut() -> Result<T, E>,
) -> T {
    poll(within, every, every, what, probe).await
}

async fn poll<T, E: Debug>(
    within: Duration,
    first: Duration,
    most: Duration,
    what: impl Display,
    mut probe: impl AsyncFnMut() -> Result<T, E>,
) -> T {
    let deadline = Instant::now() + within;
    let mut pause = first;
    loop {
        let seen = match tokio::time::timeout(within, probe()).await {
            Ok(Ok(done)) => return done,
            Ok(Err(seen)) => seen,
            Err(_) => panic!("waiting for {what}: a probe did not answer within {within:?}"),
        };
        let now = Instant::now();
        if now >= deadline {
            panic!("waited {within:?} for {what}; last seen: {seen:?}");
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(most);
    }
}

#[tokio::test]
async fn eventually_returns_what_the_probe_answered_once_it_holds() {
    let mut calls = 0;
    let got = eventually(Duration::from_secs(5), "the third call", async || {
        calls += 1;
        if calls == 3 { Ok(calls) } else { Err(calls) }
    })
    .await;
    assert_eq!(got, 3);
}

#[tokio::test]
#[should_panic(expected = "waited 30ms for a count of 2; last seen: 1")]
async fn eventually_names_what_it_awaited_and_the_last_value_seen() {
    eventually(Duration::from_millis(30), "a count of 2", async || Err::<(), _>(1)).await;
}
