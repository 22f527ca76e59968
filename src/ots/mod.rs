//! OpenTimestamps wire format.
