//! Column-family names, in one place.

/// Trace fragments, grouped per trace and write: key
/// [`crate::keys::fragment_key`], value an encoded `Vec<Fragment>`.
pub const SPANS: &str = "spans";
/// Newest-first listing of traces as they are written: key
/// [`crate::keys::recent_key`], empty value.
pub const RECENT: &str = "recent";
/// Services and operations: keys [`crate::keys::service_key`] and
/// [`crate::keys::operation_key`], empty values.
pub const CATALOG: &str = "catalog";
/// Store metadata (format version).
pub const META: &str = "meta";

/// Every column family the store opens.
pub const ALL: [&str; 4] = [SPANS, RECENT, CATALOG, META];
