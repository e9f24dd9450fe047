//! Newtypes for the identifiers ZAB and the data tree use.

use std::fmt;

/// A peer's `myid`, the server id of ZooKeeper's `server.N` lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u64);

/// A ZAB epoch (`acceptedEpoch`, `currentEpoch`, the high half of a zxid).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch(pub u32);

/// A transaction id: `epoch << 32 | counter`, ordered as an integer.
///
/// Counter 0 of every epoch is never a transaction: it names the epoch
/// itself (the NEWLEADER zxid).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Zxid(pub u64);

impl Zxid {
    pub const ZERO: Zxid = Zxid(0);

    pub fn new(epoch: Epoch, counter: u32) -> Zxid {
        Zxid((u64::from(epoch.0) << 32) | u64::from(counter))
    }

    pub fn epoch(self) -> Epoch {
        Epoch((self.0 >> 32) as u32)
    }

    pub fn counter(self) -> u32 {
        (self.0 & 0xffff_ffff) as u32
    }
}

impl fmt::Display for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:x}:{}", self.epoch().0, self.counter())
    }
}

/// A client session. The leader assigns it: it is the zxid of the
/// createSession transaction, which is unique across the ensemble forever
/// without a clock or a per-boot nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub u64);

/// The driver's handle for one client request; echoed in its `Reply`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// Names one `Persist` output; the driver answers with `Persisted(token)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PersistToken(pub u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxid_halves() {
        let z = Zxid::new(Epoch(7), 42);
        assert_eq!(z.epoch(), Epoch(7));
        assert_eq!(z.counter(), 42);
        assert!(Zxid::new(Epoch(8), 0) > Zxid::new(Epoch(7), u32::MAX));
    }
}
