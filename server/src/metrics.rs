//! Prometheus metrics, served at `/metrics`. Counters and gauges never carry message
//! text, names or ids: only kinds, codes and phases.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Open WebSocket connections.
pub const CONNECTIONS: &str = "caucus_connections";
/// Open TCP connections at the gate, by state: `pending` (not yet welcomed) or
/// `welcomed`.
pub const HTTP_CONNECTIONS: &str = "caucus_gate_connections";
/// Connections turned away at the gate, by reason: `full`, `address`, `busy`.
pub const CONNECTIONS_REFUSED: &str = "caucus_gate_refused_total";
/// Loaded sessions (those whose actor runs), by phase.
pub const SESSIONS: &str = "caucus_sessions";
/// Every session the server knows, loaded or not.
pub const SESSIONS_KNOWN: &str = "caucus_sessions_known";
/// Sessions loaded from the store because someone entered them or their time came.
pub const SESSION_LOADS: &str = "caucus_session_loads_total";
/// `history` pages read from the store because memory no longer held them.
pub const HISTORY_READS: &str = "caucus_history_store_reads_total";
/// Frames received from clients.
pub const FRAMES_IN: &str = "caucus_frames_in_total";
/// Frames queued to clients.
pub const FRAMES_OUT: &str = "caucus_frames_out_total";
/// Connections closed because their queue was full (4008).
pub const SLOW_CONSUMERS: &str = "caucus_slow_consumer_disconnects_total";
/// Commands refused, by error code.
pub const REFUSALS: &str = "caucus_refusals_total";
/// How long store appends take, in seconds.
pub const STORE_COMMIT: &str = "caucus_store_commit_seconds";
/// Sessions this node took to run from the shared store (PostgreSQL only).
pub const SESSION_CLAIMS: &str = "caucus_session_claims_total";
/// Claims that took a session from another node (whose lease had run out).
pub const TAKEOVERS: &str = "caucus_session_takeovers_total";
/// Sessions this node holds in the shared store now.
pub const SESSIONS_OWNED: &str = "caucus_sessions_owned";
/// Writes the shared store refused because another node owns the session now.
pub const FENCED_WRITES: &str = "caucus_fenced_writes_total";
/// Renewals of this node's lease in the shared store.
pub const LEASE_RENEWALS: &str = "caucus_lease_renewals_total";
/// Connections of other nodes in sessions this node runs, relayed over the bus.
pub const BUS_RELAYS: &str = "caucus_bus_relayed_connections";
/// Gaps found in a relayed connection's traffic, each closing that connection.
pub const BUS_GAPS: &str = "caucus_bus_gaps_total";
/// Connections closed because the node running their session went silent on the bus.
pub const BUS_SILENT_CLOSES: &str = "caucus_bus_silent_owner_closes_total";
/// How long this node's last heartbeat took to come back to it through the bus.
pub const BUS_LAG: &str = "caucus_bus_lag_seconds";
/// How long other nodes take to answer requests on the bus.
pub const BUS_REQUEST: &str = "caucus_bus_request_seconds";

/// Installs the process-wide recorder once and returns its handle for rendering.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0])
            .expect("static buckets are valid")
            .build_recorder();
        let handle = recorder.handle();
        // If a host application installed its own recorder first, that one receives
        // the metrics and this handle renders none.
        let _ = metrics::set_global_recorder(recorder);
        declare();
        handle
    })
}

/// Describes every metric and gives it its zero value, so that `/metrics` lists them all,
/// with HELP and TYPE, before anything has happened: dashboards and alerts work from the
/// first scrape.
fn declare() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(CONNECTIONS, "Open WebSocket connections.");
    describe_gauge!(
        HTTP_CONNECTIONS,
        "Open TCP connections at the gate, by state (pending: not yet welcomed)."
    );
    describe_counter!(CONNECTIONS_REFUSED, "Connections turned away at the gate, by reason.");
    describe_gauge!(SESSIONS, "Sessions loaded in memory (their actor runs), by phase.");
    describe_gauge!(SESSIONS_KNOWN, "Every session the server knows, loaded or not.");
    describe_counter!(SESSION_LOADS, "Sessions loaded from the store when entered or woken.");
    describe_counter!(HISTORY_READS, "History pages read from the store, beyond what memory holds.");
    describe_counter!(FRAMES_IN, "Text frames received from clients.");
    describe_counter!(FRAMES_OUT, "Frames queued to clients.");
    describe_counter!(SLOW_CONSUMERS, "Connections closed 4008 because their queue was full.");
    describe_counter!(REFUSALS, "Commands refused, by error code.");
    describe_histogram!(STORE_COMMIT, Unit::Seconds, "How long store appends take.");
    describe_counter!(SESSION_CLAIMS, "Sessions this node took to run from the shared store.");
    describe_counter!(TAKEOVERS, "Claims that took a session from another node whose lease had run out.");
    describe_gauge!(SESSIONS_OWNED, "Sessions this node holds in the shared store now.");
    describe_counter!(FENCED_WRITES, "Writes refused because another node owns the session now.");
    describe_counter!(LEASE_RENEWALS, "Renewals of this node's lease in the shared store.");
    describe_gauge!(
        BUS_RELAYS,
        "Connections of other nodes in sessions this node runs, relayed over the bus."
    );
    describe_counter!(
        BUS_GAPS,
        "Gaps found in relayed traffic; each closes that connection so that it resumes."
    );
    describe_counter!(
        BUS_SILENT_CLOSES,
        "Connections closed because their session's node went silent on the bus."
    );
    describe_gauge!(
        BUS_LAG,
        Unit::Seconds,
        "How long this node's last heartbeat took to come back through the bus."
    );
    describe_histogram!(
        BUS_REQUEST,
        Unit::Seconds,
        "How long other nodes take to answer requests on the bus."
    );
    metrics::gauge!(CONNECTIONS).set(0.0);
    for state in ["pending", "welcomed"] {
        metrics::gauge!(HTTP_CONNECTIONS, "state" => state).set(0.0);
    }
    for reason in ["full", "address", "busy"] {
        metrics::counter!(CONNECTIONS_REFUSED, "reason" => reason).absolute(0);
    }
    for phase in ["gathering", "caucusing", "reconvened", "ended"] {
        metrics::gauge!(SESSIONS, "phase" => phase).increment(0.0);
    }
    metrics::gauge!(SESSIONS_KNOWN).set(0.0);
    metrics::counter!(SESSION_LOADS).absolute(0);
    metrics::counter!(HISTORY_READS).absolute(0);
    metrics::counter!(SESSION_CLAIMS).absolute(0);
    metrics::counter!(FENCED_WRITES).absolute(0);
    metrics::counter!(TAKEOVERS).absolute(0);
    metrics::gauge!(SESSIONS_OWNED).set(0.0);
    metrics::gauge!(BUS_RELAYS).set(0.0);
    metrics::counter!(BUS_GAPS).absolute(0);
    metrics::counter!(BUS_SILENT_CLOSES).absolute(0);
    metrics::counter!(FRAMES_IN).absolute(0);
    metrics::counter!(FRAMES_OUT).absolute(0);
    metrics::counter!(SLOW_CONSUMERS).absolute(0);
    for code in caucus_protocol::ErrorCode::ALL {
        metrics::counter!(REFUSALS, "code" => code_label(code)).absolute(0);
    }
    let _ = metrics::histogram!(STORE_COMMIT);
}

/// The wire name of an error code, as a label.
pub fn code_label(code: caucus_protocol::ErrorCode) -> String {
    serde_json::to_value(code).ok().and_then(|value| value.as_str().map(str::to_owned)).unwrap_or_default()
}

/// The phase label of a session's phase.
pub fn phase_label(phase: caucus_protocol::Phase) -> &'static str {
    match phase {
        caucus_protocol::Phase::Gathering => "gathering",
        caucus_protocol::Phase::Caucusing { .. } => "caucusing",
        caucus_protocol::Phase::Reconvened { .. } => "reconvened",
        caucus_protocol::Phase::Ended => "ended",
    }
}
