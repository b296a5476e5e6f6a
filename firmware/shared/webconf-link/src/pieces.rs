//! Several received pieces sent as one, without joining them into one buffer.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes};

/// Bytes in order, held as the pieces they arrived in. HTTP/2 writes them out with one
/// vectored write (TLS copies them into its records anyway), so the sender needs no copy
/// of its own to send them together: one send, one wake-up of the link's task.
#[derive(Debug, Default)]
pub struct Pieces {
    parts: VecDeque<Bytes>,
    len: usize,
}

impl Pieces {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a piece (an empty one is left out).
    pub fn push(&mut self, piece: Bytes) {
        if !piece.is_empty() {
            self.len += piece.len();
            self.parts.push_back(piece);
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Takes the first `n` bytes (all of them if there are fewer), splitting one piece at
    /// most; nothing is copied.
    pub fn split_to(&mut self, n: usize) -> Pieces {
        let mut head = Pieces::new();
        while head.len < n {
            let Some(mut front) = self.parts.pop_front() else {
                break;
            };
            let want = n - head.len;
            if front.len() > want {
                let rest = front.split_off(want);
                self.parts.push_front(rest);
            }
            self.len -= front.len();
            head.push(front);
        }
        head
    }
}

impl From<Bytes> for Pieces {
    fn from(piece: Bytes) -> Self {
        let mut p = Pieces::new();
        p.push(piece);
        p
    }
}

impl Buf for Pieces {
    fn remaining(&self) -> usize {
        self.len
    }

    fn chunk(&self) -> &[u8] {
        self.parts.front().map_or(&[], |b| b.as_ref())
    }

    fn advance(&mut self, mut cnt: usize) {
        while cnt > 0 {
            let Some(front) = self.parts.front_mut() else {
                return;
            };
            if cnt < front.len() {
                front.advance(cnt);
                self.len -= cnt;
                return;
            }
            cnt -= front.len();
            self.len -= front.len();
            self.parts.pop_front();
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, part) in dst.iter_mut().zip(&self.parts) {
            *slot = IoSlice::new(part);
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(parts: &[&'static [u8]]) -> Pieces {
        let mut p = Pieces::new();
        for part in parts {
            p.push(Bytes::from_static(part));
        }
        p
    }

    fn collect(mut p: Pieces) -> Vec<u8> {
        let mut out = Vec::new();
        while p.has_remaining() {
            let c = p.chunk().to_vec();
            p.advance(c.len());
            out.extend_from_slice(&c);
        }
        out
    }

    #[test]
    fn reads_back_in_order_without_empty_pieces() {
        let p = pieces(&[b"abc", b"", b"de", b"f"]);
        assert_eq!(p.len(), 6);
        assert_eq!(p.parts.len(), 3);
        assert_eq!(collect(p), b"abcdef");
    }

    #[test]
    fn split_to_cuts_inside_a_piece_and_at_its_edges() {
        for n in 0..=8 {
            let mut p = pieces(&[b"abc", b"de", b"f"]);
            let head = p.split_to(n);
            let cut = n.min(6);
            assert_eq!(head.len(), cut, "n = {n}");
            assert_eq!(p.len(), 6 - cut, "n = {n}");
            assert_eq!(collect(head), &b"abcdef"[..cut], "n = {n}");
            assert_eq!(collect(p), &b"abcdef"[cut..], "n = {n}");
        }
    }

    #[test]
    fn advance_across_pieces_and_vectored_chunks() {
        let mut p = pieces(&[b"abc", b"de", b"f"]);
        p.advance(4);
        assert_eq!(p.remaining(), 2);
        assert_eq!(p.chunk(), b"e");
        let mut slots = [IoSlice::new(&[]); 4];
        assert_eq!(p.chunks_vectored(&mut slots), 2);
        assert_eq!(&*slots[0], b"e");
        assert_eq!(&*slots[1], b"f");
        // Fewer slots than pieces: as many as fit, in order.
        let p = pieces(&[b"abc", b"de", b"f"]);
        let mut one = [IoSlice::new(&[])];
        assert_eq!(p.chunks_vectored(&mut one), 1);
        assert_eq!(&*one[0], b"abc");
        // Advancing past the end empties it rather than panicking.
        let mut p = pieces(&[b"ab"]);
        p.advance(5);
        assert!(p.is_empty());
    }
}
