//! Size limits shared by the stream framer and the parser.

/// Resource limits for one message; exceeding any is a distinct error so the
/// edge can count and log the cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Whole message, head and body.
    pub max_message_size: usize,
    /// Header fields (a folded field counts once).
    pub max_headers: usize,
    /// One physical line, CRLF excluded.
    pub max_line_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 64 * 1024,
            max_headers: 128,
            max_line_len: 8 * 1024,
        }
    }
}
