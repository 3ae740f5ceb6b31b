//! `wfboot verify`: does each role of the stack work for its service? Offline trust, permissions by
//! simulation, and (`--live`) the services themselves.

pub(crate) mod trust;
