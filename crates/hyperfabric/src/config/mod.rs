//! Fabric file (filled in next).
