//! The web client the binary serves: every file the page and its modules ask for is
//! there, with the right type and the same strict Content-Security-Policy. A module
//! added to `web-client/` without its route would leave the page blank.

use std::collections::{BTreeSet, VecDeque};

use anyhow::{Result, ensure};
use caucus_tests::http;

use crate::support::TestServer;

/// The paths on this server that `text` refers to: `href="/…"`, `src="/…"`, and
/// module imports `from "./…"`.
fn references(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for marker in ["href=\"/", "src=\"/", "from \"./"] {
        for (at, _) in text.match_indices(marker) {
            let rest = &text[at + marker.len()..];
            if let Some(end) = rest.find('"') {
                found.push(format!("/{}", &rest[..end]));
            }
        }
    }
    found
}

#[tokio::test]
async fn every_file_the_page_and_its_modules_ask_for_is_served_with_a_strict_policy() -> Result<()> {
    let server = TestServer::start().await;
    let mut queue = VecDeque::from(["/".to_owned()]);
    let mut seen = BTreeSet::new();
    while let Some(path) = queue.pop_front() {
        if !seen.insert(path.clone()) || path == "/#main" || path.starts_with("/#") {
            continue;
        }
        let response = http(server.address, "GET", &path, &[], None).await?;
        ensure!(response.status == 200, "{path}: {} {}", response.status, response.body);
        let kind = response.header("content-type").unwrap_or_default().to_owned();
        let expected = match path.rsplit('.').next() {
            Some("js") => "text/javascript",
            Some("css") => "text/css",
            Some("svg") => "image/svg+xml",
            _ => "text/html",
        };
        ensure!(kind.starts_with(expected), "{path} is served as {kind}, not {expected}");
        let policy = response.header("content-security-policy").unwrap_or_default();
        ensure!(
            policy.contains("script-src 'self'") && policy.contains("default-src 'self'"),
            "{path}: {policy}"
        );
        if expected != "image/svg+xml" {
            queue.extend(references(&response.body));
        }
    }
    for needed in ["/app.js", "/account.js", "/community.js", "/drafts.js", "/style.css", "/favicon.svg"] {
        ensure!(seen.contains(needed), "{needed} is never asked for: {seen:?}");
    }
    Ok(())
}
