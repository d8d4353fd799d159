//! The span model that every receiver decodes into and the store keeps.
//!
//! A [`Fragment`] is what arrives: either a complete, OTLP-shaped [`Span`]
//! (OTLP, Zipkin) or one phosphor [`Annotation`] (a piece of a span: its client
//! send, its server receive, ...). Fragments are stored as they arrive and
//! merged into spans when a trace is read.

use std::fmt;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_64, xxh3_128};

/// A 16-byte trace ID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span ID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SpanId(pub [u8; 8]);

/// Why a string is not a usable ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("id is empty")]
    Empty,
    #[error("id is longer than {MAX_LEGACY_ID_LEN} bytes")]
    TooLong,
    #[error("id contains whitespace or control characters")]
    BadCharacter,
    #[error("id is all zeroes")]
    Zero,
}

/// Longest free-string (legacy) ID accepted.
pub const MAX_LEGACY_ID_LEN: usize = 256;

fn check_free_string(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > MAX_LEGACY_ID_LEN {
        return Err(IdError::TooLong);
    }
    // Printable ASCII (every hex ID) is neither whitespace nor control: no
    // need to decode characters. Three IDs an annotation, on the UDP path.
    if s.bytes().all(|b| b.is_ascii_graphic()) {
        return Ok(());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(IdError::BadCharacter);
    }
    Ok(())
}

/// Whether `s` has an upper-case ASCII letter: a hex ID that decoded is
/// in canonical (lower-case) form exactly when it has none.
fn has_upper(s: &str) -> bool {
    s.bytes().any(|c| c.is_ascii_uppercase())
}

fn hex_exact<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

impl TraceId {
    /// Parses a trace ID as users and clients write it.
    ///
    /// 32 hex digits and UUIDs map losslessly; 16 hex digits are zero-padded
    /// on the left (64-bit IDs, as Zipkin and Jaeger clients send them); any
    /// other string is a legacy phosphor ID, mapped by hashing. The second
    /// value is the original string where the mapping does not give it back.
    pub fn parse(s: &str) -> Result<(TraceId, Option<String>), IdError> {
        check_free_string(s)?;
        let lossless = match s.len() {
            32 => hex_exact::<16>(s),
            16 => hex_exact::<8>(s).map(|low| {
                let mut b = [0u8; 16];
                b[8..].copy_from_slice(&low);
                b
            }),
            36 if s.as_bytes().iter().enumerate().all(|(i, &c)| {
                if matches!(i, 8 | 13 | 18 | 23) {
                    c == b'-'
                } else {
                    c.is_ascii_hexdigit()
                }
            }) =>
            {
                hex_exact::<16>(&s.replace('-', ""))
            }
            _ => None,
        };
        match lossless {
            Some(b) if b == [0; 16] => Err(IdError::Zero),
            Some(b) => {
                let id = TraceId(b);
                // Keep the original where the canonical form differs from
                // it (upper case, UUID dashes), so that it can be shown. It
                // decoded as hex, so only those two can make it differ.
                let canonical = s.len() == 32 && !has_upper(s);
                let original = (!canonical && s.len() != 16).then(|| s.to_string());
                Ok((id, original))
            }
            None => Ok((
                TraceId(xxh3_128(s.as_bytes()).to_be_bytes()),
                Some(s.to_string()),
            )),
        }
    }

    /// Lower-case hex, 32 digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// From raw bytes as OTLP carries them; `None` unless exactly 16 bytes and
    /// not all zero.
    pub fn from_slice(b: &[u8]) -> Option<TraceId> {
        let arr: [u8; 16] = b.try_into().ok()?;
        (arr != [0; 16]).then_some(TraceId(arr))
    }
}

impl SpanId {
    /// 16 hex digits map losslessly; any other string is hashed, and the
    /// original string is returned beside it.
    pub fn parse(s: &str) -> Result<(SpanId, Option<String>), IdError> {
        check_free_string(s)?;
        match (s.len() == 16).then(|| hex_exact::<8>(s)).flatten() {
            Some(b) if b == [0; 8] => Err(IdError::Zero),
            Some(b) => {
                let id = SpanId(b);
                let original = has_upper(s).then(|| s.to_string());
                Ok((id, original))
            }
            None => Ok((
                SpanId(xxh3_64(s.as_bytes()).to_be_bytes()),
                Some(s.to_string()),
            )),
        }
    }

    /// Lower-case hex, 16 digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// From raw bytes as OTLP carries them; `None` unless exactly 8 bytes and
    /// not all zero.
    pub fn from_slice(b: &[u8]) -> Option<SpanId> {
        let arr: [u8; 8] = b.try_into().ok()?;
        (arr != [0; 8]).then_some(SpanId(arr))
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({})", self.to_hex())
    }
}
impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({})", self.to_hex())
    }
}
impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A string of span data: kept inline up to 24 bytes, so that decoding a
/// stored span allocates only for long keys and values (most are short).
/// Stored and serialized exactly as a `String`.
pub type Text = compact_str::CompactString;

/// A typed attribute value (OTLP's `AnyValue`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Str(Text),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    Map(Vec<KeyValue>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Double(d) => write!(f, "{d}"),
            Value::Bytes(b) => f.write_str(&hex::encode(b)),
            Value::Array(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Map(kvs) => {
                f.write_str("{")?;
                for (i, kv) in kvs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}: {}", kv.key, kv.value)?;
                }
                f.write_str("}")
            }
        }
    }
}

/// One attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: Text,
    pub value: Value,
}

impl KeyValue {
    /// A string attribute.
    pub fn string(key: impl Into<Text>, value: impl Into<Text>) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Value::Str(value.into()),
        }
    }
}

/// OTLP span kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SpanKind {
    Unspecified = 0,
    Internal = 1,
    Server = 2,
    Client = 3,
    Producer = 4,
    Consumer = 5,
}

impl SpanKind {
    /// From OTLP's numeric kind; unknown numbers are `Unspecified`.
    pub fn from_otlp(n: i32) -> SpanKind {
        match n {
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => SpanKind::Unspecified,
        }
    }

    /// The byte that stands for this kind in keys.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// Inverse of [`SpanKind::as_u8`].
    pub fn from_u8(b: u8) -> SpanKind {
        SpanKind::from_otlp(i32::from(b))
    }

    /// Lower-case name as the API shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Unspecified => "unspecified",
            SpanKind::Internal => "internal",
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
        }
    }
}

/// OTLP status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StatusCode {
    Unset,
    Ok,
    Error,
}

impl StatusCode {
    /// Lower-case name as the API shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusCode::Unset => "unset",
            StatusCode::Ok => "ok",
            StatusCode::Error => "error",
        }
    }
}

/// A timestamped event on a span (OTLP event, phosphor ANNOTATION).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub time_ns: u64,
    pub name: Text,
    pub attributes: Vec<KeyValue>,
}

/// A link to another span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub attributes: Vec<KeyValue>,
}

/// Which receiver a fragment came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    PhosphorUdp,
    OtlpGrpc,
    OtlpHttp,
    Zipkin,
    Upload,
}

impl Protocol {
    /// Stable lower-case name (API, metrics labels).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::PhosphorUdp => "udp",
            Protocol::OtlpGrpc => "otlp_grpc",
            Protocol::OtlpHttp => "otlp_http",
            Protocol::Zipkin => "zipkin",
            Protocol::Upload => "upload",
        }
    }
}

/// A complete span, OTLP-shaped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub name: Text,
    pub kind: SpanKind,
    /// The resource's `service.name`.
    pub service: Text,
    pub start_ns: u64,
    pub end_ns: u64,
    pub status: StatusCode,
    pub status_message: Text,
    pub attributes: Vec<KeyValue>,
    /// Resource attributes other than `service.name`.
    pub resource: Vec<KeyValue>,
    /// Instrumentation scope name and version, where given.
    pub scope: Option<String>,
    pub events: Vec<Event>,
    pub links: Vec<Link>,
    pub protocol: Protocol,
}

/// Phosphor's annotation types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AnnotationType {
    ClientSend,
    ClientRecv,
    ServerRecv,
    ServerSend,
    Timeout,
    Annotation,
}

impl AnnotationType {
    /// From the wire enum; `None` for UNKNOWN and unknown numbers.
    pub fn from_wire(n: i32) -> Option<AnnotationType> {
        Some(match n {
            1 => AnnotationType::ClientSend,
            2 => AnnotationType::ClientRecv,
            3 => AnnotationType::ServerRecv,
            4 => AnnotationType::ServerSend,
            5 => AnnotationType::Timeout,
            6 => AnnotationType::Annotation,
            _ => return None,
        })
    }

    /// The wire enum's number (what [`AnnotationType::from_wire`] takes).
    pub fn wire(self) -> u8 {
        match self {
            AnnotationType::ClientSend => 1,
            AnnotationType::ClientRecv => 2,
            AnnotationType::ServerRecv => 3,
            AnnotationType::ServerSend => 4,
            AnnotationType::Timeout => 5,
            AnnotationType::Annotation => 6,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AnnotationType::ClientSend => "CLIENT_SEND",
            AnnotationType::ClientRecv => "CLIENT_RECV",
            AnnotationType::ServerRecv => "SERVER_RECV",
            AnnotationType::ServerSend => "SERVER_SEND",
            AnnotationType::Timeout => "TIMEOUT",
            AnnotationType::Annotation => "ANNOTATION",
        }
    }

    /// Which side of a span this annotation belongs to.
    pub fn side(self) -> Side {
        match self {
            AnnotationType::ClientSend | AnnotationType::ClientRecv | AnnotationType::Timeout => {
                Side::Client
            }
            AnnotationType::ServerRecv | AnnotationType::ServerSend => Side::Server,
            AnnotationType::Annotation => Side::Event,
        }
    }
}

/// The part of a span an annotation describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Client,
    Server,
    Event,
}

/// The original free-string IDs of an annotation, where they do not map
/// back from the 16- and 8-byte IDs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyIds {
    pub trace: Option<String>,
    pub span: Option<String>,
    pub parent: Option<String>,
}

/// One phosphor annotation: a fragment of a span.
///
/// `origin` and `destination` describe the call: the calling service and the
/// service called. The client side of a span belongs to `origin`; the server
/// side to `destination` (or `origin` where no destination is given).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_id: Option<SpanId>,
    pub legacy: LegacyIds,
    pub kind: AnnotationType,
    /// One-way call: the client side ends at CLIENT_SEND.
    pub one_way: bool,
    pub timestamp_us: i64,
    pub duration_us: i64,
    // Text, not String: most of these are short and kept inline, so an
    // annotation decoded on the UDP thread and dropped on a writer costs
    // few allocations and fewer frees across threads (postcard writes a
    // Text exactly as a String).
    pub hostname: Text,
    pub origin: Text,
    pub destination: Text,
    pub payload: Text,
    pub attributes: Vec<(Text, Text)>,
}

/// Attribute keys that name a phosphor annotation's operation, first match
/// wins.
pub const OPERATION_KEYS: [&str; 4] = ["operation", "endpoint", "method", "name"];

impl Annotation {
    /// The service this fragment's side belongs to.
    pub fn service(&self) -> &str {
        let pick = match self.kind.side() {
            Side::Server if !self.destination.is_empty() => &self.destination,
            _ => &self.origin,
        };
        if !pick.is_empty() {
            pick
        } else if !self.destination.is_empty() {
            &self.destination
        } else if !self.hostname.is_empty() {
            &self.hostname
        } else {
            "unknown"
        }
    }

    /// The operation name, from the first of [`OPERATION_KEYS`] present, else
    /// from the call's destination.
    pub fn operation(&self) -> Option<String> {
        self.operation_str().map(str::to_string)
    }

    /// [`Annotation::operation`], borrowed.
    pub fn operation_str(&self) -> Option<&str> {
        OPERATION_KEYS.iter().find_map(|key| {
            self.attributes
                .iter()
                .find(|(k, v)| k == key && !v.is_empty())
                .map(|(_, v)| v.as_str())
        })
    }

    /// The span kind of this fragment's side.
    pub fn span_kind(&self) -> SpanKind {
        match (self.kind.side(), self.one_way) {
            (Side::Client, false) => SpanKind::Client,
            (Side::Client, true) => SpanKind::Producer,
            (Side::Server, false) => SpanKind::Server,
            (Side::Server, true) => SpanKind::Consumer,
            (Side::Event, _) => SpanKind::Internal,
        }
    }

    /// The (service, span kind, operation) this annotation adds to the
    /// catalog. `span_operation` is the operation another annotation of the
    /// same span names, if one is known. A side whose operation is not known
    /// adds nothing, except a CLIENT_SEND, which adds its default name (as
    /// the assembled span will show it).
    pub fn catalog_entry(&self, span_operation: Option<&str>) -> Option<(&str, SpanKind, String)> {
        if self.kind.side() == Side::Event {
            return None;
        }
        let op = self
            .operation()
            .or_else(|| span_operation.map(str::to_string))
            .or_else(|| (self.kind == AnnotationType::ClientSend).then(|| self.default_name()))?;
        Some((self.service(), self.span_kind(), op))
    }

    /// The name a span made of this fragment gets where no operation is
    /// given: `call <destination>` on the client side, `handle` on the
    /// server side.
    pub fn default_name(&self) -> String {
        match self.kind.side() {
            Side::Client if !self.destination.is_empty() => format!("call {}", self.destination),
            Side::Client => "call".into(),
            Side::Server => "handle".into(),
            Side::Event => "annotation".into(),
        }
    }
}

/// What the store keeps: a complete span, or one annotation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Fragment {
    Span(Span),
    Annotation(Annotation),
}

impl Fragment {
    /// The trace this fragment belongs to.
    pub fn trace_id(&self) -> TraceId {
        match self {
            Fragment::Span(s) => s.trace_id,
            Fragment::Annotation(a) => a.trace_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_parse_losslessly_where_they_can() {
        let hex = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(
            TraceId::parse(hex).unwrap(),
            (TraceId(hex_exact(hex).unwrap()), None)
        );

        let (upper, original) = TraceId::parse(&hex.to_uppercase()).unwrap();
        assert_eq!(upper.to_hex(), hex);
        assert_eq!(original.as_deref(), Some(hex.to_uppercase().as_str()));

        let (short, original) = TraceId::parse("a3ce929d0e0e4736").unwrap();
        assert_eq!(short.to_hex(), "0000000000000000a3ce929d0e0e4736");
        assert_eq!(original, None);

        let uuid = "4bf92f35-77b3-4da6-a3ce-929d0e0e4736";
        let (from_uuid, original) = TraceId::parse(uuid).unwrap();
        assert_eq!(from_uuid.to_hex(), hex);
        assert_eq!(original.as_deref(), Some(uuid));
    }

    #[test]
    fn an_original_id_is_kept_exactly_when_its_canonical_form_differs() {
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        let span = "00f067aa0ba902b7";
        let mixed = |s: &str, at: usize| {
            s.char_indices()
                .map(|(i, c)| if i == at { c.to_ascii_uppercase() } else { c })
                .collect::<String>()
        };
        for at in 0..trace.len() {
            let s = mixed(trace, at);
            let (id, original) = TraceId::parse(&s).unwrap();
            assert_eq!(original.is_some(), id.to_hex() != s, "{s}");
            let dashed = format!(
                "{}-{}-{}-{}-{}",
                &s[..8],
                &s[8..12],
                &s[12..16],
                &s[16..20],
                &s[20..]
            );
            let (_, original) = TraceId::parse(&dashed).unwrap();
            assert_eq!(original.as_deref(), Some(dashed.as_str()));
        }
        for at in 0..span.len() {
            let s = mixed(span, at);
            let (id, original) = SpanId::parse(&s).unwrap();
            assert_eq!(original.is_some(), id.to_hex() != s, "{s}");
            // 64-bit trace IDs are padded and never kept, whatever the case.
            assert_eq!(TraceId::parse(&s).unwrap().1, None);
        }
    }

    #[test]
    fn legacy_trace_ids_hash_deterministically_and_keep_the_original() {
        let (a, original) = TraceId::parse("req-2015-07-01-abc").unwrap();
        let (b, _) = TraceId::parse("req-2015-07-01-abc").unwrap();
        let (c, _) = TraceId::parse("req-2015-07-01-abd").unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(original.as_deref(), Some("req-2015-07-01-abc"));
    }

    #[test]
    fn annotation_types_have_their_wire_numbers_both_ways() {
        for n in 1..=6u8 {
            let t = AnnotationType::from_wire(i32::from(n)).unwrap();
            assert_eq!(t.wire(), n, "{t:?}");
        }
        assert_eq!(AnnotationType::from_wire(0), None);
        assert_eq!(AnnotationType::from_wire(7), None);
    }

    #[test]
    fn malformed_ids_are_rejected() {
        assert_eq!(TraceId::parse(""), Err(IdError::Empty));
        assert_eq!(TraceId::parse("a b"), Err(IdError::BadCharacter));
        // Past ASCII: Unicode whitespace and control characters are refused,
        // other letters kept.
        assert_eq!(TraceId::parse("a\u{2003}b"), Err(IdError::BadCharacter));
        assert_eq!(TraceId::parse("a\u{85}b"), Err(IdError::BadCharacter));
        assert_eq!(SpanId::parse("tab\there"), Err(IdError::BadCharacter));
        assert!(TraceId::parse("trace-é").is_ok());
        assert_eq!(TraceId::parse(&"x".repeat(300)), Err(IdError::TooLong));
        assert_eq!(TraceId::parse(&"0".repeat(32)), Err(IdError::Zero));
        assert_eq!(SpanId::parse("0000000000000000"), Err(IdError::Zero));
        assert_eq!(TraceId::from_slice(&[0; 16]), None);
        assert_eq!(TraceId::from_slice(&[1; 15]), None);
        assert_eq!(SpanId::from_slice(&[1; 8]), Some(SpanId([1; 8])));
    }

    #[test]
    fn annotation_sides_pick_their_service() {
        let mut a = Annotation {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            parent_id: None,
            legacy: LegacyIds::default(),
            kind: AnnotationType::ClientSend,
            one_way: false,
            timestamp_us: 0,
            duration_us: 0,
            hostname: "host-1".into(),
            origin: "api".into(),
            destination: "card-api".into(),
            payload: Default::default(),
            attributes: vec![],
        };
        assert_eq!(a.service(), "api");
        assert_eq!(a.default_name(), "call card-api");
        a.kind = AnnotationType::ServerRecv;
        assert_eq!(a.service(), "card-api");
        assert_eq!(a.span_kind(), SpanKind::Server);
        a.attributes.push(("endpoint".into(), "/authorise".into()));
        assert_eq!(a.operation().as_deref(), Some("/authorise"));
        assert_eq!(
            a.catalog_entry(None),
            Some(("card-api", SpanKind::Server, "/authorise".to_string()))
        );
        a.attributes.clear();
        // A server side that names no operation takes its span's, or adds
        // nothing; a CLIENT_SEND adds its default name.
        assert_eq!(
            a.catalog_entry(Some("authorise")),
            Some(("card-api", SpanKind::Server, "authorise".to_string()))
        );
        assert_eq!(a.catalog_entry(None), None);
        a.kind = AnnotationType::ClientRecv;
        assert_eq!(a.catalog_entry(None), None);
        a.kind = AnnotationType::ClientSend;
        assert_eq!(
            a.catalog_entry(None),
            Some(("api", SpanKind::Client, "call card-api".to_string()))
        );
        a.origin.clear();
        a.destination.clear();
        assert_eq!(a.service(), "host-1");
    }
}
