//! Where a limiter counts, chosen once at start-up: this node's memory, or Redis shared by every
//! node (which itself counts in memory while Redis is unreachable). Each limiter kind has one
//! trait with both implementations; this enum dispatches to the chosen one without boxing.

pub enum Chosen<M, R> {
    PerNode(M),
    Shared(R),
}
