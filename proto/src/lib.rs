//! phosphor-proto: phosphor's wire types.
//!
//! - [`phosphor`]: the UDP annotation protocol (`proto/phosphor/trace.proto`),
//!   wire-compatible with the original phosphor `Annotation`, plus the batch
//!   framing that packs many annotations into one datagram. The collector
//!   reads datagrams in place with [`phosphor::each_annotation`] (strings
//!   borrowed from the datagram); prost's [`phosphor::decode_datagram`] is
//!   the owned form, and the reference a test holds the reader to.
//! - [`zipkin`]: Zipkin's proto3 span format.
//! - [`otlp`]: a re-export of `opentelemetry-proto`, the OTLP types and the
//!   tonic service definitions.

mod borrowed;

/// The phosphor annotation protocol (package `proto` on the wire).
pub mod phosphor {
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/proto.rs"));

    use prost::Message;

    /// First byte of a batch datagram: a protobuf tag with field number 0,
    /// which cannot start a legacy `Annotation`.
    pub const BATCH_MAGIC: u8 = 0x00;
    /// The batch framing version this build writes and reads.
    pub const BATCH_VERSION: u8 = 0x01;

    /// What a datagram holds, told apart by its first byte.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Datagram {
        /// One legacy annotation (the original client's framing).
        Legacy(Annotation),
        /// A batch of annotations.
        Batch(Vec<Annotation>),
    }

    /// Why a datagram could not be decoded.
    #[derive(Debug, thiserror::Error)]
    pub enum DatagramError {
        #[error("empty datagram")]
        Empty,
        #[error("unsupported batch framing version {0}")]
        Version(u8),
        #[error("truncated batch header")]
        Truncated,
        #[error("invalid protobuf: {0}")]
        Protobuf(#[from] prost::DecodeError),
        #[error("invalid protobuf: {0}")]
        Wire(#[from] crate::borrowed::WireError),
    }

    pub use crate::borrowed::{AnnotationRef, WireError, each_annotation};

    /// A datagram's framing, told apart by its first byte: a legacy
    /// annotation, or a batch's protobuf after its two header bytes.
    pub(crate) enum Framing<'a> {
        Legacy(&'a [u8]),
        Batch(&'a [u8]),
    }

    pub(crate) fn framing(buf: &[u8]) -> Result<Framing<'_>, DatagramError> {
        match buf.first() {
            None => Err(DatagramError::Empty),
            Some(&BATCH_MAGIC) => {
                let version = *buf.get(1).ok_or(DatagramError::Truncated)?;
                if version != BATCH_VERSION {
                    return Err(DatagramError::Version(version));
                }
                Ok(Framing::Batch(&buf[2..]))
            }
            Some(_) => Ok(Framing::Legacy(buf)),
        }
    }

    /// Decodes one datagram in either framing.
    pub fn decode_datagram(buf: &[u8]) -> Result<Datagram, DatagramError> {
        Ok(match framing(buf)? {
            Framing::Legacy(m) => Datagram::Legacy(Annotation::decode(m)?),
            Framing::Batch(b) => Datagram::Batch(AnnotationBatch::decode(b)?.annotations),
        })
    }

    /// Encodes annotations in the batch framing.
    pub fn encode_batch(annotations: &[Annotation]) -> Vec<u8> {
        let batch = AnnotationBatch {
            annotations: annotations.to_vec(),
        };
        let mut out = Vec::with_capacity(2 + batch.encoded_len());
        out.push(BATCH_MAGIC);
        out.push(BATCH_VERSION);
        batch.encode(&mut out).expect("vec grows");
        out
    }

    /// Encodes one annotation in the legacy framing (one per datagram).
    pub fn encode_legacy(annotation: &Annotation) -> Vec<u8> {
        annotation.encode_to_vec()
    }
}

/// Zipkin v2 spans in proto3 (`POST /api/v2/spans`, protobuf).
pub mod zipkin {
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/zipkin.proto3.rs"));
}

pub use opentelemetry_proto as otlp;

#[cfg(test)]
mod tests {
    use super::phosphor::*;
    use prost::Message;

    fn ann(span: &str) -> Annotation {
        Annotation {
            trace_id: "trace-1".into(),
            span_id: span.into(),
            r#type: AnnotationType::ClientSend as i32,
            timestamp: 1_700_000_000_000_000,
            ..Default::default()
        }
    }

    #[test]
    fn legacy_and_batch_are_told_apart() {
        let one = ann("a");
        let legacy = encode_legacy(&one);
        // A legacy message starts with the tag of field 1 (0x0a).
        assert_eq!(legacy[0], 0x0a);
        assert_eq!(
            decode_datagram(&legacy).unwrap(),
            Datagram::Legacy(one.clone())
        );

        let two = vec![ann("a"), ann("b")];
        let batch = encode_batch(&two);
        assert_eq!(&batch[..2], &[BATCH_MAGIC, BATCH_VERSION]);
        assert_eq!(decode_datagram(&batch).unwrap(), Datagram::Batch(two));
    }

    #[test]
    fn legacy_field_numbers_match_the_original_schema() {
        // Field 6 (timestamp, varint) and field 12 (key_value, bytes) as the
        // original Go client writes them.
        let a = Annotation {
            timestamp: 5,
            key_value: vec![KeyValue {
                key: "k".into(),
                value: "v".into(),
            }],
            ..Default::default()
        };
        let bytes = a.encode_to_vec();
        assert_eq!(
            bytes,
            vec![0x30, 0x05, 0x62, 0x06, 0x0a, 0x01, b'k', 0x12, 0x01, b'v']
        );
    }

    #[test]
    fn bad_datagrams_are_errors() {
        assert!(matches!(decode_datagram(&[]), Err(DatagramError::Empty)));
        assert!(matches!(
            decode_datagram(&[0x00]),
            Err(DatagramError::Truncated)
        ));
        assert!(matches!(
            decode_datagram(&[0x00, 0x09]),
            Err(DatagramError::Version(9))
        ));
        assert!(decode_datagram(&[0xff, 0xff, 0xff]).is_err());
    }
}
