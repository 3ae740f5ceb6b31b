//! The integration tests, one crate (the SDK and the harness are linked once, not once per file), a module per
//! area; each module's own doc says what it covers. `common` is the harness (tests/common/mod.rs): it starts the
//! emulator on 127.0.0.1 and runs the wfboot binary as a child process, so nothing is shared between modules.

#[path = "../common/mod.rs"]
mod common;

mod accounts;
mod bootstrap;
mod check;
mod cli;
mod consumers;
mod destroy;
mod docs;
mod edges;
mod export;
mod harden;
mod instances;
mod interactive;
mod lint;
mod org_units;
mod organisation;
mod pipeline;
mod profiles;
mod realism;
mod reliability;
mod sandbox;
mod schema;
mod scp;
mod verify;
