//! Usage analytics: per-voice request counts, load times, an hour-of-day histogram (UTC), a
//! sliding window of recent requests, and voice-to-voice transitions; saved and restored as JSON,
//! reported as a table or JSON. Times are passed in (Unix seconds) so that traces can be replayed.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One voice's usage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VoiceUsage {
    pub requests: u64,
    pub loads: u64,
    pub load_seconds_total: f64,
    pub load_seconds_max: f64,
    /// Requests per hour of the day (UTC).
    pub by_hour: [u64; 24],
    /// Unix seconds of the last request.
    pub last_request: u64,
}

/// Usage of all voices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageAnalytics {
    pub voices: BTreeMap<String, VoiceUsage>,
    /// previous voice -> next voice -> count.
    pub transitions: BTreeMap<String, BTreeMap<String, u64>>,
    /// Length of the sliding window, seconds.
    pub window_seconds: u64,
    /// Requests inside the window: (Unix seconds, voice).
    recent: VecDeque<(u64, String)>,
    last: Option<String>,
}

impl Default for UsageAnalytics {
    fn default() -> Self {
        Self::new(3600)
    }
}

/// Hour of the day (UTC) of a Unix time.
pub fn hour_of(unix_seconds: u64) -> usize {
    ((unix_seconds / 3600) % 24) as usize
}

impl UsageAnalytics {
    pub fn new(window_seconds: u64) -> Self {
        Self { voices: BTreeMap::new(), transitions: BTreeMap::new(), window_seconds, recent: VecDeque::new(), last: None }
    }

    /// Records a request for `voice` (a name or a canonical mix key) at `unix_seconds`.
    pub fn record_request(&mut self, voice: &str, unix_seconds: u64) {
        let usage = self.voices.entry(voice.to_string()).or_default();
        usage.requests += 1;
        usage.by_hour[hour_of(unix_seconds)] += 1;
        usage.last_request = usage.last_request.max(unix_seconds);
        if let Some(prev) = self.last.replace(voice.to_string()) {
            *self.transitions.entry(prev).or_default().entry(voice.to_string()).or_default() += 1;
        }
        self.recent.push_back((unix_seconds, voice.to_string()));
        self.expire(unix_seconds);
    }

    /// Records a load (cache miss) of `voice` and how long it took.
    pub fn record_load(&mut self, voice: &str, took: Duration) {
        let usage = self.voices.entry(voice.to_string()).or_default();
        usage.loads += 1;
        usage.load_seconds_total += took.as_secs_f64();
        usage.load_seconds_max = usage.load_seconds_max.max(took.as_secs_f64());
    }

    fn expire(&mut self, now: u64) {
        while self.recent.front().is_some_and(|(t, _)| t + self.window_seconds < now) {
            self.recent.pop_front();
        }
    }

    /// Requests per voice in the window ending at `now`.
    pub fn recent_counts(&self, now: u64) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for (t, v) in &self.recent {
            if t + self.window_seconds >= now {
                *counts.entry(v.clone()).or_default() += 1;
            }
        }
        counts
    }

    /// The voice requested last.
    pub fn last_voice(&self) -> Option<&str> {
        self.last.as_deref()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("analytics serialize")
    }

    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// Adds `other`'s counts to these (a process's new usage into the saved file): requests,
    /// loads and hours add up, maxima are kept, transitions add up, the recent windows interleave
    /// by time, and the later of the two last voices is kept.
    pub fn merge(&mut self, other: &UsageAnalytics) {
        for (name, u) in &other.voices {
            let mine = self.voices.entry(name.clone()).or_default();
            mine.requests += u.requests;
            mine.loads += u.loads;
            mine.load_seconds_total += u.load_seconds_total;
            mine.load_seconds_max = mine.load_seconds_max.max(u.load_seconds_max);
            for (h, n) in mine.by_hour.iter_mut().zip(u.by_hour) {
                *h += n;
            }
            mine.last_request = mine.last_request.max(u.last_request);
        }
        for (prev, nexts) in &other.transitions {
            let mine = self.transitions.entry(prev.clone()).or_default();
            for (next, n) in nexts {
                *mine.entry(next.clone()).or_default() += n;
            }
        }
        let mut recent: Vec<(u64, String)> = self.recent.drain(..).chain(other.recent.iter().cloned()).collect();
        recent.sort_by_key(|(t, _)| *t);
        let now = recent.last().map_or(0, |(t, _)| *t);
        let mine_last_at = self.last.as_ref().and_then(|v| self.voices.get(v)).map_or(0, |u| u.last_request);
        let other_last_at = other.last.as_ref().and_then(|v| other.voices.get(v)).map_or(0, |u| u.last_request);
        if other.last.is_some() && other_last_at >= mine_last_at {
            self.last = other.last.clone();
        }
        self.recent = recent.into();
        self.expire(now);
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.voices.is_empty()
    }

    /// A table: voice, requests, share, loads, mean and max load time, busiest hour.
    pub fn report(&self) -> String {
        let total: u64 = self.voices.values().map(|u| u.requests).sum();
        let mut rows: Vec<(&String, &VoiceUsage)> = self.voices.iter().collect();
        rows.sort_by(|a, b| b.1.requests.cmp(&a.1.requests).then(a.0.cmp(b.0)));
        let mut out = format!("{:<28} {:>8} {:>7} {:>6} {:>10} {:>10} {:>5}\n", "voice", "requests", "share", "loads", "load mean", "load max", "peak");
        for (name, u) in rows {
            let mean = if u.loads > 0 { u.load_seconds_total / u.loads as f64 } else { 0.0 };
            let peak = (0..24).max_by_key(|&h| (u.by_hour[h], std::cmp::Reverse(h))).unwrap_or(0);
            out.push_str(&format!(
                "{name:<28} {:>8} {:>6.1}% {:>6} {:>8.2}ms {:>8.2}ms {:>4}h\n",
                u.requests,
                100.0 * u.requests as f64 / total.max(1) as f64,
                u.loads,
                mean * 1e3,
                u.load_seconds_max * 1e3,
                peak
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_hours_windows_transitions_and_round_trips() {
        let mut a = UsageAnalytics::new(600);
        let t0 = 1_700_000_000 - 1_700_000_000 % 86_400; // midnight UTC
        a.record_request("af_heart", t0 + 9 * 3600);
        a.record_request("af_bella", t0 + 9 * 3600 + 60);
        a.record_request("af_heart", t0 + 9 * 3600 + 1200);
        a.record_load("af_heart", Duration::from_millis(4));
        assert_eq!(a.voices["af_heart"].requests, 2);
        assert_eq!(a.voices["af_heart"].by_hour[9], 2);
        assert_eq!(a.transitions["af_heart"]["af_bella"], 1);
        assert_eq!(a.transitions["af_bella"]["af_heart"], 1);
        // Only the last request is inside the 10-minute window.
        assert_eq!(a.recent_counts(t0 + 9 * 3600 + 1200), BTreeMap::from([("af_heart".to_string(), 1)]));
        let back = UsageAnalytics::from_json(&a.to_json()).unwrap();
        assert_eq!(back, a);
        assert!(a.report().lines().nth(1).unwrap().starts_with("af_heart"));
    }

    #[test]
    fn merging_two_processes_usage_loses_no_count() {
        let t0 = 1_700_000_000 - 1_700_000_000 % 86_400;
        let mut saved = UsageAnalytics::new(600);
        saved.record_request("af_heart", t0);
        saved.record_load("af_heart", Duration::from_millis(9));
        let mut one = UsageAnalytics::new(600);
        one.record_request("af_heart", t0 + 10);
        one.record_request("bf_emma", t0 + 20);
        one.record_load("af_heart", Duration::from_millis(3));
        let mut two = UsageAnalytics::new(600);
        two.record_request("bf_emma", t0 + 30);
        saved.merge(&one);
        saved.merge(&two);
        assert_eq!(saved.voices["af_heart"].requests, 2);
        assert_eq!(saved.voices["bf_emma"].requests, 2);
        assert_eq!(saved.voices["af_heart"].loads, 2);
        assert_eq!(saved.voices["af_heart"].load_seconds_max, 0.009);
        assert_eq!(saved.voices["bf_emma"].last_request, t0 + 30);
        assert_eq!(saved.transitions["af_heart"]["bf_emma"], 1);
        assert_eq!(saved.last_voice(), Some("bf_emma"));
        assert_eq!(saved.recent_counts(t0 + 30).values().sum::<u64>(), 4);
    }
}
