//! Client settings: the brokers, a client id, and any librdkafka setting.
//!
//! Every key librdkafka knows can be passed through unchanged (security
//! settings such as `security.protocol`, `sasl.*` and `ssl.*` included);
//! twitch only adds defaults for what it needs and never prints secrets.
//!
//! ```
//! use twitch::config::ClientSettings;
//! let settings = ClientSettings::new("127.0.0.1:9092", "billing")
//!     .set("security.protocol", "SASL_SSL")
//!     .set("sasl.password", "hunter2");
//! assert!(!format!("{settings:?}").contains("hunter2"));
//! ```

use std::collections::BTreeMap;
use std::fmt;

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};

use crate::error::{Error, Result};

/// Brokers, client id and librdkafka pass-through settings.
#[derive(Clone)]
pub struct ClientSettings {
    brokers: String,
    client_id: String,
    overrides: BTreeMap<String, String>,
}

impl ClientSettings {
    /// Settings for the comma-separated `host:port` list `brokers`, naming
    /// the application `client_id` in the broker's logs and metrics.
    pub fn new(brokers: impl Into<String>, client_id: impl Into<String>) -> Self {
        ClientSettings { brokers: brokers.into(), client_id: client_id.into(), overrides: BTreeMap::new() }
    }

    /// Replaces the client id.
    pub fn with_client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = client_id.into();
        self
    }

    /// Sets any librdkafka setting; it wins over twitch's defaults.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.overrides.insert(key.into(), value.into());
        self
    }

    /// The bootstrap servers.
    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The value set for `key`, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.overrides.get(key).map(String::as_str)
    }

    /// Checks the broker list: non-empty `host:port` entries with a numeric
    /// port.
    pub fn validate(&self) -> Result<()> {
        if self.brokers.trim().is_empty() {
            return Err(Error::config("the broker list is empty; give `host:port[,host:port...]`"));
        }
        for entry in self.brokers.split(',').map(str::trim) {
            // Allow a protocol prefix such as `SSL://host:port`.
            let addr = entry.rsplit("://").next().unwrap_or(entry);
            let valid = match addr.rsplit_once(':') {
                Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
                None => false,
            };
            if !valid {
                return Err(Error::config(format!(
                    "broker address `{entry}` is not `host:port` (for example 127.0.0.1:9092)"
                )));
            }
        }
        Ok(())
    }

    /// A librdkafka configuration: bootstrap servers and client id, then
    /// `defaults`, then the user's own settings, which win.
    pub(crate) fn client_config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", &self.client_id)
            .set_log_level(RDKafkaLogLevel::Warning);
        for (k, v) in defaults {
            config.set(*k, *v);
        }
        for (k, v) in &self.overrides {
            config.set(k, v);
        }
        config
    }
}

/// Keys whose values are secrets and never printed.
fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "sasl.oauthbearer.config", "ssl.key.pem", "ssl_key", "token"]
        .iter()
        .any(|s| key.contains(s))
}

impl fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let overrides: BTreeMap<&str, &str> = self
            .overrides
            .iter()
            .map(|(k, v)| (k.as_str(), if is_secret(k) { "<redacted>" } else { v.as_str() }))
            .collect();
        f.debug_struct("ClientSettings")
            .field("brokers", &self.brokers)
            .field("client_id", &self.client_id)
            .field("overrides", &overrides)
            .finish()
    }
}

/// Checks a topic name as Kafka does: 1 to 249 characters of `[a-zA-Z0-9._-]`,
/// and not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > 249 || name == "." || name == ".." || !name.chars().all(legal) {
        return Err(Error::config(format!(
            "`{name}` is not a valid topic name (1 to 249 characters of a-z, A-Z, 0-9, `.`, `_`, `-`)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_settings_win_over_defaults() {
        let s = ClientSettings::new("127.0.0.1:9092", "t").set("acks", "1");
        let c = s.client_config(&[("acks", "all"), ("linger.ms", "5")]);
        assert_eq!(c.get("acks"), Some("1"));
        assert_eq!(c.get("linger.ms"), Some("5"));
        assert_eq!(c.get("bootstrap.servers"), Some("127.0.0.1:9092"));
        assert_eq!(c.get("client.id"), Some("t"));
    }

    #[test]
    fn secrets_are_redacted() {
        let s = ClientSettings::new("b:1", "t")
            .set("sasl.password", "p1")
            .set("ssl.key.password", "p2")
            .set("sasl.username", "alice");
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("p1") && !dbg.contains("p2"), "{dbg}");
        assert!(dbg.contains("alice"));
    }

    #[test]
    fn broker_lists_are_validated() {
        for ok in ["127.0.0.1:9092", "a:1,b:2", "SSL://kafka:9093", " h:9092 , k:9093"] {
            assert!(ClientSettings::new(ok, "t").validate().is_ok(), "{ok}");
        }
        for bad in ["", "localhost", "host:", ":9092", "h:port", "h:0", "a:1,,b:2"] {
            let err = ClientSettings::new(bad, "t").validate().unwrap_err();
            assert!(matches!(err.kind(), crate::ErrorKind::InvalidConfig { .. }), "{bad}: {err}");
        }
    }
}
