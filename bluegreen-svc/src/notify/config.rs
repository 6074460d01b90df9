//! `[[notify]]` entries as written in the config file.

use serde::{Deserialize, Serialize};

/// Where a notification goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyKind {
    /// A Slack incoming webhook: `{"text": "…"}`.
    Slack,
    /// Any endpoint: the event as JSON, signed like hooks.
    Webhook,
}

impl NotifyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyKind::Slack => "slack",
            NotifyKind::Webhook => "webhook",
        }
    }
}

/// The events a notification can be about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    Started,
    AwaitingApproval,
    TrafficShifted,
    RolledBack,
    Completed,
    Failed,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Started => "started",
            EventKind::AwaitingApproval => "awaiting-approval",
            EventKind::TrafficShifted => "traffic-shifted",
            EventKind::RolledBack => "rolled-back",
            EventKind::Completed => "completed",
            EventKind::Failed => "failed",
        }
    }
}

/// One `[[notify]]` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    pub kind: NotifyKind,
    /// The environment variable holding the URL (webhook URLs are secrets: never in the file).
    pub url_env: String,
    /// Only these apps (empty: every app).
    #[serde(default)]
    pub apps: Vec<String>,
    /// Only these events (empty: every event).
    #[serde(default)]
    pub events: Vec<EventKind>,
}

impl NotifyConfig {
    /// Checks the file can make: `(key within the entry, message)`.
    pub fn check(&self, app_names: &[&str]) -> Result<(), (String, String)> {
        let name_ok = !self.url_env.is_empty()
            && self.url_env.len() <= 128
            && self
                .url_env
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !name_ok {
            return Err((
                "url_env".into(),
                format!(
                    "{:?} is not an environment variable name (A-Z, 0-9, _), e.g. SLACK_WEBHOOK_URL",
                    self.url_env
                ),
            ));
        }
        for (i, app) in self.apps.iter().enumerate() {
            if !app_names.contains(&app.as_str()) {
                return Err((
                    format!("apps[{i}]"),
                    format!(
                        "no app named {app:?} is configured (apps: {})",
                        app_names.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}
