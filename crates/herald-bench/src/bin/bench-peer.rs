//! `just bench-peer`: Herald's webhook delivery measured the way a peer gateway is measured, and
//! printed as one Markdown table beside fixed reference figures for Svix.
//!
//! **System under test**, each started afresh for every scenario of every run, on a database of
//! its own: `pg` — `herald-api --with-dispatcher` on Postgres (one process); `sqlite` —
//! `herald-api` on the embedded SQLite store in a temporary directory (it delivers in-process);
//! `pg2` — two-service mode on Postgres, `herald-api` plus one `herald-dispatcher`. The release
//! binaries run as separate processes (`HERALD_DELIVERY_ALLOW_PRIVATE=true`, everything else at
//! its default); Postgres is the server at `HERALD_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), where a fresh database is created each time.
//!
//! **Load.** Events enter through `POST /api/v1/sessions/{id}/inbound` with an API key that has
//! `ingest`, on a session of the built-in simulator engine: each request reports a text
//! `message` from someone else with an idempotency key and a message id never used before, so
//! none is dropped as a repeat. Every webhook subscribes to `message` only, so one inbound is one
//! delivery per webhook. Closed-loop scenarios use `BENCH_CONNECTIONS` keep-alive clients, each
//! sending its next request as soon as the previous answer is read; paced scenarios send at a
//! fixed rate, each request on its own task.
//!
//! **Receivers.** One keep-alive HTTP/1 receiver per webhook on loopback, in this process,
//! answering 200 at once and noting when each event (`X-Webhook-Request-Id`, the event id the
//! API's `202` carried) first arrived. Latency is that arrival minus the moment the API's `2xx`
//! reached the load generator; a delivery that beats the `2xx` (it can: the commit wakes the
//! dispatcher before the answer is written) counts as 0.
//!
//! **Scenarios** (each warms up `BENCH_WARMUP_SECS`, then measures `BENCH_SECS`):
//! 1. `closed1` — 1 webhook, closed loop: events/s accepted; events/s delivered, counting the
//!    window's events until the last of them arrived (window + drain); the backlog (accepted,
//!    not yet delivered) when the window ends.
//! 2. `lat1` — 1 webhook at 500 events/s: `2xx` → receiver p50 / p99.
//! 3. `lat10` — 10 webhooks at 200 events/s: `2xx` → receiver p50 / p99 over every delivery.
//! 4. `closed10` — 10 webhooks, closed loop: deliveries/s while the load runs, events/s
//!    accepted, and the backlog when it stops, as `/metrics` shows it
//!    (`herald_deliveries_pending`, `herald_delivery_oldest_due_age_seconds`; refreshed every
//!    5 s, so up to 5 s old) and as the receivers count it (exact).
//! 5. `cpu` — 1 webhook at 500 events/s: CPU time (utime + stime from `/proc/<pid>/stat`) of the
//!    Herald process(es), and of every process whose name starts with `postgres` (all of that
//!    server's databases, so other users of it count too), from before to after the window,
//!    per event and per 1,000 deliveries.
//!
//! Every scenario also notes the Herald processes' peak RSS (`VmHWM`); the table shows the
//! largest of a run. The bench process itself (clients and receivers) shares the machine and is
//! not counted anywhere.
//!
//! **Settings** (environment): `BENCH_SECS` (20), `BENCH_WARMUP_SECS` (3), `BENCH_RUNS` (2; the
//! systems alternate within each scenario and their order flips every other run, so drift on a
//! shared machine hits them alike), `BENCH_SYSTEMS` (`pg,sqlite,pg2`), `BENCH_SCENARIOS`
//! (`closed1,lat1,lat10,closed10,cpu`, or their numbers `1`–`5`), `BENCH_CONNECTIONS` (32),
//! `HERALD_DB_POOL_SIZE` (32, passed to Herald), `HERALD_TEST_DATABASE_URL`.
//!
//! **Output**: a line per scenario and system as it completes, then the table — the median over
//! runs for each cell (the largest for RSS) — with a last column of Svix 1.100 figures measured
//! earlier on this machine class (reference only: not measured by this run), and the targets.
//! It measures; it asserts nothing about timings.

use anyhow::{bail, Context, Result};
use herald_bench::delivery::{
    dispatcher, free_port, loadavg, paced_with, percentile, rss_kib, start_sink, wait_for,
    wait_for_port, Env, Sink,
};
use herald_testkit::{Backend, Client, TestDb};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Message ids (and idempotency keys) never repeat within the process.
static NEXT_MESSAGE: AtomicU64 = AtomicU64::new(0);

/// One inbound `message` report with a fresh id.
fn inbound_body() -> Value {
    let id = format!("bp{}", NEXT_MESSAGE.fetch_add(1, Ordering::Relaxed));
    json!({
        "event": "message",
        "id": id,
        "payload": {"id": id, "chat": "15550001111@c.us", "sender": "15550002222@c.us",
                    "type": "text", "body": "bench-peer"}
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum System {
    Pg,
    Sqlite,
    Pg2,
}

impl System {
    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "pg" => Self::Pg,
            "sqlite" => Self::Sqlite,
            "pg2" => Self::Pg2,
            other => bail!("unknown system {other:?} in BENCH_SYSTEMS (pg, sqlite, pg2)"),
        })
    }

    fn title(self) -> &'static str {
        match self {
            Self::Pg => "Herald on Postgres",
            Self::Sqlite => "Herald on SQLite",
            Self::Pg2 => "Herald two-service PG",
        }
    }

    fn backend(self) -> Backend {
        match self {
            Self::Sqlite => Backend::Sqlite,
            Self::Pg | Self::Pg2 => Backend::Postgres,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    Closed1,
    Lat1,
    Lat10,
    Closed10,
    Cpu,
}

impl Scenario {
    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "1" | "closed1" => Self::Closed1,
            "2" | "lat1" => Self::Lat1,
            "3" | "lat10" => Self::Lat10,
            "4" | "closed10" => Self::Closed10,
            "5" | "cpu" => Self::Cpu,
            other => bail!(
                "unknown scenario {other:?} in BENCH_SCENARIOS (closed1, lat1, lat10, closed10, cpu or 1-5)"
            ),
        })
    }

    fn webhooks(self) -> usize {
        match self {
            Self::Lat10 | Self::Closed10 => 10,
            _ => 1,
        }
    }
}

/// The knobs of a whole invocation.
struct Settings {
    secs: f64,
    warmup: f64,
    connections: usize,
}

fn env_num(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A running system with its database, an ingest key, a session and its webhooks' receivers.
struct Stack {
    client: Client,
    token: String,
    inbound: String,
    sinks: Vec<Arc<Sink>>,
    api: Child,
    dispatcher: Option<Child>,
    // Dropped last: the database outlives the processes using it.
    _db: TestDb,
}

impl Stack {
    async fn start(system: System, webhooks: usize) -> Result<Self> {
        let db = TestDb::new(system.backend()).await;
        let config = db.config();
        let (env, token) = Env::prepare(&config, "manage,read,ingest").await?;
        let api_port = free_port()?;
        let mut command = env.command("herald-api")?;
        command.env("HERALD_LISTEN", format!("127.0.0.1:{api_port}"));
        if system == System::Pg {
            command.arg("--with-dispatcher");
        }
        let api = command.spawn()?;
        let dispatcher = match system {
            System::Pg2 => Some(dispatcher(&env)?),
            System::Pg | System::Sqlite => None,
        };
        let mut stack = Self {
            client: Client::new(&format!("http://127.0.0.1:{api_port}")),
            token,
            inbound: String::new(),
            sinks: Vec::new(),
            api,
            dispatcher,
            _db: db,
        };
        wait_for_port(api_port).await?;
        let session = stack
            .client
            .post("/api/v1/sessions", &stack.token, &json!({"name": "bench"}))
            .await;
        let id = session.json["id"]
            .as_str()
            .with_context(|| format!("session not created: {}", session.json))?;
        stack.inbound = format!("/api/v1/sessions/{id}/inbound");
        for _ in 0..webhooks {
            let (sink, addr) = start_sink().await?;
            let created = stack
                .client
                .post(
                    "/api/v1/webhooks",
                    &stack.token,
                    &json!({"url": format!("http://{addr}/hook"), "events": ["message"]}),
                )
                .await;
            if created.json["id"].as_str().is_none() {
                bail!("webhook not created: {}", created.json);
            }
            stack.sinks.push(sink);
        }
        Ok(stack)
    }

    fn pids(&self) -> Vec<u32> {
        std::iter::once(self.api.id())
            .chain(self.dispatcher.as_ref().map(Child::id))
            .collect()
    }

    /// Deliveries received so far, over every receiver.
    fn delivered(&self) -> u64 {
        self.sinks
            .iter()
            .map(|s| s.count.load(Ordering::Relaxed))
            .sum()
    }

    /// Waits until the receivers hold at least `total` deliveries; false after `timeout`.
    async fn drained(&self, total: u64, timeout: Duration) -> bool {
        wait_for("deliveries", timeout, || self.delivered() >= total)
            .await
            .is_ok()
    }

    /// Peak RSS (VmHWM) of the API and, in two-service mode, the dispatcher, in MiB.
    fn peak_rss(&self) -> (f64, Option<f64>) {
        let mib = |pid| rss_kib(pid, "VmHWM:") as f64 / 1024.0;
        (
            mib(self.api.id()),
            self.dispatcher.as_ref().map(|d| mib(d.id())),
        )
    }

    /// `POST`s inbound reports from `connections` clients, each sending its next as soon as the
    /// previous is answered, for `duration`; returns the `2xx` count and the others.
    async fn closed_loop(&self, connections: usize, duration: Duration) -> (u64, u64) {
        let accepted = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + duration;
        let tasks: Vec<_> = (0..connections)
            .map(|_| {
                let (client, token, path) = (
                    self.client.clone(),
                    self.token.clone(),
                    self.inbound.clone(),
                );
                let (accepted, refused) = (accepted.clone(), refused.clone());
                tokio::spawn(async move {
                    while Instant::now() < deadline {
                        match client.try_post(&path, &token, &inbound_body()).await {
                            Some(reply) if (200..300).contains(&reply.status) => {
                                accepted.fetch_add(1, Ordering::Relaxed)
                            }
                            _ => refused.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                })
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
        (
            accepted.load(Ordering::Relaxed),
            refused.load(Ordering::Relaxed),
        )
    }

    /// Inbound reports at `rate` per second for `duration`: each accepted event id with the
    /// moment its `2xx` arrived.
    async fn paced(&self, rate: f64, duration: Duration) -> Result<Vec<(String, Instant)>> {
        let path = self.inbound.clone();
        paced_with(&self.client, &self.token, rate, duration, |_| {
            (path.clone(), inbound_body())
        })
        .await
    }

    /// `2xx` → receiver latencies (ms, sorted) of `acked` on every receiver, once all arrived
    /// or `timeout` passed; and how many never arrived.
    async fn latencies(&self, acked: &[(String, Instant)], timeout: Duration) -> (Vec<f64>, usize) {
        let expected = acked.len() * self.sinks.len();
        let _ = wait_for("deliveries", timeout, || {
            self.sinks
                .iter()
                .map(|s| {
                    let arrivals = s.arrivals.lock().unwrap();
                    acked
                        .iter()
                        .filter(|(id, _)| arrivals.contains_key(id))
                        .count()
                })
                .sum::<usize>()
                >= expected
        })
        .await;
        let mut latencies = Vec::with_capacity(expected);
        for sink in &self.sinks {
            let arrivals = sink.arrivals.lock().unwrap();
            for (id, ok) in acked {
                if let Some(at) = arrivals.get(id) {
                    latencies.push(at.saturating_duration_since(*ok).as_secs_f64() * 1e3);
                }
            }
        }
        latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let missing = expected - latencies.len();
        (latencies, missing)
    }

    /// A gauge from the API's `/metrics`, if it shows it.
    async fn gauge(&self, name: &str) -> Option<f64> {
        let reply = self
            .client
            .try_send_raw("GET", "/metrics", None, None, &[])
            .await
            .ok()?;
        String::from_utf8_lossy(&reply.body).lines().find_map(|l| {
            let (metric, value) = l.split_once(' ')?;
            (metric == name).then(|| value.trim().parse().ok())?
        })
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Nothing here is worth a graceful stop, and a backlog could hold one up.
        for child in std::iter::once(&mut self.api).chain(self.dispatcher.as_mut()) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// CPU ticks (utime + stime) of one process, 0 once it is gone.
fn cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // The name in parentheses may hold spaces: count fields after its closing one.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> u64 { fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0) };
    // After the name: state is field 3 of stat(5), utime 14, stime 15.
    field(11) + field(12)
}

/// CPU ticks of every process whose name starts with `postgres`.
fn postgres_ticks() -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.starts_with("postgres"))
        })
        .map(cpu_ticks)
        .sum()
}

/// Clock ticks per second of `/proc/<pid>/stat` times.
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The figures of one scenario on one system in one run, by name.
type Figures = Vec<(&'static str, f64)>;

async fn run_scenario(system: System, scenario: Scenario, settings: &Settings) -> Result<Figures> {
    let stack = Stack::start(system, scenario.webhooks()).await?;
    let secs = Duration::from_secs_f64(settings.secs);
    let warmup = Duration::from_secs_f64(settings.warmup);
    let drain_timeout = Duration::from_secs_f64((settings.secs * 5.0).max(60.0));
    let webhooks = stack.sinks.len() as u64;
    let mut figures: Figures = Vec::new();
    let name = system.title();
    match scenario {
        Scenario::Closed1 | Scenario::Closed10 => {
            let (warm, _) = stack.closed_loop(settings.connections, warmup).await;
            if !stack.drained(warm * webhooks, drain_timeout).await {
                println!("  ({name}: the warm-up's deliveries did not all arrive)");
            }
            let base = stack.delivered();
            let started = Instant::now();
            let (accepted, refused) = stack.closed_loop(settings.connections, secs).await;
            let window = started.elapsed().as_secs_f64();
            let in_window = stack.delivered() - base;
            let expected = accepted * webhooks;
            let backlog = expected.saturating_sub(in_window);
            if scenario == Scenario::Closed1 {
                let drained = stack.drained(base + expected, drain_timeout).await;
                let total = started.elapsed().as_secs_f64();
                let delivered = (stack.delivered() - base).min(expected);
                println!(
                    "closed1  {name}: {accepted} events accepted in {window:.1} s = {:.0}/s ({refused} refused); {:.0} delivered/s over window + drain ({total:.1} s{}); backlog at the window's end {backlog}",
                    accepted as f64 / window,
                    delivered as f64 / total,
                    if drained { "" } else { ", NOT drained" },
                );
                figures.push(("closed1.accepted", accepted as f64 / window));
                figures.push(("closed1.delivered", delivered as f64 / total));
                figures.push(("closed1.backlog", backlog as f64));
            } else {
                let pending = stack.gauge("herald_deliveries_pending").await;
                let oldest = stack.gauge("herald_delivery_oldest_due_age_seconds").await;
                let show = |v: Option<f64>| v.map_or("not shown".to_owned(), |v| format!("{v}"));
                println!(
                    "closed10 {name}: {:.0} deliveries/s while loaded; {accepted} events accepted = {:.0}/s ({refused} refused); backlog after: herald_deliveries_pending {}, herald_delivery_oldest_due_age_seconds {}, receivers' count {backlog}",
                    in_window as f64 / window,
                    accepted as f64 / window,
                    show(pending),
                    show(oldest),
                );
                figures.push(("closed10.deliveries", in_window as f64 / window));
                figures.push(("closed10.accepted", accepted as f64 / window));
                figures.push(("closed10.backlog", backlog as f64));
                if let Some(p) = pending {
                    figures.push(("closed10.pending_gauge", p));
                }
                if let Some(o) = oldest {
                    figures.push(("closed10.oldest_age", o));
                }
            }
        }
        Scenario::Lat1 | Scenario::Lat10 => {
            let rate = if scenario == Scenario::Lat1 {
                500.0
            } else {
                200.0
            };
            let started = Instant::now();
            let acked = stack.paced(rate, warmup + secs).await?;
            let measured: Vec<_> = acked
                .into_iter()
                .filter(|(_, at)| *at >= started + warmup)
                .collect();
            let (latencies, missing) = stack.latencies(&measured, drain_timeout).await;
            let early = latencies.iter().filter(|l| **l == 0.0).count();
            let key = if scenario == Scenario::Lat1 {
                "lat1"
            } else {
                "lat10"
            };
            println!(
                "{key:<8} {name}: {} events at {rate:.0}/s × {webhooks} webhook(s) = {} deliveries: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({early} before the 2xx, {missing} never arrived)",
                measured.len(),
                latencies.len(),
                percentile(&latencies, 50.0),
                percentile(&latencies, 99.0),
                latencies.last().copied().unwrap_or(f64::NAN),
            );
            let (p50, p99) = if key == "lat1" {
                ("lat1.p50", "lat1.p99")
            } else {
                ("lat10.p50", "lat10.p99")
            };
            figures.push((p50, percentile(&latencies, 50.0)));
            figures.push((p99, percentile(&latencies, 99.0)));
        }
        Scenario::Cpu => {
            let warm = stack.paced(500.0, warmup).await?;
            stack
                .drained(warm.len() as u64 * webhooks, drain_timeout)
                .await;
            let pids = stack.pids();
            let herald_before: Vec<u64> = pids.iter().map(|p| cpu_ticks(*p)).collect();
            let pg_before = postgres_ticks();
            let base = stack.delivered();
            let acked = stack.paced(500.0, secs).await?;
            stack
                .drained(base + acked.len() as u64 * webhooks, drain_timeout)
                .await;
            let herald_after: Vec<u64> = pids.iter().map(|p| cpu_ticks(*p)).collect();
            let pg_after = postgres_ticks();
            let deliveries = (stack.delivered() - base).max(1) as f64;
            let events = acked.len().max(1) as f64;
            let hz = clock_ticks();
            let ms = |ticks: u64| ticks as f64 * 1000.0 / hz;
            // Per process: the API's, then the dispatcher's in two-service mode.
            let per_process: Vec<f64> = herald_after
                .iter()
                .zip(&herald_before)
                .map(|(a, b)| ms(a.saturating_sub(*b)))
                .collect();
            let herald: f64 = per_process.iter().sum();
            let split = match per_process.as_slice() {
                [api, dsp] => format!(" (API {api:.0} + dispatcher {dsp:.0})"),
                _ => String::new(),
            };
            let pg = ms(pg_after.saturating_sub(pg_before));
            println!(
                "cpu      {name}: {} events, {deliveries} deliveries at 500/s: Herald {herald:.0} ms CPU{split} = {:.3} ms/event, {:.0} ms per 1,000 deliveries; postgres* {pg:.0} ms = {:.3} ms/event, {:.0} ms per 1,000 deliveries",
                acked.len(),
                herald / events,
                herald / deliveries * 1000.0,
                pg / events,
                pg / deliveries * 1000.0,
            );
            figures.push(("cpu.herald_event", herald / events));
            figures.push(("cpu.pg_event", pg / events));
            figures.push(("cpu.herald_1k", herald / deliveries * 1000.0));
            figures.push(("cpu.pg_1k", pg / deliveries * 1000.0));
        }
    }
    let (api, dsp) = stack.peak_rss();
    figures.push(("rss.api", api));
    if let Some(dsp) = dsp {
        figures.push(("rss.dispatcher", dsp));
    }
    Ok(figures)
}

/// Every run's figures, by system and name.
#[derive(Default)]
struct Results(HashMap<(System, &'static str), Vec<f64>>);

impl Results {
    fn median(&self, system: System, key: &str) -> Option<f64> {
        let mut values = self.0.get(&(system, key))?.clone();
        values.retain(|v| v.is_finite());
        if values.is_empty() {
            return None;
        }
        values.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let n = values.len();
        Some(if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        })
    }

    fn max(&self, system: System, key: &str) -> Option<f64> {
        self.0
            .get(&(system, key))?
            .iter()
            .copied()
            .fold(None, |m, v| Some(m.map_or(v, |m: f64| m.max(v))))
    }
}

/// `1234.5` → `1,235`.
fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 {
        format!("-{out}")
    } else {
        out
    }
}

/// One table row: a label, a cell per system, the reference.
type Row = (
    &'static str,
    Box<dyn Fn(&Results, System) -> Option<String>>,
    &'static str,
);

fn rows() -> Vec<Row> {
    let r = |v: Option<f64>, f: fn(f64) -> String| v.map(f);
    vec![
        (
            "1 webhook, closed loop: events/s accepted / delivered (backlog at the end, events)",
            Box::new(move |res, s| {
                Some(format!(
                    "{} / {} ({})",
                    r(res.median(s, "closed1.accepted"), thousands)?,
                    r(res.median(s, "closed1.delivered"), thousands)?,
                    r(res.median(s, "closed1.backlog"), thousands)?,
                ))
            }),
            "985 events/s",
        ),
        (
            "1 webhook at 500 events/s: 2xx → receiver p50 / p99",
            Box::new(move |res, s| {
                Some(format!(
                    "{:.2} / {:.2} ms",
                    res.median(s, "lat1.p50")?,
                    res.median(s, "lat1.p99")?
                ))
            }),
            "0.51 / 2.1 ms",
        ),
        (
            "10 webhooks at 200 events/s: 2xx → receiver p50 / p99",
            Box::new(move |res, s| {
                Some(format!(
                    "{:.2} / {:.2} ms",
                    res.median(s, "lat10.p50")?,
                    res.median(s, "lat10.p99")?
                ))
            }),
            "0.68 / 1.5 ms",
        ),
        (
            "10 webhooks, closed loop: deliveries/s (events/s accepted)",
            Box::new(move |res, s| {
                Some(format!(
                    "{} ({})",
                    r(res.median(s, "closed10.deliveries"), thousands)?,
                    r(res.median(s, "closed10.accepted"), thousands)?,
                ))
            }),
            "3,846 (API accepts 375 events/s)",
        ),
        (
            "10 webhooks, closed loop: backlog after, receivers' count / `herald_deliveries_pending` / oldest due age",
            Box::new(move |res, s| {
                let gauge = |k| {
                    res.median(s, k)
                        .map_or("n/a".to_owned(), |v| format!("{v:.1}"))
                };
                Some(format!(
                    "{} / {} / {} s",
                    r(res.median(s, "closed10.backlog"), thousands)?,
                    res.median(s, "closed10.pending_gauge")
                        .map_or("n/a".to_owned(), thousands),
                    gauge("closed10.oldest_age"),
                ))
            }),
            "—",
        ),
        (
            "CPU per event at 500 events/s, 1 webhook: Herald / Postgres",
            Box::new(move |res, s| {
                let herald = res.median(s, "cpu.herald_event")?;
                Some(if s == System::Sqlite {
                    format!("{herald:.3} ms / —")
                } else {
                    format!("{herald:.3} / {:.3} ms", res.median(s, "cpu.pg_event")?)
                })
            }),
            "2.36 ms (server + Postgres + Redis)",
        ),
        (
            "CPU per 1,000 deliveries at 500 events/s: Herald / Postgres",
            Box::new(move |res, s| {
                let herald = res.median(s, "cpu.herald_1k")?;
                Some(if s == System::Sqlite {
                    format!("{} ms / —", thousands(herald))
                } else {
                    format!(
                        "{} / {} ms",
                        thousands(herald),
                        thousands(res.median(s, "cpu.pg_1k")?)
                    )
                })
            }),
            "—",
        ),
        (
            "Peak RSS of Herald (VmHWM)",
            Box::new(move |res, s| {
                let api = res.max(s, "rss.api")?;
                Some(match res.max(s, "rss.dispatcher") {
                    Some(d) => format!("{api:.0} MiB API + {d:.0} MiB dispatcher"),
                    None => format!("{api:.0} MiB"),
                })
            }),
            "46–67 MB",
        ),
    ]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let settings = Settings {
        secs: env_num("BENCH_SECS", 20.0),
        warmup: env_num("BENCH_WARMUP_SECS", 3.0),
        connections: env_num("BENCH_CONNECTIONS", 32.0) as usize,
    };
    let runs = env_num("BENCH_RUNS", 2.0) as usize;
    let systems = env_list("BENCH_SYSTEMS", "pg,sqlite,pg2")
        .iter()
        .map(|s| System::parse(s))
        .collect::<Result<Vec<_>>>()?;
    let scenarios = env_list("BENCH_SCENARIOS", "closed1,lat1,lat10,closed10,cpu")
        .iter()
        .map(|s| Scenario::parse(s))
        .collect::<Result<Vec<_>>>()?;
    println!(
        "# bench-peer: {} s measured after {} s warm-up, {runs} run(s), {} closed-loop connections; one 2-core machine for load, receivers, Herald and Postgres; load average before: {}",
        settings.secs,
        settings.warmup,
        settings.connections,
        loadavg()
    );
    let mut results = Results::default();
    let mut failures = Vec::new();
    for run in 0..runs {
        println!("## run {}", run + 1);
        for &scenario in &scenarios {
            let mut order = systems.clone();
            if run % 2 == 1 {
                order.reverse();
            }
            for system in order {
                match run_scenario(system, scenario, &settings).await {
                    Ok(figures) => {
                        for (key, value) in figures {
                            results.0.entry((system, key)).or_default().push(value);
                        }
                    }
                    Err(error) => {
                        println!("{scenario:?} {}: FAILED: {error:#}", system.title());
                        failures.push(format!("{scenario:?} on {}", system.title()));
                    }
                }
            }
        }
    }

    println!();
    println!(
        "## bench-peer: median of {runs} run(s), {} s each (peak RSS: the largest); load average after: {}",
        settings.secs,
        loadavg()
    );
    println!();
    let mut header = "| scenario |".to_owned();
    let mut rule = "|---|".to_owned();
    for system in &systems {
        header.push_str(&format!(" {} |", system.title()));
        rule.push_str("---|");
    }
    header.push_str(
        " Svix 1.100 (reference: measured earlier on this machine class, not by this run) |",
    );
    rule.push_str("---|");
    println!("{header}\n{rule}");
    for (label, cell, reference) in rows() {
        let mut line = format!("| {label} |");
        for &system in &systems {
            line.push_str(&format!(
                " {} |",
                cell(&results, system).unwrap_or("—".into())
            ));
        }
        line.push_str(&format!(" {reference} |"));
        println!("{line}");
    }
    println!();
    println!(
        "Targets: 1 webhook closed loop ≥ 2,200 events/s on Postgres, ≥ 3,500 on SQLite; 10 webhooks ≥ 840 events/s (8,400 deliveries/s) on Postgres; p99 ≤ 1.5 ms at 500/s with 1 webhook, ≤ 3 ms at 200/s × 10 webhooks; Postgres CPU per delivery halved against the ~2.1 ms baseline."
    );
    if !failures.is_empty() {
        println!("Failed (shown as —): {}", failures.join("; "));
    }
    Ok(())
}
