//! wrk (Debian's `wrk`) as a load generator in a process of its own: one thread, the same
//! JSON body POSTed over and over, its figures read from its report. It costs the servers
//! less of the two cores than clients in the bench's own process do, and it is what the
//! issue's figures were taken with.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// What one wrk run did.
pub struct Figures {
    /// Requests answered per second.
    pub rate: f64,
    /// Requests answered in all.
    pub requests: u64,
    pub p50: Duration,
    pub p99: Duration,
}

/// A wrk script, written into `dir` as `name`, that POSTs `body` as `application/json`, with
/// `Authorization: Bearer <bearer>` when given.
pub fn post_script(dir: &Path, name: &str, body: &str, bearer: Option<&str>) -> PathBuf {
    let path = dir.join(name);
    let mut script = format!(
        "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = {}\n",
        // A JSON string is a valid Lua string literal for an ASCII body.
        serde_json::Value::from(body)
    );
    if let Some(bearer) = bearer {
        script += &format!(
            "wrk.headers[\"Authorization\"] = {}\n",
            serde_json::Value::from(format!("Bearer {bearer}"))
        );
    }
    std::fs::write(&path, script).expect("wrk script");
    path
}

/// Runs `script` against `url` from `concurrency` connections on one thread for `duration`;
/// `None` when wrk is not installed. Panics when any answer is not a 2xx or 3xx: wrk reads
/// nothing else of them.
pub async fn run(
    url: &str,
    concurrency: usize,
    duration: Duration,
    script: &Path,
) -> Option<Figures> {
    // A child process awaited, not waited for: the servers run on this runtime's threads.
    let output = tokio::process::Command::new("wrk")
        .args(["-t1", &format!("-c{concurrency}")])
        .arg(format!("-d{}s", duration.as_secs()))
        .args(["--latency", "-s"])
        .arg(script)
        .arg(url)
        .output()
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    // wrk writes times as `812.00us`, `1.23ms` or `1.01s`.
    let time = |value: &str| {
        let (number, scale) = if let Some(us) = value.strip_suffix("us") {
            (us, 1e-6)
        } else if let Some(ms) = value.strip_suffix("ms") {
            (ms, 1e-3)
        } else {
            (value.strip_suffix('s')?, 1.0)
        };
        number
            .parse::<f64>()
            .ok()
            .map(|n| Duration::from_secs_f64(n * scale))
    };
    let field = |prefix: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .map(str::trim)
    };
    let errors = field("Non-2xx or 3xx responses:");
    assert!(errors.is_none(), "wrk saw failures: {text}");
    // `  216792 requests in 4.00s, 347.34MB read`
    let requests = text
        .lines()
        .find(|line| line.contains(" requests in "))
        .and_then(|line| line.split_whitespace().next())
        .and_then(|n| n.parse().ok())?;
    Some(Figures {
        rate: field("Requests/sec:")?.parse().ok()?,
        requests,
        p50: time(field("50%")?)?,
        p99: time(field("99%")?)?,
    })
}
