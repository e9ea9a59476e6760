//! Node signatures (filled in next).
