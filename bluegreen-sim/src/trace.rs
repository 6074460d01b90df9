//! The run's trace: one line per event when asked for (`run --seed S --trace`), and
//! always a hash over the events' structured content, so two runs of a seed can be
//! compared cheaply (DESIGN §4 invariant 6: same seed, same trace, byte for byte).

use bluegreen_core::Timestamp;
use bluegreen_core::ids::mix64;

#[derive(Debug)]
pub struct Trace {
    hash: u64,
    text_hash: u64,
    /// `Some`: keep (and hash) text lines.
    lines: Option<Vec<String>>,
    /// Print lines as they come (the CLI's `--trace`).
    pub echo: bool,
    start: Timestamp,
    pub events: u64,
}

/// Most lines kept in memory (a trace past this is still hashed and echoed).
pub const TRACE_LINES_MAX: usize = 1_000_000;

impl Trace {
    pub fn new(text: bool, echo: bool, start: Timestamp) -> Self {
        Trace {
            hash: 0xcbf2_9ce4_8422_2325,
            text_hash: 0xcbf2_9ce4_8422_2325,
            lines: text.then(Vec::new),
            echo,
            start,
            events: 0,
        }
    }

    pub fn wants_text(&self) -> bool {
        self.lines.is_some() || self.echo
    }

    /// Fold an event's structured content into the hash: a multiply-rotate per word
    /// (FxHash's step, three instructions; every command mixes several words), then one
    /// full avalanche per event so that a difference spreads before the next one.
    pub fn mix(&mut self, words: &[u64]) {
        self.events += 1;
        let mut h = self.hash;
        for w in words {
            h = (h.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
        self.hash = mix64(h);
    }

    /// A text line (built only when text is wanted).
    pub fn line(&mut self, at: Timestamp, text: impl FnOnce() -> String) {
        if !self.wants_text() {
            return;
        }
        let ms = at.ms_since(self.start);
        let line = format!("{:>7}.{:03} {}", ms / 1000, ms % 1000, text());
        for b in line.bytes().chain(std::iter::once(b'\n')) {
            self.text_hash = (self.text_hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        if self.echo {
            println!("{line}");
        }
        if let Some(lines) = &mut self.lines
            && lines.len() < TRACE_LINES_MAX
        {
            lines.push(line);
        }
    }

    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// FNV-1a over the text lines (newline-terminated), when text was kept.
    pub fn text_hash(&self) -> Option<u64> {
        self.wants_text().then_some(self.text_hash)
    }

    pub fn lines(&self) -> &[String] {
        self.lines.as_deref().unwrap_or(&[])
    }
}

/// A text (a command id) as one word for [`Trace::mix`]: eight bytes at a time, since
/// every command sent is mixed in by its id and a byte-wise hash was a visible share of
/// a simulated deployment.
pub fn text_word(text: impl AsRef<[u8]>) -> u64 {
    let bytes = text.as_ref();
    // One multiply per eight bytes, one full mix at the end: every step is a bijection
    // of the running word, so texts differing in one chunk (or in length, mixed in
    // first) never meet. The simulator hashes every command id it sends.
    let mut h = mix64(bytes.len() as u64);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        h = (h ^ u64::from_le_bytes(c.try_into().expect("eight bytes")))
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
    }
    let rest = chunks.remainder();
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    mix64(h ^ u64::from_le_bytes(last))
}

#[cfg(test)]
mod tests {
    use super::text_word;

    #[test]
    fn text_words_differ_by_every_byte_and_by_length() {
        let base = text_word("web-1/t17-service");
        assert_eq!(base, text_word("web-1/t17-service"));
        assert_ne!(base, text_word("web-1/t17-servicf"));
        assert_ne!(base, text_word("web-1/t18-service"));
        assert_ne!(text_word("a"), text_word("a\0"));
        assert_ne!(text_word(""), text_word("\0"));
    }
}
