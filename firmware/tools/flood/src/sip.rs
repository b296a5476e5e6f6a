//! SIP text for floods: an INVITE like SIPp's `uac` sends, and counting status lines in a
//! byte stream that may split them anywhere.

use std::net::SocketAddr;

/// An INVITE over TLS from `local` to `target`; `n` makes Call-ID, tag and branch unique.
pub fn invite(local: SocketAddr, target: SocketAddr, n: u64) -> String {
    let body = format!(
        "v=0\r\no=flood 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n",
        ip = local.ip()
    );
    format!(
        "INVITE sip:service@{target} SIP/2.0\r\n\
         Via: SIP/2.0/TLS {local};branch=z9hG4bK-fl{n}\r\n\
         From: flood <sip:flood@{local}>;tag=fl{n}\r\n\
         To: service <sip:service@{target}>\r\n\
         Call-ID: fl{n}-{local}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:flood@{local};transport=tls>\r\n\
         Max-Forwards: 70\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Counts `SIP/2.0 NXX` status lines by class (index 1-6) across reads.
#[derive(Debug, Default)]
pub struct StatusCounter {
    tail: Vec<u8>,
    context: bool,
    pub by_class: [u64; 7],
}

const MARK: &[u8] = b"SIP/2.0 ";

impl StatusCounter {
    pub fn feed(&mut self, bytes: &[u8]) {
        let mut buf = std::mem::take(&mut self.tail);
        // The first kept byte, when there is one, was scanned: it is only line-start context.
        let mut i = usize::from(self.context);
        buf.extend_from_slice(bytes);
        while i + MARK.len() < buf.len() {
            let at_line_start = i == 0 || buf[i - 1] == b'\n';
            if at_line_start && buf[i..].starts_with(MARK) {
                let d = buf[i + MARK.len()];
                if (b'1'..=b'6').contains(&d) {
                    self.by_class[usize::from(d - b'0')] += 1;
                }
                i += MARK.len() + 1;
            } else {
                i += 1;
            }
        }
        // From the first position not scanned on, with the byte before it as context.
        let from = i.saturating_sub(1);
        self.context = i > 0;
        self.tail = buf[from..].to_vec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invite_declares_its_body_length() {
        let m = invite(
            "10.128.0.1:40000".parse().unwrap(),
            "10.77.0.1:10443".parse().unwrap(),
            5,
        );
        let (head, body) = m.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("INVITE sip:service@10.77.0.1:10443 SIP/2.0\r\n"));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert!(head.contains("Call-ID: fl5-10.128.0.1:40000"));
    }

    #[test]
    fn status_lines_are_counted_once_however_the_stream_is_split() {
        let stream = b"SIP/2.0 100 Trying\r\nVia: x\r\n\r\nSIP/2.0 180 Ringing\r\n\r\nSIP/2.0 200 OK\r\nX: SIP/2.0 999\r\n\r\nSIP/2.0 503 Busy\r\n\r\n";
        for split in 1..stream.len() {
            let mut c = StatusCounter::default();
            for chunk in stream.chunks(split) {
                c.feed(chunk);
            }
            assert_eq!(c.by_class, [0, 2, 1, 0, 0, 1, 0], "split {split}");
        }
    }
}
