//! The outbound HTTP client: ureq agents shared by every worker thread, one per destination
//! origin (see [`UreqTransport`]).
//!
//! - **Timeout**: one hard deadline per attempt (`HERALD_DELIVERY_TIMEOUT_MS`) covering DNS,
//!   connect, TLS, sending and the reply. ureq's per-phase timeouts would each restart the
//!   clock, so a receiver dripping its reply could hold an attempt for several timeouts —
//!   longer than the lease, which must outlive every attempt. ureq's global timeout does not
//!   have that hole; its known cost (the default resolver spawning a thread per request when a
//!   timeout is set) does not apply because the [`GuardedResolver`] answers literal addresses
//!   and cached names without a thread.
//! - **Keep-alive**: idle connections are kept (up to 256 per origin, for 30 s) so steady
//!   traffic to one receiver reuses its sockets.
//! - **No redirects**: a 3xx is a failed attempt like any non-2xx.
//! - **Bounded reading**: at most 4 KiB of a reply is read; the rest is never pulled off the
//!   socket (the connection is then dropped rather than reused), so a huge or endless reply
//!   costs neither memory nor time beyond the deadline.
//! - **No ambient proxy**: proxies from the environment are ignored — a proxy would resolve
//!   names itself and bypass the SSRF guard.

use crate::guard::{BlockedAddress, GuardedResolver};
use herald_domain::delivery::{AttemptError, AttemptRecord};
use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};
use ureq::config::AutoHeaderValue;
use ureq::http::uri::{Authority, Scheme};
use ureq::http::Uri;
use ureq::unversioned::transport::{Connector, DefaultConnector};
use ureq::Agent;

/// What came back from one attempt.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// The failure class; `None` for a 2xx.
    pub error: Option<AttemptError>,
    /// The first 4 KiB of the reply (lossy UTF-8), or a short description of the failure.
    pub body: String,
    /// A `Retry-After` hint from a 429/503, in milliseconds from now.
    pub retry_after_ms: Option<i64>,
}

/// Sends one delivery attempt. Blocking: callers run it on a blocking thread.
pub trait Transport: Send + Sync {
    /// POSTs `body` with `headers` to `url` and classifies what happened.
    fn post(&self, url: &str, headers: &[(String, String)], body: &[u8]) -> Answer;
}

/// The ureq transport with the SSRF guard: one agent (and so one pool of idle connections) per
/// destination origin.
///
/// Why not one agent for everything: ureq keeps a pool's idle connections in one list and, on
/// every request and every return of a connection, compares each entry's origin with every
/// other's to enforce the per-host limit. With ten receivers and a few hundred idle
/// connections that was over a thousand origin comparisons per delivery — measured as 11 % of
/// the whole machine's time in a ten-webhook closed loop. In a pool of one origin the same
/// work is one short pass.
pub struct UreqTransport {
    config: ureq::config::Config,
    resolver: GuardedResolver,
    agents: Mutex<Agents>,
    timeout: Duration,
}

/// The per-origin agents, with when each was last used.
struct Agents {
    by_origin: HashMap<(Scheme, Authority), (Agent, Instant)>,
    /// For destinations past [`MAX_ORIGINS`] and URLs without an origin.
    shared: Agent,
    swept: Instant,
}

/// Most origins with an agent of their own; past it the rest share one.
const MAX_ORIGINS: usize = 1_024;
/// An origin unused this long loses its agent, and so its idle connections.
const ORIGIN_IDLE: Duration = Duration::from_secs(60);

impl UreqTransport {
    /// An agent with a hard `timeout` per attempt; `allow_private` disables the SSRF guard.
    pub fn new(timeout: Duration, allow_private: bool) -> Self {
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .proxy(None)
            .timeout_global(Some(timeout))
            .user_agent(AutoHeaderValue::None)
            .accept(AutoHeaderValue::None)
            .accept_encoding(AutoHeaderValue::None)
            .max_idle_connections(256)
            .max_idle_connections_per_host(256)
            .max_idle_age(Duration::from_secs(30))
            .build();
        let resolver = GuardedResolver::new(allow_private);
        let shared = Self::agent_with(&config, &resolver);
        Self {
            agents: Mutex::new(Agents {
                by_origin: HashMap::new(),
                shared,
                swept: Instant::now(),
            }),
            config,
            resolver,
            timeout,
        }
    }

    fn agent_with(config: &ureq::config::Config, resolver: &GuardedResolver) -> Agent {
        Agent::with_parts(
            config.clone(),
            DefaultConnector::default().chain(crate::coalesce::CoalescingConnector),
            resolver.clone(),
        )
    }

    /// The agent for `uri`'s origin (scheme and authority, compared and hashed without regard
    /// to case), made on first use.
    fn agent_for(&self, uri: &Uri) -> Agent {
        let origin = uri.scheme().cloned().zip(uri.authority().cloned());
        let now = Instant::now();
        let mut agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        if now.duration_since(agents.swept) >= ORIGIN_IDLE {
            agents.swept = now;
            agents
                .by_origin
                .retain(|_, (_, used)| now.duration_since(*used) < ORIGIN_IDLE);
        }
        let Some(origin) = origin else {
            return agents.shared.clone();
        };
        if let Some((agent, used)) = agents.by_origin.get_mut(&origin) {
            *used = now;
            return agent.clone();
        }
        if agents.by_origin.len() >= MAX_ORIGINS {
            return agents.shared.clone();
        }
        let agent = Self::agent_with(&self.config, &self.resolver);
        agents.by_origin.insert(origin, (agent.clone(), now));
        agent
    }

    /// What the attempt log says about a timeout: Herald's words, not the HTTP client's.
    fn timed_out(&self) -> String {
        format!("no answer within {} ms", self.timeout.as_millis())
    }
}

impl Transport for UreqTransport {
    fn post(&self, url: &str, headers: &[(String, String)], body: &[u8]) -> Answer {
        // Parsed once: the URL picks the agent and is what the agent is given.
        let mut request = match url.parse::<Uri>() {
            Ok(uri) => self.agent_for(&uri).post(uri),
            // Not a URL ureq could send to either: let it say so in its own words.
            Err(_) => self
                .agents
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .shared
                .clone()
                .post(url),
        };
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let https = url.starts_with("https:");
        let mut response = match request.send(body) {
            Ok(response) => response,
            Err(error) => {
                let class = classify(&error, https);
                let body = match class {
                    AttemptError::Timeout => self.timed_out(),
                    _ => describe(&error),
                };
                return Answer {
                    status: None,
                    error: Some(class),
                    body,
                    retry_after_ms: None,
                };
            }
        };
        let status = response.status().as_u16();
        let retry_after_ms = if status == 429 || status == 503 {
            response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()))
        } else {
            None
        };
        let mut kept = Vec::with_capacity(512);
        let read = response
            .body_mut()
            .as_reader()
            .take(AttemptRecord::MAX_RESPONSE_BODY as u64)
            .read_to_end(&mut kept);
        let mut body = truncate_utf8(&kept);
        let error = match read {
            // An answer whose (first 4 KiB of) body did not arrive is not a success: its status
            // is kept, and the class says the answer started but did not finish.
            Err(e) => Some(match classify_io(&e, https) {
                AttemptError::Timeout => {
                    body = format!("{}; the reply's body was incomplete", self.timed_out());
                    AttemptError::Timeout
                }
                AttemptError::Tls => AttemptError::Tls,
                _ => AttemptError::ResponseIncomplete,
            }),
            Ok(_) if (200..300).contains(&status) => None,
            Ok(_) => Some(AttemptError::HttpStatus),
        };
        Answer {
            status: Some(status),
            error,
            body,
            retry_after_ms,
        }
    }
}

/// A short, safe description of a transport failure for the attempt log.
fn describe(error: &ureq::Error) -> String {
    let mut text = error.to_string();
    text.truncate(AttemptRecord::MAX_RESPONSE_BODY);
    text
}

/// Maps a ureq failure to the documented error classes.
pub fn classify(error: &ureq::Error, https: bool) -> AttemptError {
    use ureq::Error as E;
    match error {
        E::Timeout(_) => AttemptError::Timeout,
        E::HostNotFound => AttemptError::Dns,
        E::Other(inner) if inner.is::<BlockedAddress>() => AttemptError::BlockedAddress,
        E::Io(io) => classify_io(io, https),
        E::Tls(_) | E::Rustls(_) | E::Pem(_) | E::TlsRequired => AttemptError::Tls,
        // Refused, reset, garbage instead of HTTP: the connection did not carry an answer.
        _ => AttemptError::Connect,
    }
}

fn classify_io(error: &std::io::Error, https: bool) -> AttemptError {
    use std::io::ErrorKind as K;
    match error.kind() {
        K::TimedOut | K::WouldBlock => AttemptError::Timeout,
        // rustls reports handshake and certificate failures as invalid data on the stream.
        K::InvalidData if https => AttemptError::Tls,
        _ => {
            // ureq wraps its own errors (a timeout while reading the body) in io::Error.
            match error
                .get_ref()
                .and_then(|e| e.downcast_ref::<ureq::Error>())
            {
                Some(inner) => classify(inner, https),
                None => AttemptError::Connect,
            }
        }
    }
}

/// Parses `Retry-After` (delay-seconds or an HTTP date) into milliseconds from `now`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<i64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds.min(i64::MAX as u64 / 1000) as i64 * 1000);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(now)
            .map_or(0, |d| d.as_millis().min(i64::MAX as u128) as i64),
    )
}

fn truncate_utf8(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(parse_retry_after("120", now), Some(120_000));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&later, now), Some(30_000));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(0));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn blocked_destinations_are_classified_without_connecting() {
        let t = UreqTransport::new(Duration::from_secs(2), false);
        let a = t.post("http://127.0.0.1:9/hook", &[], b"{}");
        assert_eq!(a.error, Some(AttemptError::BlockedAddress));
        assert_eq!(a.status, None);
        let a = t.post("http://[::ffff:10.0.0.1]:9/hook", &[], b"{}");
        assert_eq!(a.error, Some(AttemptError::BlockedAddress));
    }

    #[test]
    fn a_refused_connection_is_a_connect_error() {
        // Bind then drop a listener to find a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let t = UreqTransport::new(Duration::from_secs(2), true);
        let a = t.post(&format!("http://127.0.0.1:{port}/"), &[], b"{}");
        assert_eq!(a.error, Some(AttemptError::Connect), "{a:?}");
    }

    #[test]
    fn a_timeout_is_described_in_herald_words() {
        // Accepts the connection and never answers.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let t = UreqTransport::new(Duration::from_millis(300), true);
        let a = t.post(&format!("http://127.0.0.1:{port}/"), &[], b"{}");
        assert_eq!(a.error, Some(AttemptError::Timeout), "{a:?}");
        assert_eq!(a.body, "no answer within 300 ms");
        drop(listener);
    }

    #[test]
    fn a_reply_cut_off_mid_body_is_incomplete_and_keeps_its_status() {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 1024];
            // The request: its head and the 2-byte body.
            while !seen.ends_with(b"\r\n\r\n{}") {
                let n = stream.read(&mut buf).unwrap();
                seen.extend_from_slice(&buf[..n]);
            }
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
                .unwrap();
        });
        let t = UreqTransport::new(Duration::from_secs(5), true);
        let a = t.post(&format!("http://127.0.0.1:{port}/"), &[], b"{}");
        server.join().unwrap();
        assert_eq!(a.error, Some(AttemptError::ResponseIncomplete), "{a:?}");
        assert_eq!(a.status, Some(200));
    }

    #[test]
    fn each_origin_gets_its_own_agent_and_paths_share_it() {
        let t = UreqTransport::new(Duration::from_secs(2), true);
        let free_port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (a, b) = (free_port(), free_port());
        for url in [
            format!("http://127.0.0.1:{a}/one"),
            format!("http://127.0.0.1:{a}/two?x=1"),
            format!("http://127.0.0.1:{b}/"),
            format!("https://127.0.0.1:{b}/"),
        ] {
            t.post(&url, &[], b"{}");
        }
        let agents = t.agents.lock().unwrap();
        let mut origins: Vec<String> = agents
            .by_origin
            .keys()
            .map(|(scheme, authority)| format!("{scheme}://{authority}"))
            .collect();
        origins.sort();
        let mut expected = vec![
            format!("http://127.0.0.1:{a}"),
            format!("http://127.0.0.1:{b}"),
            format!("https://127.0.0.1:{b}"),
        ];
        expected.sort();
        assert_eq!(origins, expected);
    }

    #[test]
    fn an_unknown_host_is_a_dns_error() {
        let t = UreqTransport::new(Duration::from_secs(5), true);
        let a = t.post("http://herald-no-such-host.invalid/", &[], b"{}");
        assert_eq!(a.error, Some(AttemptError::Dns), "{a:?}");
    }
}
