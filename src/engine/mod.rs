//! Plan and apply over the resource graph: observe (read-only) -> diff (pure) -> apply (writes, in
//! dependency order, concurrently where the graph allows). The kinds themselves are the registry's
//! ([`crate::resources`]); the engine names none of them.

pub(crate) mod apply;
pub(crate) mod permissions;
