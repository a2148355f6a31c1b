//! One write per request: a ureq transport layer that holds what ureq sends until it waits
//! for the answer, then sends it all at once.
//!
//! ureq writes a request's head and its body with separate writes. On a keep-alive connection
//! with `TCP_NODELAY` each write is its own TCP segment, so every delivery cost two sends, two
//! segments for the receiver's kernel to take in, and often two wake-ups of the receiver (one
//! to read a head whose body has not arrived yet). Held until ureq asks for the response, the
//! request leaves as one segment. What is held is bounded: past [`HOLD_LIMIT`] it is sent at
//! once, as before.
//!
//! The same layer spares a second liveness probe. ureq probes a keep-alive connection when it
//! goes back to the pool (bytes after the response mean it must not be reused) and again when
//! it is taken out; each probe is three system calls (non-blocking on, a read, blocking
//! again). Taken out within [`PROBE_FRESH`] of a probe that found it open, with no traffic
//! since, the connection is not probed again.

use std::fmt;
use std::time::{Duration, Instant};
use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport};

/// Most bytes held back; a larger request is sent as it is written.
const HOLD_LIMIT: usize = 64 * 1024;

/// How long a probe that found the connection open (and idle since) stands for the next.
const PROBE_FRESH: Duration = Duration::from_millis(250);

/// Wraps whatever transport the connectors before it made (TCP, or TLS over TCP).
#[derive(Debug, Default)]
pub(crate) struct CoalescingConnector;

impl<In: Transport> Connector<In> for CoalescingConnector {
    type Out = Coalescing<In>;

    fn connect(
        &self,
        _details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(|inner| Coalescing {
            inner,
            held: Vec::new(),
            found_open: None,
        }))
    }
}

/// A transport that sends the bytes given to it when input is awaited (or when too many
/// are held).
pub(crate) struct Coalescing<T> {
    inner: T,
    held: Vec<u8>,
    /// When a probe last found the connection open, if nothing was sent or read since.
    found_open: Option<Instant>,
}

impl<T: Transport> Coalescing<T> {
    /// Sends everything held, through the inner transport's output buffer.
    fn flush(&mut self, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let mut sent = 0;
        while sent < self.held.len() {
            let output = self.inner.buffers().output();
            let n = output.len().min(self.held.len() - sent);
            output[..n].copy_from_slice(&self.held[sent..sent + n]);
            self.inner.transmit_output(n, timeout)?;
            sent += n;
        }
        self.held.clear();
        Ok(())
    }
}

impl<T: Transport> Transport for Coalescing<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.found_open = None;
        let output = self.inner.buffers().output();
        self.held.extend_from_slice(&output[..amount]);
        if self.held.len() >= HOLD_LIMIT {
            self.flush(timeout)?;
        }
        Ok(())
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        // Also when input is already buffered: nothing may stay held once ureq reads.
        self.found_open = None;
        self.flush(timeout)?;
        self.inner.maybe_await_input(timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.found_open = None;
        self.flush(timeout)?;
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        if self.found_open.is_some_and(|at| at.elapsed() < PROBE_FRESH) {
            return true;
        }
        let open = self.inner.is_open();
        self.found_open = open.then(Instant::now);
        open
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

impl<T: Transport> fmt::Debug for Coalescing<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coalescing")
            .field("inner", &self.inner)
            .field("held", &self.held.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ureq::unversioned::transport::LazyBuffers;

    /// Records each write it is asked to send.
    #[derive(Debug)]
    struct Recorder {
        buffers: LazyBuffers,
        writes: Vec<Vec<u8>>,
        probes: usize,
    }

    impl Transport for Recorder {
        fn buffers(&mut self) -> &mut dyn Buffers {
            &mut self.buffers
        }
        fn transmit_output(&mut self, amount: usize, _: NextTimeout) -> Result<(), ureq::Error> {
            let bytes = self.buffers.output()[..amount].to_vec();
            self.writes.push(bytes);
            Ok(())
        }
        fn await_input(&mut self, _: NextTimeout) -> Result<bool, ureq::Error> {
            Ok(false)
        }
        fn is_open(&mut self) -> bool {
            self.probes += 1;
            true
        }
    }

    fn coalescing(output_size: usize) -> Coalescing<Recorder> {
        Coalescing {
            inner: Recorder {
                buffers: LazyBuffers::new(1024, output_size),
                writes: Vec::new(),
                probes: 0,
            },
            held: Vec::new(),
            found_open: None,
        }
    }

    fn write(t: &mut Coalescing<Recorder>, bytes: &[u8]) {
        t.buffers().output()[..bytes.len()].copy_from_slice(bytes);
        t.transmit_output(bytes.len(), NextTimeout::default())
            .unwrap();
    }

    #[test]
    fn head_and_body_leave_in_one_write_when_the_answer_is_awaited() {
        let mut t = coalescing(1024);
        write(&mut t, b"POST / HTTP/1.1\r\ncontent-length: 2\r\n\r\n");
        write(&mut t, b"{}");
        assert!(t.inner.writes.is_empty(), "nothing is sent before the read");
        t.maybe_await_input(NextTimeout::default()).unwrap();
        assert_eq!(
            t.inner.writes,
            [b"POST / HTTP/1.1\r\ncontent-length: 2\r\n\r\n{}".to_vec()]
        );
        t.await_input(NextTimeout::default()).unwrap();
        assert_eq!(t.inner.writes.len(), 1, "nothing is sent twice");
    }

    #[test]
    fn a_large_request_is_sent_as_it_goes_in_pieces_that_fit_the_buffer() {
        let mut t = coalescing(16 * 1024);
        let chunk = vec![b'x'; 16 * 1024];
        for _ in 0..4 {
            write(&mut t, &chunk);
        }
        let sent: usize = t.inner.writes.iter().map(Vec::len).sum();
        assert_eq!(sent, HOLD_LIMIT, "sent once the limit was reached");
        assert!(t.inner.writes.iter().all(|w| w.len() <= 16 * 1024));
        write(&mut t, b"tail");
        t.await_input(NextTimeout::default()).unwrap();
        let sent: Vec<u8> = t.inner.writes.concat();
        assert_eq!(sent.len(), HOLD_LIMIT + 4);
        assert!(sent.ends_with(b"xtail"));
    }

    #[test]
    fn a_connection_found_open_and_idle_since_is_not_probed_again_at_once() {
        let mut t = coalescing(1024);
        write(&mut t, b"GET / HTTP/1.1\r\n\r\n");
        t.await_input(NextTimeout::default()).unwrap();
        assert!(t.is_open(), "back to the pool: probed");
        assert!(t.is_open(), "out of the pool at once: the probe stands");
        assert_eq!(t.inner.probes, 1);
        // Traffic since the probe: the next check probes again.
        write(&mut t, b"GET / HTTP/1.1\r\n\r\n");
        t.await_input(NextTimeout::default()).unwrap();
        assert!(t.is_open());
        assert_eq!(t.inner.probes, 2);
        // Idle for longer than a probe stands for: probed again.
        t.found_open = Some(Instant::now() - PROBE_FRESH);
        assert!(t.is_open());
        assert_eq!(t.inner.probes, 3);
    }
}
