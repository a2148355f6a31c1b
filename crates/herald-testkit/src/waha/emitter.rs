//! How the WAHA double posts webhooks: WAHA's envelope, signed the way WAHA signs
//! (`X-Webhook-Hmac`: lowercase hex HMAC-SHA512 of the exact body; `X-Webhook-Hmac-Algorithm:
//! sha512`), with the request id and time headers WAHA adds (`X-Webhook-Request-Id`, fresh per
//! request; `X-Webhook-Timestamp`, epoch ms) and the webhook's custom headers, retried on a
//! non-2xx answer or a transport failure as the webhook's `retries` configure. The signing is
//! written here from WAHA's rule, independently of Herald's verifier, so a mistake in one
//! cannot hide in the other.
//!
//! [`WebhookEmitter::run_batch`] is the load generator for benchmarks: it pre-builds and
//! pre-signs many inbound messages (with a share of exact duplicates, as WAHA's retries
//! produce), then posts them at a fixed rate or closed-loop over a fixed number of
//! connections, and reports when each was acknowledged.

use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use sha2::Sha512;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// WAHA's envelope fields besides `event`, `session`, `payload` and `me`.
pub(crate) const ENGINE: &str = "WEBJS";

/// Epoch milliseconds now.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// A lower-case ULID with WAHA's `evt_` prefix.
pub(crate) fn event_id() -> String {
    format!("evt_{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// WAHA's webhook envelope (`WAHAWebhook*`). `legacy` leaves out `id` and `timestamp`, as WAHA
/// versions before envelope ids did.
pub fn envelope(
    session: &str,
    event: &str,
    payload: Value,
    me: Option<&Value>,
    legacy: bool,
) -> Value {
    let mut envelope = json!({
        "id": event_id(),
        "timestamp": now_ms(),
        "session": session,
        "metadata": {},
        "engine": ENGINE,
        "event": event,
        "payload": payload,
        "me": me,
        "environment": {
            "version": "2026.7.1",
            "engine": ENGINE,
            "tier": "PLUS",
            "browser": "/usr/bin/chromium",
            "platform": "linux/x86",
            "worker": {"id": null},
        },
    });
    if legacy {
        let fields = envelope.as_object_mut().expect("an object");
        fields.remove("id");
        fields.remove("timestamp");
    }
    envelope
}

/// The lowercase hex HMAC-SHA512 of `body` under `key`.
pub fn sign(key: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha512> as KeyInit>::new_from_slice(key.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// How a webhook is retried (WAHA's `RetriesConfiguration`).
#[derive(Clone, Debug, PartialEq)]
pub struct Retries {
    /// `linear`, `exponential` or `constant`.
    pub policy: String,
    /// The first delay, in WAHA seconds (see [`WebhookTarget::second`]).
    pub delay_seconds: f64,
    /// Attempts in all (at least 1).
    pub attempts: u32,
}

impl Retries {
    /// The delay before attempt `n + 1`, after attempt `n` (1-based) failed.
    fn delay_after(&self, attempt: u32) -> f64 {
        match self.policy.as_str() {
            "exponential" => self.delay_seconds * 2f64.powi(attempt.saturating_sub(1) as i32),
            "linear" => self.delay_seconds * attempt as f64,
            _ => self.delay_seconds,
        }
    }
}

/// Where and how one webhook is posted.
#[derive(Clone, Debug)]
pub struct WebhookTarget {
    /// The URL.
    pub url: String,
    /// The HMAC key; unsigned when `None`.
    pub hmac_key: Option<String>,
    /// Extra headers.
    pub custom_headers: Vec<(String, String)>,
    /// Retries; one attempt when `None`.
    pub retries: Option<Retries>,
    /// How long one WAHA "second" of retry delay lasts here (tests compress time).
    pub second: Duration,
}

impl WebhookTarget {
    /// The targets a WAHA session configuration (`config.webhooks`) names for `event`
    /// (`all_events` ignores each webhook's `events` list).
    pub fn from_config(
        config: &Value,
        event: &str,
        all_events: bool,
        second: Duration,
    ) -> Vec<Self> {
        let hooks = config
            .get("webhooks")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        hooks
            .iter()
            .filter(|hook| {
                all_events
                    || hook
                        .get("events")
                        .and_then(Value::as_array)
                        .is_some_and(|events| events.iter().any(|e| e == event || e == "*"))
            })
            .filter_map(|hook| {
                let url = hook.get("url")?.as_str()?.to_owned();
                let hmac_key = hook
                    .pointer("/hmac/key")
                    .and_then(Value::as_str)
                    .filter(|k| !k.is_empty())
                    .map(str::to_owned);
                let custom_headers = hook
                    .get("customHeaders")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|h| {
                        Some((
                            h.get("name")?.as_str()?.to_owned(),
                            h.get("value")?.as_str()?.to_owned(),
                        ))
                    })
                    .collect();
                let retries = hook
                    .get("retries")
                    .filter(|r| r.is_object())
                    .map(|r| Retries {
                        policy: r
                            .get("policy")
                            .and_then(Value::as_str)
                            .unwrap_or("constant")
                            .to_owned(),
                        delay_seconds: r.get("delaySeconds").and_then(Value::as_f64).unwrap_or(2.0),
                        attempts: r
                            .get("attempts")
                            .and_then(Value::as_u64)
                            .unwrap_or(1)
                            .clamp(1, 100) as u32,
                    });
                Some(Self {
                    url,
                    hmac_key,
                    custom_headers,
                    retries,
                    second,
                })
            })
            .collect()
    }
}

/// One HTTP attempt at posting a webhook.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// The answer's status, when there was one.
    pub status: Option<u16>,
    /// The answer's body (or the transport error).
    pub answer: String,
    /// When the answer (or the failure) came.
    pub at: Instant,
}

impl Attempt {
    /// Whether the receiver acknowledged (2xx).
    pub fn acknowledged(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// The answer's body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.answer).unwrap_or(Value::Null)
    }
}

/// One webhook posted (with all its attempts).
#[derive(Clone, Debug)]
pub struct Delivery {
    /// Where it went.
    pub target: WebhookTarget,
    /// The exact bytes posted (every attempt posts the same).
    pub body: Bytes,
    /// Its `X-Webhook-Hmac`, when signed.
    pub signature: Option<String>,
    /// Every attempt, in order.
    pub attempts: Vec<Attempt>,
}

impl Delivery {
    /// Whether the last attempt was acknowledged.
    pub fn acknowledged(&self) -> bool {
        self.attempts.last().is_some_and(Attempt::acknowledged)
    }

    /// The last attempt.
    pub fn last(&self) -> &Attempt {
        self.attempts.last().expect("at least one attempt")
    }
}

/// A keep-alive HTTP client that posts signed WAHA webhooks.
#[derive(Clone)]
pub struct WebhookEmitter {
    http: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl Default for WebhookEmitter {
    fn default() -> Self {
        Self::new()
    }
}

impl WebhookEmitter {
    /// An emitter whose attempts each wait at most 10 s for an answer.
    pub fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Self {
            http: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(1024)
                .build(connector),
            timeout: Duration::from_secs(10),
        }
    }

    /// Posts `body` to `target`, retrying as the target says until an attempt is acknowledged.
    pub async fn deliver(&self, target: &WebhookTarget, body: Bytes) -> Delivery {
        let signature = target.hmac_key.as_deref().map(|key| sign(key, &body));
        let mut delivery = Delivery {
            target: target.clone(),
            body,
            signature,
            attempts: Vec::new(),
        };
        let attempts = target.retries.as_ref().map_or(1, |r| r.attempts);
        for attempt in 1..=attempts {
            let result = self.attempt(&delivery).await;
            let done = result.acknowledged();
            delivery.attempts.push(result);
            if done || attempt == attempts {
                break;
            }
            let delay = target
                .retries
                .as_ref()
                .map_or(0.0, |r| r.delay_after(attempt));
            tokio::time::sleep(target.second.mul_f64(delay)).await;
        }
        delivery
    }

    /// Posts a delivery's exact bytes once more (a duplicate, as WAHA sends when a webhook is
    /// configured twice or a retry overlaps a slow answer), with a fresh request id.
    pub async fn resend(&self, delivery: &Delivery) -> Attempt {
        self.attempt(delivery).await
    }

    async fn attempt(&self, delivery: &Delivery) -> Attempt {
        let target = &delivery.target;
        let mut request = http::Request::post(&target.url)
            .header("content-type", "application/json")
            .header("x-webhook-request-id", event_id().replace("evt_", "req_"))
            .header("x-webhook-timestamp", now_ms().to_string());
        if let Some(signature) = &delivery.signature {
            request = request
                .header("x-webhook-hmac", signature.as_str())
                .header("x-webhook-hmac-algorithm", "sha512");
        }
        for (name, value) in &target.custom_headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request
            .body(Full::new(delivery.body.clone()))
            .expect("a webhook request");
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| format!("{e:?}"))?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((status, String::from_utf8_lossy(&body).into_owned()))
        };
        let (status, answer) = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok((status, answer))) => (Some(status), answer),
            Ok(Err(error)) => (None, error),
            Err(_) => (None, format!("no answer within {:?}", self.timeout)),
        };
        Attempt {
            status,
            answer,
            at: Instant::now(),
        }
    }

    /// Sends a batch of inbound text messages for benchmarks (see [`BatchPlan`]).
    pub async fn run_batch(&self, plan: &BatchPlan) -> BatchReport {
        let prepared = Arc::new(plan.prepare());
        let target = Arc::new(plan.target.clone());
        let next = Arc::new(AtomicUsize::new(0));
        let results: Arc<std::sync::Mutex<Vec<Option<BatchItem>>>> =
            Arc::new(std::sync::Mutex::new(vec![None; prepared.len()]));
        let started = Instant::now();
        let send = {
            let (emitter, prepared, target, results) = (
                self.clone(),
                prepared.clone(),
                target.clone(),
                results.clone(),
            );
            move |index: usize| {
                let (emitter, prepared, target, results) = (
                    emitter.clone(),
                    prepared.clone(),
                    target.clone(),
                    results.clone(),
                );
                async move {
                    let item = &prepared[index];
                    let delivery = Delivery {
                        target: (*target).clone(),
                        body: item.body.clone(),
                        signature: Some(item.signature.clone()),
                        attempts: Vec::new(),
                    };
                    let sent_at = Instant::now();
                    let attempt = emitter.attempt(&delivery).await;
                    results.lock().expect("lock")[index] = Some(BatchItem {
                        message_id: item.message_id.clone(),
                        duplicate: item.duplicate,
                        status: attempt.status,
                        sent_at,
                        acknowledged_at: attempt.at,
                    });
                }
            }
        };
        match plan.pacing {
            Pacing::ClosedLoop { connections } => {
                let workers: Vec<_> = (0..connections.max(1))
                    .map(|_| {
                        let (next, send, total) = (next.clone(), send.clone(), prepared.len());
                        tokio::spawn(async move {
                            loop {
                                let index = next.fetch_add(1, Ordering::Relaxed);
                                if index >= total {
                                    break;
                                }
                                send(index).await;
                            }
                        })
                    })
                    .collect();
                for worker in workers {
                    let _ = worker.await;
                }
            }
            Pacing::Rate {
                per_second,
                max_in_flight,
            } => {
                let permits = Arc::new(tokio::sync::Semaphore::new(max_in_flight.max(1)));
                let mut ticker = tokio::time::interval(Duration::from_secs_f64(
                    1.0 / f64::from(per_second.max(1)),
                ));
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                let mut tasks = Vec::with_capacity(prepared.len());
                for index in 0..prepared.len() {
                    ticker.tick().await;
                    let permit = permits
                        .clone()
                        .acquire_owned()
                        .await
                        .expect("open semaphore");
                    let send = send.clone();
                    tasks.push(tokio::spawn(async move {
                        send(index).await;
                        drop(permit);
                    }));
                }
                for task in tasks {
                    let _ = task.await;
                }
            }
        }
        let elapsed = started.elapsed();
        let items = Arc::try_unwrap(results)
            .map(|m| m.into_inner().expect("lock"))
            .unwrap_or_else(|shared| shared.lock().expect("lock").clone());
        BatchReport {
            items: items.into_iter().flatten().collect(),
            elapsed,
        }
    }
}

/// How a batch is paced.
#[derive(Clone, Copy, Debug)]
pub enum Pacing {
    /// Open loop: one request every `1/per_second` s, at most `max_in_flight` unanswered.
    Rate {
        /// Requests per second.
        per_second: u32,
        /// Cap on requests awaiting an answer.
        max_in_flight: usize,
    },
    /// Closed loop: `connections` senders, each posting its next request when the last is
    /// answered.
    ClosedLoop {
        /// Concurrent senders (and so keep-alive connections).
        connections: usize,
    },
}

/// A benchmark batch: `count` requests carrying inbound text messages for WAHA session
/// `session`, of which `duplicate_percent` % repeat an earlier request byte for byte.
#[derive(Clone, Debug)]
pub struct BatchPlan {
    /// Where the webhooks go, and their key.
    pub target: WebhookTarget,
    /// The WAHA session named in every envelope.
    pub session: String,
    /// The chat (and sender) of every message.
    pub from: String,
    /// Requests in all, duplicates included.
    pub count: usize,
    /// Share of requests that are duplicates (0..=100).
    pub duplicate_percent: u8,
    /// How they are sent.
    pub pacing: Pacing,
}

/// One pre-signed request of a batch.
#[derive(Clone, Debug)]
struct Prepared {
    message_id: String,
    duplicate: bool,
    body: Bytes,
    signature: String,
}

impl BatchPlan {
    /// The requests, built and signed up front so sending measures only the receiver. Spread
    /// evenly, every duplicate repeats the request just before it (as a retry would).
    fn prepare(&self) -> Vec<Prepared> {
        let key = self.target.hmac_key.clone().unwrap_or_default();
        let percent = usize::from(self.duplicate_percent.min(100));
        let mut prepared: Vec<Prepared> = Vec::with_capacity(self.count);
        for index in 0..self.count {
            // Request `index` is a duplicate when it crosses the next whole duplicate.
            let duplicate = index > 0 && (index + 1) * percent / 100 > index * percent / 100;
            if duplicate {
                let mut again = prepared[index - 1].clone();
                again.duplicate = true;
                prepared.push(again);
                continue;
            }
            let message_id = format!("false_{}_{}", self.from, ulid::Ulid::new());
            let payload = super::message_payload(
                &message_id,
                &self.from,
                None,
                false,
                "app",
                "bench",
                json!({"type": "chat"}),
            );
            let envelope = envelope(&self.session, "message", payload, None, false);
            let body = Bytes::from(serde_json::to_vec(&envelope).expect("json"));
            let signature = sign(&key, &body);
            prepared.push(Prepared {
                message_id,
                duplicate: false,
                body,
                signature,
            });
        }
        prepared
    }
}

/// One request of a batch, as it went.
#[derive(Clone, Debug)]
pub struct BatchItem {
    /// The message it carried.
    pub message_id: String,
    /// Whether it repeated the request before it.
    pub duplicate: bool,
    /// The answer's status (`None` on a transport failure or timeout).
    pub status: Option<u16>,
    /// When it was sent.
    pub sent_at: Instant,
    /// When the answer came.
    pub acknowledged_at: Instant,
}

/// What a batch did.
#[derive(Clone, Debug)]
pub struct BatchReport {
    /// Every request, in plan order.
    pub items: Vec<BatchItem>,
    /// From the first send to the last answer.
    pub elapsed: Duration,
}

impl BatchReport {
    /// Requests answered 2xx.
    pub fn acknowledged(&self) -> usize {
        self.items
            .iter()
            .filter(|i| i.status.is_some_and(|s| (200..300).contains(&s)))
            .count()
    }

    /// Requests that repeated an earlier one.
    pub fn duplicates(&self) -> usize {
        self.items.iter().filter(|i| i.duplicate).count()
    }

    /// The distinct messages sent.
    pub fn unique_messages(&self) -> Vec<&str> {
        self.items
            .iter()
            .filter(|i| !i.duplicate)
            .map(|i| i.message_id.as_str())
            .collect()
    }

    /// Acknowledged requests per second.
    pub fn throughput(&self) -> f64 {
        self.acknowledged() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// The `p`th percentile (0..=100) of send-to-answer times.
    pub fn latency_percentile(&self, p: f64) -> Duration {
        let mut times: Vec<Duration> = self
            .items
            .iter()
            .map(|i| i.acknowledged_at.saturating_duration_since(i.sent_at))
            .collect();
        times.sort();
        crate::percentile(&times, p).unwrap_or(Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wahas_published_vector_signs() {
        assert_eq!(
            sign("my-secret-key", br#"{"event":"message","session":"default","engine":"WEBJS"}"#),
            "208f8a55dde9e05519e898b10b89bf0d0b3b0fdf11fdbf09b6b90476301b98d8097c462b2b17a6ce93b6b47a136cf2e78a33a63f6752c2c1631777076153fa89"
        );
    }

    #[test]
    fn retry_delays_follow_the_policy() {
        let retries = |policy: &str| Retries {
            policy: policy.into(),
            delay_seconds: 2.0,
            attempts: 4,
        };
        let delays = |r: Retries| (1..=3).map(|n| r.delay_after(n)).collect::<Vec<_>>();
        assert_eq!(delays(retries("exponential")), vec![2.0, 4.0, 8.0]);
        assert_eq!(delays(retries("linear")), vec![2.0, 4.0, 6.0]);
        assert_eq!(delays(retries("constant")), vec![2.0, 2.0, 2.0]);
    }

    #[test]
    fn batches_hold_the_asked_share_of_exact_duplicates() {
        let plan = BatchPlan {
            target: WebhookTarget {
                url: "http://127.0.0.1:9/x".into(),
                hmac_key: Some("k".into()),
                custom_headers: vec![],
                retries: None,
                second: Duration::from_millis(1),
            },
            session: "default".into(),
            from: "22222222222@c.us".into(),
            count: 1000,
            duplicate_percent: 10,
            pacing: Pacing::ClosedLoop { connections: 1 },
        };
        let prepared = plan.prepare();
        assert_eq!(prepared.len(), 1000);
        assert_eq!(prepared.iter().filter(|p| p.duplicate).count(), 100);
        for (index, item) in prepared.iter().enumerate() {
            assert_eq!(item.signature, sign("k", &item.body));
            if item.duplicate {
                assert_eq!(item.body, prepared[index - 1].body);
            }
        }
        let unique: std::collections::HashSet<_> = prepared.iter().map(|p| &p.message_id).collect();
        assert_eq!(unique.len(), 900);
    }
}
