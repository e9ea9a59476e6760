//! etcd's watch on the record prefix (`POST /v3/watch`, a stream of newline-delimited JSON
//! results through the JSON gateway): a [`Feed`] that wakes the membership thread when a
//! record is put or deleted, so joins and leaves are read at once instead of by polling.
//! A broken watch reconnects with a doubling, bounded back-off (the membership thread polls
//! meanwhile) and says when it is back; after [`WATCH_MAX_FAILURES`] attempts in a row that
//! never got the watch created (etcd down for long, or refusing the watch) it says so once
//! and tries only every [`RETRY_SLOW`], quietly, until one succeeds (an etcd restarted
//! after a long outage is watched again).

use super::etcd::EtcdClient;
use super::http;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use parking_lot::{Condvar, Mutex};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// First and longest pause before a broken watch is opened again.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Attempts in a row that never got a watch created before retries slow to [`RETRY_SLOW`].
pub const WATCH_MAX_FAILURES: u32 = 8;
/// The pause between attempts past [`WATCH_MAX_FAILURES`].
pub const RETRY_SLOW: Duration = Duration::from_secs(30);
/// Longest line (one watch result) read from the stream.
const MAX_LINE_BYTES: usize = super::etcd::MAX_RESPONSE_BYTES;

/// What the watch thread tells the membership thread.
#[derive(Default)]
struct State {
    /// Something under the prefix changed (or the watch was (re)created) since the last wait.
    changed: bool,
    /// The watch is created and streaming: no need to poll.
    live: bool,
}

/// The membership thread's end of a watch.
#[derive(Clone, Default)]
pub struct Feed {
    inner: Arc<(Mutex<State>, Condvar)>,
}

impl Feed {
    /// Waits up to `d` for a change; true when one came (it is then consumed).
    pub fn wait(&self, d: Duration) -> bool {
        let (lock, cv) = &*self.inner;
        let mut s = lock.lock();
        if !s.changed {
            let _ = cv.wait_for(&mut s, d);
        }
        std::mem::take(&mut s.changed)
    }

    /// The watch streams, or is being opened: joins and leaves arrive without polling.
    pub fn is_live(&self) -> bool {
        self.inner.0.lock().live
    }

    fn set(&self, live: bool, changed: bool) {
        let (lock, cv) = &*self.inner;
        let mut s = lock.lock();
        s.live = live;
        s.changed |= changed;
        if changed {
            cv.notify_all();
        }
    }
}

/// Watches every key from `key` up to `range_end` through `client` (its TLS and token) on
/// a thread of its own until `stop`; `what` names it in logs.
pub fn spawn(
    client: EtcdClient,
    what: String,
    key: Vec<u8>,
    range_end: Vec<u8>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<(Feed, std::thread::JoinHandle<()>)> {
    let feed = Feed::default();
    let theirs = feed.clone();
    let body =
        json!({"create_request": {"key": B64.encode(&key), "range_end": B64.encode(&range_end)}})
            .to_string();
    let handle = std::thread::Builder::new()
        .name("hf-etcd-watch".into())
        .spawn(move || run(&client, &what, body.as_bytes(), &theirs, &stop))?;
    Ok((feed, handle))
}

fn run(client: &EtcdClient, what: &str, body: &[u8], feed: &Feed, stop: &AtomicBool) {
    let (mut failures, mut backoff) = (0u32, BACKOFF_MIN);
    let mut retry = None;
    while !stop.load(Ordering::Acquire) {
        // Opening (bounded by the request timeout) counts as watching: what changes meanwhile
        // is read when the watch is created, so polling would only add reads.
        feed.set(true, false);
        let (created, why) = stream_once(client, body, feed, stop, retry);
        feed.set(false, false);
        if stop.load(Ordering::Acquire) {
            return;
        }
        if created {
            (failures, backoff) = (0, BACKOFF_MIN);
        } else {
            failures = failures.saturating_add(1);
        }
        retry = Some(failures);
        let pause = match failures {
            // A warning when the watch breaks and when reconnecting first fails; the
            // attempts after those at debug (an outage is not a flood of lines).
            f if f <= 1 => {
                tracing::warn!(
                    "membership: {what}: the watch ended ({why}); polling meanwhile, \
                     reconnecting in {backoff:?}"
                );
                backoff
            }
            f if f < WATCH_MAX_FAILURES => {
                tracing::debug!(
                    "membership: {what}: watch attempt {f} failed ({why}); next in {backoff:?}"
                );
                backoff
            }
            f if f == WATCH_MAX_FAILURES => {
                tracing::warn!(
                    "membership: {what}: the watch failed {f} times in a row (last: {why}); \
                     reading the records every {:?} and trying the watch every {RETRY_SLOW:?}",
                    super::join::POLL_INTERVAL
                );
                RETRY_SLOW
            }
            f => {
                tracing::debug!("membership: {what}: watch attempt {f} failed: {why}");
                RETRY_SLOW
            }
        };
        sleep_unless_stopped(pause, stop);
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One watch stream: whether etcd created it, and why it ended. A token etcd refused is
/// forgotten, so the next attempt authenticates again.
fn stream_once(
    client: &EtcdClient,
    body: &[u8],
    feed: &Feed,
    stop: &AtomicBool,
    retry: Option<u32>,
) -> (bool, String) {
    let token = match client.token() {
        Ok(t) => t,
        Err(e) => return (false, e.to_string()),
    };
    let mut created = false;
    let mut on_line = |line: &[u8]| -> Result<(), String> {
        match judge(line)? {
            Seen::Created => {
                created = true;
                if let Some(failed) = retry {
                    tracing::info!(
                        "membership: etcd {}: the watch is back (reconnected after {failed} \
                         failed attempt(s)); reading the records",
                        client.url
                    );
                }
                // Changes between our last read and now: read once more.
                feed.set(true, true);
            }
            Seen::Changed => feed.set(true, true),
            Seen::Nothing => {}
        }
        Ok(())
    };
    let req = http::Request {
        path: "/v3/watch",
        body,
        authorization: token.as_deref(),
    };
    let r = http::post_stream(
        client.endpoint(),
        &req,
        super::etcd::REQUEST_TIMEOUT,
        MAX_LINE_BYTES,
        &|| stop.load(Ordering::Acquire),
        &mut on_line,
    );
    let why = match r {
        Ok(()) => "etcd closed the stream".to_owned(),
        Err(e) => e.to_string(),
    };
    if let (Some(stale), true) = (
        &token,
        why.contains("invalid auth token") || why.contains("HTTP 401"),
    ) {
        client.forget_token(stale);
    }
    (created, why)
}

/// What one line of the watch stream says.
#[derive(Debug, PartialEq)]
enum Seen {
    Created,
    Changed,
    Nothing,
}

/// Judges one watch result; an error or a cancelled watch ends the stream (its reason).
fn judge(line: &[u8]) -> Result<Seen, String> {
    if line.is_empty() {
        return Ok(Seen::Nothing);
    }
    let v: Value =
        serde_json::from_slice(line).map_err(|e| format!("a watch line is not JSON: {e}"))?;
    if let Some(err) = v.get("error") {
        let m = err["message"].as_str().unwrap_or("(no message)");
        return Err(format!("etcd: {m}"));
    }
    let r = &v["result"];
    if r["canceled"] == true {
        let why = r["cancel_reason"].as_str().unwrap_or("no reason given");
        return Err(format!("etcd cancelled the watch: {why}"));
    }
    if r["created"] == true {
        return Ok(Seen::Created);
    }
    let events = r["events"].as_array().map_or(0, Vec::len);
    Ok(if events > 0 {
        Seen::Changed
    } else {
        Seen::Nothing
    })
}

fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let step = Duration::from_millis(50);
    let mut slept = Duration::ZERO;
    while slept < d && !stop.load(Ordering::Acquire) {
        std::thread::sleep(step);
        slept += step;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_lines_are_judged() {
        let created = br#"{"result":{"header":{"revision":"1"},"created":true}}"#;
        assert_eq!(judge(created), Ok(Seen::Created));
        let put = br#"{"result":{"header":{},"events":[{"kv":{"key":"L2E="}}]}}"#;
        assert_eq!(judge(put), Ok(Seen::Changed));
        assert_eq!(judge(br#"{"result":{"header":{}}}"#), Ok(Seen::Nothing));
        let cancel = br#"{"result":{"canceled":true,"cancel_reason":"compacted"}}"#;
        assert!(judge(cancel).unwrap_err().contains("compacted"));
        let err = br#"{"error":{"grpc_code":14,"message":"unavailable"}}"#;
        assert!(judge(err).unwrap_err().contains("unavailable"));
        assert!(judge(b"not json").is_err());
    }

    /// A fake gateway on loopback: answers every connection with `answer`, then holds it
    /// open until the test ends; a client of it.
    fn gateway(answer: &'static [u8]) -> EtcdClient {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for c in l.incoming().flatten() {
                use std::io::Write;
                let mut c = c;
                let _ = c.write_all(answer);
                held.push(c);
            }
        });
        let url = format!("etcd://{addr}/t").parse().unwrap();
        EtcdClient::new(url, &Default::default()).unwrap()
    }

    fn until(what: &str, f: impl Fn() -> bool) {
        let end = std::time::Instant::now() + Duration::from_secs(30);
        while !f() {
            assert!(std::time::Instant::now() < end, "{what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_streamed_event_wakes_the_feed_and_a_refused_watch_means_polling() {
        let stream = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            1c\r\n{\"result\":{\"created\":true}}\n\r\n\
            22\r\n{\"result\":{\"events\":[{\"kv\":{}}]}}\n\r\n";
        let stop = Arc::new(AtomicBool::new(false));
        let (feed, handle) = spawn(
            gateway(stream),
            "test".into(),
            b"/a".to_vec(),
            b"/b".to_vec(),
            Arc::clone(&stop),
        )
        .unwrap();
        until("a change", || feed.wait(Duration::from_millis(50)));
        assert!(feed.is_live());
        stop.store(true, Ordering::Release);
        handle.join().unwrap();
        // etcd refuses the watch: between attempts the feed is down, so the keeper polls.
        let refused = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        let stop = Arc::new(AtomicBool::new(false));
        let (feed, handle) = spawn(
            gateway(refused),
            "test".into(),
            b"/a".to_vec(),
            b"/b".to_vec(),
            Arc::clone(&stop),
        )
        .unwrap();
        until("the watch down", || !feed.is_live());
        assert!(
            !feed.wait(Duration::from_millis(1)),
            "a refusal is no change"
        );
        stop.store(true, Ordering::Release);
        handle.join().unwrap();
    }

    #[test]
    fn a_feed_wakes_its_waiter_once_per_change() {
        let f = Feed::default();
        assert!(!f.wait(Duration::from_millis(1)));
        f.set(true, true);
        assert!(f.is_live());
        assert!(f.wait(Duration::from_secs(60)));
        assert!(!f.wait(Duration::from_millis(1)));
    }
}
