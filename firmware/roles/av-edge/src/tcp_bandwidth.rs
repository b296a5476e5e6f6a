//! The per-allocation bandwidth cap on RFC 6062 TCP relays. One token bucket (the relay
//! threads' type, `media_relay::bandwidth::Bucket`) is shared by both directions of every
//! data connection of one allocation, as the UDP cap covers all of an allocation's
//! media. TCP is backpressured, so nothing is dropped: a chunk the bucket cannot pay for
//! waits, the relay reads nothing meanwhile, and TCP flow control slows the sender.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use edged_metrics::Counter;
use media_relay::bandwidth::Bucket;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest read per step: small enough that a capped relay sends in even steps, large
/// enough that an uncapped-looking rate is not slowed by per-chunk overhead.
const CHUNK: usize = 16 * 1024;

/// An allocation's TCP bandwidth cap and where the time spent waiting for it is counted.
#[derive(Clone, Debug)]
pub struct TcpCap {
    bucket: Arc<Mutex<Bucket>>,
    /// Milliseconds relays waited for the cap, summed over all connections.
    throttled_ms: Counter,
}

impl TcpCap {
    /// `None` for a rate of 0 (uncapped): relays then copy without any accounting.
    pub fn new(bytes_per_sec: u64, throttled_ms: Counter) -> Option<TcpCap> {
        (bytes_per_sec > 0).then(|| TcpCap {
            bucket: Arc::new(Mutex::new(Bucket::new(bytes_per_sec, Instant::now()))),
            throttled_ms,
        })
    }

    /// The chunk size that the bucket can always pay for eventually.
    fn chunk(&self) -> usize {
        let rate = self
            .bucket
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .rate();
        usize::try_from(rate).map_or(CHUNK, |r| r.clamp(1, CHUNK))
    }

    /// Waits until `bytes` are paid for, in pieces the bucket can hold. The lock is held
    /// only for the arithmetic, never across a wait.
    pub async fn pay(&self, bytes: usize) {
        let piece = self.chunk();
        let mut left = bytes;
        let mut waited = Duration::ZERO;
        while left > 0 {
            let n = left.min(piece);
            let verdict = self
                .bucket
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take_or_wait(n, Instant::now());
            match verdict {
                Ok(()) => left -= n,
                // Pieces are within one second's worth, so this cannot happen; if it did,
                // letting the bytes through beats stalling the relay for ever.
                Err(Duration::MAX) => left -= n,
                Err(wait) => {
                    tokio::time::sleep(wait).await;
                    waited += wait;
                }
            }
        }
        if !waited.is_zero() {
            self.throttled_ms
                .add(u64::try_from(waited.as_millis()).unwrap_or(u64::MAX));
        }
    }

    /// Copies `from` to `to` under the cap until `from` ends, then shuts `to` down for
    /// writing (as `tokio::io::copy_bidirectional` does for each direction).
    pub async fn copy<R, W>(&self, from: &mut R, to: &mut W) -> std::io::Result<u64>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        let mut buf = vec![0u8; self.chunk()];
        let mut total = 0u64;
        loop {
            let n = from.read(&mut buf).await?;
            if n == 0 {
                to.shutdown().await?;
                return Ok(total);
            }
            self.pay(n).await;
            to.write_all(&buf[..n]).await?;
            total += n as u64;
        }
    }
}

/// Both directions between `a` and `b` under one cap, until both have ended.
pub async fn copy_bidirectional_capped<A, B>(
    a: &mut A,
    b: &mut B,
    cap: &TcpCap,
) -> std::io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut a_read, mut a_write) = tokio::io::split(a);
    let (mut b_read, mut b_write) = tokio::io::split(b);
    tokio::try_join!(
        cap.copy(&mut a_read, &mut b_write),
        cap.copy(&mut b_read, &mut a_write)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn capped_copy_takes_as_long_as_the_rate_says() {
        let metrics = edged_metrics::Registry::new();
        let throttled = metrics.counter("test_throttled_ms", "", &[]);
        let Some(cap) = TcpCap::new(100_000, throttled.clone()) else {
            panic!("a non-zero rate is a cap");
        };
        assert!(TcpCap::new(0, throttled.clone()).is_none());
        // 250 kB at 100 kB/s with 100 kB of burst: about 1.5 s.
        let data = vec![7u8; 250_000];
        let (mut near, mut far) = tokio::io::duplex(64 * 1024);
        let started = Instant::now();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let _ = far.read_to_end(&mut got).await;
            got
        });
        let copied = cap
            .copy(&mut &data[..], &mut near)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let got = reader.await.unwrap_or_else(|e| panic!("{e}"));
        let took = started.elapsed();
        assert_eq!(copied, 250_000);
        assert_eq!(got, data);
        assert!(
            took >= Duration::from_millis(1400) && took < Duration::from_millis(3000),
            "took {took:?}"
        );
        assert!(throttled.get() >= 1300, "throttled {} ms", throttled.get());
    }
}
