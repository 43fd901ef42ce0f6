//! Webhooks: a JSON POST, retried with backoff, signed when there is a secret. The alerts and
//! the jobs both deliver through [`post`].
//!
//! The signature is GitHub's scheme: `X-Kokoro-Signature-256: sha256=<hex HMAC-SHA256 of the
//! body, keyed by the secret>`. A receiver recomputes it over the bytes it got and compares in
//! constant time ([`verify`]); the body carries `timestamp` (RFC 3339) so a replay can be told by
//! its age. Crates: `hmac` + `sha2` (RustCrypto's, already in the tree), `ureq` (blocking; runs
//! on the caller's thread, never on the async runtime's).

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "x-kokoro-signature-256";

/// `sha256=<hex>` of `body` under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` is the signature of `body` under `secret` (compared in constant time).
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    crate::constant_time_eq(sign(secret, body).as_bytes(), header.trim().as_bytes())
}

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Tries made, the successful one included.
    pub attempts: u32,
    /// The last failure, when no try succeeded.
    pub error: Option<String>,
}

/// POSTs `body` (JSON) to `url` with `headers`, up to `attempts` times: after a failure (no
/// connection, a timeout, a status that is not 2xx) it waits 1 s, then 2, 4, ... up to 60 s.
/// Blocking. `stop` is asked between tries: when it says so, the delivery ends as it stands.
pub fn post(url: &str, body: &str, headers: &[(&str, String)], attempts: u32, what: &str, stop: &dyn Fn() -> bool) -> Delivery {
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(10))).build().into();
    let mut last = None;
    for attempt in 1..=attempts.max(1) {
        let mut request = agent.post(url).header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        match request.send(body) {
            Ok(_) => return Delivery { attempts: attempt, error: None },
            Err(e) => {
                let error = e.to_string();
                tracing::warn!(url, attempt, error = %error, "{what} webhook failed");
                last = Some(error);
            }
        }
        if attempt == attempts.max(1) {
            return Delivery { attempts: attempt, error: last };
        }
        let backoff = Duration::from_secs((1u64 << (attempt - 1).min(6)).min(60));
        let until = std::time::Instant::now() + backoff;
        while std::time::Instant::now() < until {
            if stop() {
                return Delivery { attempts: attempt, error: last };
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Delivery { attempts: attempts.max(1), error: last }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_a_known_value_and_verify() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let signed = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(signed, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert!(verify(b"Jefe", b"what do ya want for nothing?", &signed));
        assert!(!verify(b"Jefe", b"what do ya want for nothing!", &signed));
        assert!(!verify(b"jefe", b"what do ya want for nothing?", &signed));
    }
}
