//! Prometheus metrics, served at `/metrics`. Counters and gauges never carry message
//! text, names or ids: only kinds, codes and phases.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Open WebSocket connections.
pub const CONNECTIONS: &str = "caucus_connections";
/// Live sessions, by phase.
pub const SESSIONS: &str = "caucus_sessions";
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
        handle
    })
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
