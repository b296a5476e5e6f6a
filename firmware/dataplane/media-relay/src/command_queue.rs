//! The control plane's end of a relay thread's command queue: a bounded lock-free ring the
//! thread drains every turn, and behind it a backlog on the control plane's side for the
//! commands that must never be lost.
//!
//! A full ring refuses new work (an Install, a Permit, a Bind: the request is answered
//! 508 and the client retries), but a removal (Remove, Revoke, Unbind) waits in the backlog
//! until the ring has room: dropping it would let an allocation outlive its lifetime and
//! its credential on the relay thread. The backlog is bounded by construction: at most one
//! removal per allocation, permission and channel the control plane holds. While it is not
//! empty every command goes behind it (or is refused), so the thread sees them in order.
//! The relay thread takes no lock and allocates nothing for any of this.

use std::collections::VecDeque;

use crate::command::Command;

/// The ring is full and the command is not a removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

pub(crate) struct CommandSender {
    ring: rtrb::Producer<Command>,
    backlog: VecDeque<Command>,
}

impl CommandSender {
    pub fn new(ring: rtrb::Producer<Command>) -> Self {
        CommandSender {
            ring,
            backlog: VecDeque::new(),
        }
    }

    /// Queues `command`; a removal is always taken (into the backlog if the ring is full).
    pub fn send(&mut self, command: Command) -> Result<(), Full> {
        if !self.retry() {
            if command.must_arrive() {
                self.backlog.push_back(command);
                return Ok(());
            }
            return Err(Full);
        }
        match self.ring.push(command) {
            Ok(()) => Ok(()),
            Err(rtrb::PushError::Full(command)) if command.must_arrive() => {
                self.backlog.push_back(command);
                Ok(())
            }
            Err(rtrb::PushError::Full(_)) => Err(Full),
        }
    }

    /// Moves what the backlog holds into the ring, in order, as far as it has room;
    /// whether the backlog is now empty.
    pub fn retry(&mut self) -> bool {
        while let Some(command) = self.backlog.pop_front() {
            if let Err(rtrb::PushError::Full(command)) = self.ring.push(command) {
                self.backlog.push_front(command);
                return false;
            }
        }
        true
    }

    /// Removals waiting for room in the ring.
    pub fn backlog(&self) -> usize {
        self.backlog.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permit(id: u64) -> Command {
        Command::Permit {
            id,
            peer: [192, 0, 2, 1].into(),
            ports: 1..=u16::MAX,
        }
    }

    fn id_of(c: &Command) -> (u64, &'static str) {
        match c {
            Command::Permit { id, .. } => (*id, "permit"),
            Command::Remove { id } => (*id, "remove"),
            Command::Revoke { id, .. } => (*id, "revoke"),
            Command::Unbind { id, .. } => (*id, "unbind"),
            Command::Bind { id, .. } => (*id, "bind"),
            Command::Install { id, .. } => (*id, "install"),
        }
    }

    #[test]
    fn a_full_queue_keeps_removals_and_delivers_them_in_order() {
        let (ring, mut thread) = rtrb::RingBuffer::new(4);
        let mut q = CommandSender::new(ring);
        for id in 1..=4 {
            assert_eq!(q.send(permit(id)), Ok(()));
        }
        // The ring is full: new work is refused, removals are kept.
        assert_eq!(q.send(permit(5)), Err(Full));
        assert_eq!(q.send(Command::Remove { id: 1 }), Ok(()));
        assert_eq!(
            q.send(Command::Revoke {
                id: 2,
                peer: [192, 0, 2, 1].into()
            }),
            Ok(())
        );
        assert_eq!(
            q.send(Command::Unbind {
                id: 3,
                channel: 0x4000
            }),
            Ok(())
        );
        assert_eq!(q.backlog(), 3);
        // Behind a backlog, new work is refused even with room in the ring, so it
        // cannot overtake a removal.
        let _ = thread.pop();
        assert_eq!(q.send(permit(6)), Err(Full));
        assert_eq!(q.backlog(), 2, "the retry moved one removal into the room");
        // The thread drains; the next retry (the control plane's periodic one) delivers
        // the rest.
        let mut seen = Vec::new();
        while let Ok(c) = thread.pop() {
            seen.push(id_of(&c));
        }
        assert!(q.retry());
        while let Ok(c) = thread.pop() {
            seen.push(id_of(&c));
        }
        assert_eq!(
            seen,
            [
                (2, "permit"),
                (3, "permit"),
                (4, "permit"),
                (1, "remove"),
                (2, "revoke"),
                (3, "unbind")
            ]
        );
        assert_eq!(q.backlog(), 0);
        assert_eq!(q.send(permit(7)), Ok(()));
    }
}
