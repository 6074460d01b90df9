//! A minimal AWS Query-protocol client for the emulator: the EC2 default-VPC lookups and
//! CloudWatch alarms (moto speaks the Query protocol for CloudWatch; the current SDK
//! speaks RPC v2 CBOR, which moto does not accept).
//!
//! moto does not check signatures; it routes by the credential scope in the
//! `Authorization` header, so a syntactically valid header naming the service is enough.

use std::time::Duration;

#[derive(Clone)]
pub struct Query {
    http: reqwest::Client,
    endpoint: String,
}

impl Query {
    pub fn new(endpoint: &str) -> Self {
        Query {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
            endpoint: endpoint.to_string(),
        }
    }

    /// POST one action; the XML body on success, `Err((status, body))` otherwise.
    pub async fn try_call(
        &self,
        service: &str,
        version: &str,
        action: &str,
        params: &[(String, String)],
    ) -> Result<String, (u16, String)> {
        let mut form: Vec<(String, String)> = vec![
            ("Action".into(), action.into()),
            ("Version".into(), version.into()),
        ];
        form.extend(params.iter().cloned());
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=testing/20260101/{}/{service}/aws4_request, SignedHeaders=host, Signature=0",
            super::moto::REGION
        );
        let response = self
            .http
            .post(&self.endpoint)
            .header("Authorization", auth)
            .header(
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(encode_form(&form))
            .send()
            .await
            .map_err(|e| (0, e.to_string()))?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|e| (status, e.to_string()))?;
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err((status, body))
        }
    }

    pub async fn call(
        &self,
        service: &str,
        version: &str,
        action: &str,
        params: &[(String, String)],
    ) -> String {
        self.try_call(service, version, action, params)
            .await
            .unwrap_or_else(|(status, body)| panic!("{service} {action}: HTTP {status}: {body}"))
    }

    pub async fn ec2(&self, action: &str, params: &[(&str, &str)]) -> String {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.call("ec2", "2016-11-15", action, &params).await
    }

    pub async fn cloudwatch(&self, action: &str, params: &[(String, String)]) -> String {
        self.call("monitoring", "2010-08-01", action, params).await
    }
}

/// `application/x-www-form-urlencoded` (RFC 3986 unreserved characters kept).
pub fn encode_form(pairs: &[(String, String)]) -> String {
    let enc = |s: &str| {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Every `<tag>value</tag>` in `xml`, in order (values unescaped).
pub fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    // Bounded by the document: every iteration consumes input.
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(unescape(&after[..end]));
        rest = &after[end + close.len()..];
    }
    out
}

/// The first `<tag>value</tag>` in `xml`.
pub fn xml_value(xml: &str, tag: &str) -> Option<String> {
    xml_values(xml, tag).into_iter().next()
}

/// The inner text of the first `<tag>…</tag>` block (or `None`; `<tag/>` is empty).
pub fn xml_block<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(&xml[start..end])
}

/// The top-level `<member>` elements of a list block (members nest: alarm dimensions are
/// members inside an alarm member).
pub fn xml_members(block: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0usize;
    let mut i = 0usize;
    while i < block.len() {
        let rest = &block[i..];
        if rest.starts_with("<member>") {
            if depth == 0 {
                start = i + "<member>".len();
            }
            depth += 1;
            i += "<member>".len();
        } else if rest.starts_with("</member>") {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                out.push(&block[start..i]);
            }
            i += "</member>".len();
        } else {
            i += rest.chars().next().map(char::len_utf8).unwrap_or(1);
        }
    }
    out
}

pub fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}
