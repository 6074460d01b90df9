//! Where a key is in the file: byte spans from toml's spanned parse, turned into lines
//! and dotted key paths (`apps[0].strategy.percent`).

use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// Byte offset → 1-based line.
pub(super) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(super) fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    pub(super) fn line(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

/// The dotted path of the innermost key whose key or value contains `span`.
pub(super) fn key_at(table: &DeTable<'_>, span: &Range<usize>, prefix: String) -> Option<String> {
    for (k, v) in table.iter() {
        let path = if prefix.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        let (ks, vs) = (k.span(), v.span());
        let inside =
            |r: &Range<usize>| r.start <= span.start && span.start < r.end.max(r.start + 1);
        if inside(&ks) {
            return Some(path);
        }
        if let Some(found) = value_key_at(v.get_ref(), span, &path) {
            return Some(found);
        }
        if inside(&vs) {
            return Some(path);
        }
    }
    None
}

fn value_key_at(v: &DeValue<'_>, span: &Range<usize>, path: &str) -> Option<String> {
    match v {
        DeValue::Table(t) => key_at(t, span, path.to_string()),
        DeValue::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let p = format!("{path}[{i}]");
            let s = item.span();
            value_key_at(item.get_ref(), span, &p)
                .or_else(|| (s.start <= span.start && span.start < s.end).then_some(p))
        }),
        _ => None,
    }
}

/// The span of the key at a dotted path (`apps[0].strategy.percent`), or of its nearest
/// ancestor that exists.
pub(super) fn find_span(table: &DeTable<'_>, path: &str) -> Option<Range<usize>> {
    let mut segments: Vec<(String, Option<usize>)> = Vec::new();
    for part in path.split('.') {
        match part.split_once('[') {
            Some((name, idx)) => {
                segments.push((name.to_string(), idx.trim_end_matches(']').parse().ok()))
            }
            None => segments.push((part.to_string(), None)),
        }
    }
    let mut best = None;
    let mut current: Option<&DeTable<'_>> = Some(table);
    for (name, index) in segments {
        let Some(t) = current else { break };
        let Some((k, v)) = t.iter().find(|(k, _)| k.get_ref() == name.as_str()) else {
            break;
        };
        best = Some(k.span());
        current = match (v.get_ref(), index) {
            (DeValue::Table(inner), None) => Some(inner),
            (DeValue::Array(items), Some(i)) => match items.get(i) {
                Some(item) => match item.get_ref() {
                    DeValue::Table(inner) => {
                        // The element's first key is a better anchor than the array's.
                        best = inner.iter().next().map(|(k, _)| k.span()).or(best);
                        Some(inner)
                    }
                    _ => {
                        best = Some(item.span());
                        None
                    }
                },
                None => None,
            },
            _ => None,
        };
    }
    best
}
