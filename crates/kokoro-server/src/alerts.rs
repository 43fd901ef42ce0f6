//! The server's own alerting: the thresholds of `deploy/prometheus/alerts.yml`, evaluated here
//! every `alerts.interval_secs` over the last `alerts.window_secs`, so a deployment without
//! Prometheus still hears of trouble. A condition that holds for `alerts.for_secs` fires; when it
//! stops holding the alert resolves. Each change is a structured log line (`alert`), an entry in
//! the recent alerts (status page, `/debug/alerts`), and, when `alerts.webhook_url` is set, a
//! POST in Alertmanager's webhook shape (so anything that takes Alertmanager's webhooks takes
//! ours), retried with backoff.
//!
//! A test (`alert_rules_and_the_server_agree`) checks the rules file's thresholds against the
//! defaults below.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

/// Thresholds and where to send alerts (`[alerts]`); every field changes live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Evaluate the alerts in the server (off: leave alerting to Prometheus and the rules file).
    pub enabled: bool,
    /// How often the conditions are evaluated.
    pub interval_secs: f64,
    /// Rates and the latency quantile are taken over this much of the past.
    pub window_secs: f64,
    /// A condition must hold this long before its alert fires.
    pub for_secs: f64,
    /// KokoroQueueSaturated: queued chunks over the queue's capacity.
    pub queue_saturation: f64,
    /// KokoroFirstAudioSlow: the 99th percentile of time to first audio, in seconds.
    pub first_audio_p99_secs: f64,
    /// KokoroErrorRate: the share of requests answered 5xx.
    pub error_rate: f64,
    /// KokoroMemoryNearLimit: resident memory over `limits.memory_limit_bytes`.
    pub memory_ratio: f64,
    /// KokoroVoiceCacheThrashing: the voice cache evicts more than this many voices a second...
    pub voice_cache_evictions_per_sec: f64,
    /// ...while fewer than this share of lookups hit.
    pub voice_cache_hit_rate: f64,
    /// KokoroGpuMemoryHigh: GPU memory used over total.
    pub gpu_memory_ratio: f64,
    /// Where to POST alerts (Alertmanager's webhook payload); empty: nowhere. Plain `http://`
    /// (a receiver in the cluster; put TLS in front of it if it must cross a network).
    pub webhook_url: String,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: 15.0,
            window_secs: 300.0,
            for_secs: 120.0,
            queue_saturation: 0.8,
            first_audio_p99_secs: 5.0,
            error_rate: 0.05,
            memory_ratio: 0.9,
            voice_cache_evictions_per_sec: 0.5,
            voice_cache_hit_rate: 0.5,
            gpu_memory_ratio: 0.9,
            webhook_url: String::new(),
        }
    }
}

/// What the evaluator looks at, read from the server at one moment.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    pub queued_chunks: usize,
    pub queue_capacity: usize,
    /// Times to first audio within the window, in seconds.
    pub first_audio: Vec<f64>,
    /// Counters since start.
    pub requests: u64,
    pub server_errors: u64,
    pub voice_hits: u64,
    pub voice_misses: u64,
    pub voice_evictions: u64,
    pub rss: u64,
    pub memory_limit: u64,
    /// (used, total) per GPU.
    pub gpus: Vec<(u64, u64)>,
}

/// One change of an alert's state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertEvent {
    pub alert: &'static str,
    /// `firing` or `resolved`.
    pub state: &'static str,
    pub severity: &'static str,
    pub value: f64,
    pub threshold: f64,
    pub summary: String,
    /// When the alert began firing (RFC 3339), and for a resolved one when it ended.
    pub starts_at: String,
    pub ends_at: Option<String>,
}

#[derive(Debug)]
struct Tracked {
    /// When the condition began to hold.
    since: Instant,
    firing_since: Option<SystemTime>,
}

/// The evaluator's memory: what holds or fires, the counters seen over the window, and the
/// recent events.
#[derive(Debug, Default)]
pub struct Alerts {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    tracked: BTreeMap<&'static str, Tracked>,
    history: VecDeque<(Instant, Observation)>,
    recent: VecDeque<AlertEvent>,
}

/// Events kept for the status page.
const RECENT: usize = 50;

/// A condition: its name, severity, the value measured, the threshold, and whether it holds.
struct Check {
    alert: &'static str,
    severity: &'static str,
    value: f64,
    threshold: f64,
    holds: bool,
    summary: String,
}

impl Check {
    /// A condition that holds when `value` is above `threshold`.
    fn above(alert: &'static str, severity: &'static str, value: f64, threshold: f64, summary: String) -> Self {
        Self { alert, severity, value, threshold, holds: value > threshold, summary }
    }
}

impl Alerts {
    /// Evaluates the conditions on `now`'s observation; returns the alerts that changed state.
    pub fn evaluate(&self, observation: Observation, config: &AlertsConfig, now: Instant) -> Vec<AlertEvent> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let window = Duration::from_secs_f64(config.window_secs.max(0.001));
        state.history.push_back((now, observation));
        while state.history.len() > 1 && now.duration_since(state.history[0].0) > window {
            state.history.pop_front();
        }
        let checks = checks(&state.history, config);
        let mut events = Vec::new();
        let wall = SystemTime::now();
        for check in checks {
            match (check.holds, state.tracked.get_mut(check.alert)) {
                (true, None) => {
                    state.tracked.insert(check.alert, Tracked { since: now, firing_since: None });
                    if config.for_secs <= 0.0 {
                        state.tracked.get_mut(check.alert).expect("inserted").firing_since = Some(wall);
                        events.push(event(&check, "firing", wall, None));
                    }
                }
                (true, Some(t)) => {
                    if t.firing_since.is_none() && now.duration_since(t.since).as_secs_f64() >= config.for_secs {
                        t.firing_since = Some(wall);
                        events.push(event(&check, "firing", wall, None));
                    }
                }
                (false, Some(_)) => {
                    let t = state.tracked.remove(check.alert).expect("present");
                    if let Some(started) = t.firing_since {
                        events.push(event(&check, "resolved", started, Some(wall)));
                    }
                }
                (false, None) => {}
            }
        }
        for e in &events {
            if state.recent.len() == RECENT {
                state.recent.pop_front();
            }
            state.recent.push_back(e.clone());
        }
        events
    }

    /// Alerts firing now.
    pub fn firing(&self) -> Vec<&'static str> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.tracked.iter().filter(|(_, t)| t.firing_since.is_some()).map(|(name, _)| *name).collect()
    }

    /// The last state changes, newest last.
    pub fn recent(&self) -> Vec<AlertEvent> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).recent.iter().cloned().collect()
    }
}

fn event(check: &Check, state: &'static str, starts: SystemTime, ends: Option<SystemTime>) -> AlertEvent {
    AlertEvent {
        alert: check.alert,
        state,
        severity: check.severity,
        value: check.value,
        threshold: check.threshold,
        summary: check.summary.clone(),
        starts_at: rfc3339(starts),
        ends_at: ends.map(rfc3339),
    }
}

/// RFC 3339 in UTC, as Alertmanager writes times.
pub fn rfc3339(t: SystemTime) -> String {
    let t: time::OffsetDateTime = t.into();
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// The conditions of `deploy/prometheus/alerts.yml` over the observations of the window.
fn checks(history: &VecDeque<(Instant, Observation)>, c: &AlertsConfig) -> Vec<Check> {
    let (first_at, first) = history.front().expect("at least the observation just pushed");
    let (last_at, last) = history.back().expect("at least one");
    let seconds = last_at.duration_since(*first_at).as_secs_f64();
    let delta = |f: fn(&Observation) -> u64| f(last).saturating_sub(f(first));

    let saturation = if last.queue_capacity > 0 { last.queued_chunks as f64 / last.queue_capacity as f64 } else { 0.0 };
    let p99 = quantile(&last.first_audio, 0.99);
    let requests = delta(|o| o.requests);
    let error_rate = if requests > 0 { delta(|o| o.server_errors) as f64 / requests as f64 } else { 0.0 };
    let memory = if last.memory_limit > 0 { last.rss as f64 / last.memory_limit as f64 } else { 0.0 };
    let evictions_per_sec = if seconds > 0.0 { delta(|o| o.voice_evictions) as f64 / seconds } else { 0.0 };
    let lookups = delta(|o| o.voice_hits) + delta(|o| o.voice_misses);
    let hit_rate = if lookups > 0 { delta(|o| o.voice_hits) as f64 / lookups as f64 } else { 1.0 };
    let gpu = last.gpus.iter().map(|&(used, total)| if total > 0 { used as f64 / total as f64 } else { 0.0 }).fold(0.0, f64::max);
    vec![
        Check::above("KokoroQueueSaturated", "warning", saturation, c.queue_saturation, format!("the queue holds {} of {} chunks", last.queued_chunks, last.queue_capacity)),
        Check::above("KokoroFirstAudioSlow", "warning", p99.unwrap_or(0.0), c.first_audio_p99_secs, format!("p99 time to first audio is {:.2} s over the last {:.0} s", p99.unwrap_or(0.0), c.window_secs)),
        Check::above("KokoroErrorRate", "critical", error_rate, c.error_rate, format!("{:.1}% of {requests} requests failed with 5xx", error_rate * 100.0)),
        Check::above("KokoroMemoryNearLimit", "warning", memory, c.memory_ratio, format!("resident memory is {} MiB of a {} MiB limit", last.rss >> 20, last.memory_limit >> 20)),
        Check {
            alert: "KokoroVoiceCacheThrashing",
            severity: "warning",
            value: evictions_per_sec,
            threshold: c.voice_cache_evictions_per_sec,
            holds: evictions_per_sec > c.voice_cache_evictions_per_sec && hit_rate < c.voice_cache_hit_rate,
            summary: format!("{evictions_per_sec:.2} voice evictions a second with a {:.0}% hit rate: raise voices.cache_bytes", hit_rate * 100.0),
        },
        Check::above("KokoroGpuMemoryHigh", "warning", gpu, c.gpu_memory_ratio, format!("a GPU's memory is {:.0}% used", gpu * 100.0)),
    ]
}

/// The `q` quantile of `values` (nearest rank), or None when there are none.
pub(crate) fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Alertmanager's webhook payload (version 4) for one event.
pub fn alertmanager_payload(e: &AlertEvent, instance: &str) -> serde_json::Value {
    let labels = serde_json::json!({ "alertname": e.alert, "severity": e.severity, "service": "kokoro", "instance": instance });
    let annotations = serde_json::json!({
        "summary": e.summary,
        "description": format!("{} is {:.4} (threshold {})", e.alert, e.value, e.threshold),
    });
    serde_json::json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"{}\"}}", e.alert),
        "truncatedAlerts": 0,
        "status": e.state,
        "receiver": "kokoro",
        "groupLabels": { "alertname": e.alert },
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "",
        "alerts": [{
            "status": e.state,
            "labels": labels,
            "annotations": annotations,
            "startsAt": e.starts_at,
            "endsAt": e.ends_at.clone().unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
            "generatorURL": "",
            "fingerprint": format!("{:016x}", fingerprint(e.alert, instance)),
        }],
    })
}

fn fingerprint(alert: &str, instance: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (alert, instance).hash(&mut h);
    h.finish()
}

/// POSTs `payload` to `url`, retrying with backoff (1, 2, 4 s) on failure. Blocking.
pub fn send_webhook(url: &str, payload: &serde_json::Value) -> Result<(), String> {
    let delivery = crate::webhook::post(url, &payload.to_string(), &[], 4, "alert", &|| false);
    delivery.error.map_or(Ok(()), Err)
}

/// Evaluates the alerts of `app` every `alerts.interval_secs` until the process ends.
pub async fn run(app: Arc<crate::AppState>) {
    loop {
        let config = app.config().alerts.clone();
        tokio::time::sleep(Duration::from_secs_f64(config.interval_secs.max(0.05))).await;
        if !config.enabled {
            continue;
        }
        let observation = app.observe_for_alerts(Duration::from_secs_f64(config.window_secs));
        let events = app.alerts.evaluate(observation, &config, Instant::now());
        let instance = app.config().listen.to_string();
        for e in events {
            match e.state {
                "firing" => tracing::warn!(alert = e.alert, state = e.state, severity = e.severity, value = e.value, threshold = e.threshold, summary = %e.summary, "alert"),
                _ => tracing::info!(alert = e.alert, state = e.state, value = e.value, threshold = e.threshold, "alert"),
            }
            if !config.webhook_url.is_empty() {
                let (url, payload) = (config.webhook_url.clone(), alertmanager_payload(&e, &instance));
                tokio::task::spawn_blocking(move || send_webhook(&url, &payload));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet() -> Observation {
        Observation { queue_capacity: 100, ..Observation::default() }
    }

    /// Each alert fires once its condition has held for `for_secs`, and resolves when it stops.
    #[test]
    fn each_alert_fires_after_its_for_and_resolves() {
        let config = AlertsConfig { for_secs: 10.0, window_secs: 60.0, ..AlertsConfig::default() };
        let cases: Vec<(&str, Box<dyn Fn(&mut Observation, u64)>)> = vec![
            ("KokoroQueueSaturated", Box::new(|o, _| o.queued_chunks = 90)),
            ("KokoroFirstAudioSlow", Box::new(|o, _| o.first_audio = vec![0.5; 98].into_iter().chain([7.0, 8.0]).collect())),
            ("KokoroErrorRate", Box::new(|o, t| {
                o.requests = 100 * t;
                o.server_errors = 10 * t;
            })),
            ("KokoroMemoryNearLimit", Box::new(|o, _| {
                o.rss = 950;
                o.memory_limit = 1000;
            })),
            ("KokoroVoiceCacheThrashing", Box::new(|o, t| {
                o.voice_evictions = 5 * t;
                o.voice_misses = 5 * t;
                o.voice_hits = t;
            })),
            ("KokoroGpuMemoryHigh", Box::new(|o, _| o.gpus = vec![(10, 100), (95, 100)])),
        ];
        for (name, make_bad) in cases {
            let alerts = Alerts::default();
            let start = Instant::now();
            let at = |s: u64| start + Duration::from_secs(s);
            // Counters keep rising in every case (the error and thrash cases need the deltas).
            let normal = |t: u64| {
                let mut o = quiet();
                o.requests = 100 * t;
                o.voice_hits = 100 * t;
                o
            };
            assert!(alerts.evaluate(normal(0), &config, at(0)).is_empty(), "{name}");
            let bad = |t: u64| {
                let mut o = quiet();
                make_bad(&mut o, t);
                o
            };
            // Pending for 10 s: nothing yet; then firing, once.
            assert!(alerts.evaluate(bad(1), &config, at(1)).is_empty(), "{name} pending");
            assert!(alerts.evaluate(bad(6), &config, at(6)).is_empty(), "{name} pending");
            let fired = alerts.evaluate(bad(12), &config, at(12));
            assert_eq!(fired.iter().map(|e| (e.alert, e.state)).collect::<Vec<_>>(), [(name, "firing")], "{name}");
            assert!(fired[0].value > fired[0].threshold, "{name}: {:?}", fired[0]);
            assert!(alerts.evaluate(bad(13), &config, at(13)).is_empty(), "{name} fires once");
            assert_eq!(alerts.firing(), [name]);
            // Back to normal (the window forgets the bad stretch): resolved.
            let resolved = alerts.evaluate(normal(200), &config, at(200));
            let resolved: Vec<_> = resolved.iter().map(|e| (e.alert, e.state, e.ends_at.is_some())).collect();
            assert_eq!(resolved, [(name, "resolved", true)], "{name}");
            assert!(alerts.firing().is_empty());
            assert_eq!(alerts.recent().len(), 2);
        }
    }

    #[test]
    fn a_condition_shorter_than_for_never_fires() {
        let config = AlertsConfig { for_secs: 10.0, ..AlertsConfig::default() };
        let alerts = Alerts::default();
        let start = Instant::now();
        let saturated = Observation { queued_chunks: 99, ..quiet() };
        assert!(alerts.evaluate(saturated.clone(), &config, start).is_empty());
        assert!(alerts.evaluate(quiet(), &config, start + Duration::from_secs(5)).is_empty());
        assert!(alerts.evaluate(saturated, &config, start + Duration::from_secs(12)).is_empty(), "the clock started again");
        assert!(alerts.recent().is_empty());
    }

    #[test]
    fn the_webhook_payload_is_alertmanagers() {
        let e = AlertEvent {
            alert: "KokoroQueueSaturated",
            state: "firing",
            severity: "warning",
            value: 0.9,
            threshold: 0.8,
            summary: "s".into(),
            starts_at: rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            ends_at: None,
        };
        assert_eq!(e.starts_at, "2023-11-14T22:13:20Z");
        let p = alertmanager_payload(&e, "127.0.0.1:8880");
        assert_eq!(p["version"], "4");
        assert_eq!(p["status"], "firing");
        assert_eq!(p["alerts"][0]["labels"]["alertname"], "KokoroQueueSaturated");
        assert_eq!(p["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    }
}
