//! The bytes the server holds for clients outside the store.
//!
//! SPEC.md's memory limit covers the stored events *and* what is held for
//! answers not yet written (heads, error bodies, the metrics text) and for
//! request bodies on their way in. The store counts its own bytes; every
//! connection's buffers report theirs here, so a push can be refused (`503`)
//! when the sum reaches `--max-memory`, whatever mix of stalled readers and
//! slow uploaders brought it there.
//!
//! One thread, so a `Cell` behind an `Rc`: each buffer that holds bytes
//! keeps a handle and adds or subtracts as it grows or drains. A handle is
//! cloned per connection, not per buffer operation.

use std::cell::Cell;
use std::rc::Rc;

/// A shared count of bytes held for clients.
#[derive(Clone, Debug, Default)]
pub struct Meter(Rc<Cell<usize>>);

impl Meter {
    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.0.get()
    }

    /// Counts `n` more bytes.
    pub fn add(&self, n: usize) {
        self.0.set(self.0.get() + n);
    }

    /// Counts `n` bytes fewer.
    pub fn sub(&self, n: usize) {
        debug_assert!(self.0.get() >= n, "meter would go below zero");
        self.0.set(self.0.get().saturating_sub(n));
    }
}
