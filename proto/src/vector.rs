//! Vectors on the wire: a JSON array of numbers, or a string holding the base64 of their
//! little-endian `f32` bytes.
//!
//! Both are accepted wherever a vector is (a document's `vector`, a search's `vector`), and a
//! `get` or `search` chooses how vectors come back with `vector_encoding` (`"json"`, the
//! default, or `"base64"`). Bytes are exact (the `f32` a client holds is the `f32` stored, with
//! no decimal round trip) and cheap: 4 bytes become 5⅓ characters, where a decimal float takes
//! 9–12 characters and, in most languages, a formatting call each.
//!
//! ```
//! use ctxd_proto::{Vector, VectorEncoding};
//!
//! let v: Vector = serde_json::from_str(r#""AACAPwAAAEAAAEBA""#)?;
//! assert_eq!(&v[..], &[1.0, 2.0, 3.0]);
//! assert_eq!(v.encoding(), VectorEncoding::Base64);
//! let json = Vector::from(vec![1.0, 2.0, 3.0]);
//! assert_eq!(serde_json::to_string(&json)?, "[1.0,2.0,3.0]");
//! assert_eq!(serde_json::to_string(&json.encoded(VectorEncoding::Base64))?, r#""AACAPwAAAEAAAEBA""#);
//! # Ok::<(), serde_json::Error>(())
//! ```

use crate::limits::MAX_DIMENSION;
use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use std::fmt;

/// How vectors are written: as a JSON array of numbers, or as base64 of little-endian `f32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VectorEncoding {
    /// `[0.1, 0.2, …]`.
    #[default]
    Json,
    /// `"zczMPc3MTD4…"`: standard base64 (padding optional on input) of 4 little-endian bytes
    /// per value.
    Base64,
}

/// A vector's values and the encoding it is written in.
///
/// It dereferences to `[f32]`; equality compares the values only.
#[derive(Clone, Default)]
pub struct Vector {
    values: Vec<f32>,
    encoding: VectorEncoding,
}

impl Vector {
    /// A vector written as a JSON array.
    pub fn new(values: Vec<f32>) -> Vector {
        Vector {
            values,
            encoding: VectorEncoding::Json,
        }
    }

    /// The same values, written in `encoding`.
    pub fn encoded(mut self, encoding: VectorEncoding) -> Vector {
        self.encoding = encoding;
        self
    }

    /// The encoding it is written in (for a decoded vector: the one it arrived in).
    pub fn encoding(&self) -> VectorEncoding {
        self.encoding
    }

    /// The values.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// The values, owned.
    pub fn into_values(self) -> Vec<f32> {
        self.values
    }
}

impl std::ops::Deref for Vector {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &self.values
    }
}

impl From<Vec<f32>> for Vector {
    fn from(values: Vec<f32>) -> Vector {
        Vector::new(values)
    }
}

impl From<Vector> for Vec<f32> {
    fn from(vector: Vector) -> Vec<f32> {
        vector.values
    }
}

impl PartialEq for Vector {
    fn eq(&self, other: &Vector) -> bool {
        self.values == other.values
    }
}

impl fmt::Debug for Vector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.values.fmt(f)
    }
}

/// Decoding accepts padded and unpadded input alike.
const DECODE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The most characters a base64 vector of [`MAX_DIMENSION`] values takes.
const MAX_BASE64_LEN: usize = (MAX_DIMENSION as usize * 4).div_ceil(3) * 4;

impl Serialize for Vector {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.encoding {
            VectorEncoding::Json => {
                let mut seq = serializer.serialize_seq(Some(self.values.len()))?;
                for value in &self.values {
                    seq.serialize_element(value)?;
                }
                seq.end()
            }
            VectorEncoding::Base64 => {
                let bytes: Vec<u8> = self.values.iter().flat_map(|v| v.to_le_bytes()).collect();
                serializer.serialize_str(&STANDARD.encode(bytes))
            }
        }
    }
}

struct VectorVisitor;

const TOO_LONG: &str = "more than 4096 values in a vector (the largest dimension)";

impl<'de> Visitor<'de> for VectorVisitor {
    type Value = Vector;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a vector: a list of at most 4096 numbers, or a base64 string of little-endian f32",
        )
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vector, A::Error> {
        let max = MAX_DIMENSION as usize;
        let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(max));
        while let Some(value) = seq.next_element()? {
            if values.len() == max {
                return Err(de::Error::custom(TOO_LONG));
            }
            values.push(value);
        }
        Ok(Vector::new(values))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Vector, E> {
        if text.len() > MAX_BASE64_LEN {
            return Err(E::custom(TOO_LONG));
        }
        let bytes = DECODE
            .decode(text)
            .map_err(|e| E::custom(format!("a base64 vector is not valid base64: {e}")))?;
        if bytes.len() % 4 != 0 {
            return Err(E::custom(format!(
                "a base64 vector holds 4 bytes per value (little-endian f32); this one holds {} \
                 bytes",
                bytes.len()
            )));
        }
        let values = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(Vector::new(values).encoded(VectorEncoding::Base64))
    }
}

impl<'de> Deserialize<'de> for Vector {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Vector, D::Error> {
        deserializer.deserialize_any(VectorVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(json: &str) -> Result<Vector, String> {
        serde_json::from_str::<Vector>(json).map_err(|e| e.to_string())
    }

    #[test]
    fn both_encodings_carry_the_same_bits() {
        let values = vec![0.1f32, -2.5, f32::MIN_POSITIVE, 3e38, -0.0];
        let base64 =
            serde_json::to_string(&Vector::new(values.clone()).encoded(VectorEncoding::Base64))
                .expect("encode");
        let back = decode(&base64).expect("decode");
        assert_eq!(back.encoding(), VectorEncoding::Base64);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&values), "bit for bit, -0 included");
        let json = serde_json::to_string(&Vector::new(values.clone())).expect("encode");
        assert_eq!(bits(&decode(&json).expect("decode")), bits(&values));
        // Unpadded input is accepted too.
        assert_eq!(&decode(r#""AACAPw""#).expect("unpadded")[..], &[1.0]);
    }

    #[test]
    fn bad_vectors_say_what_is_wrong() {
        assert!(
            decode(r#""AACAPwAA""#)
                .unwrap_err()
                .contains("holds 6 bytes")
        );
        assert!(
            decode(r#""not base64!""#)
                .unwrap_err()
                .contains("not valid base64")
        );
        let long = format!(r#""{}""#, STANDARD.encode(vec![0u8; 4 * 4097]));
        assert!(decode(&long).unwrap_err().contains("more than 4096 values"));
        let long = format!("[{}]", vec!["0"; 4097].join(","));
        assert!(decode(&long).unwrap_err().contains("more than 4096 values"));
        assert!(decode("7").unwrap_err().contains("a vector"));
        let most = format!(r#""{}""#, STANDARD.encode(vec![0u8; 4 * 4096]));
        assert_eq!(decode(&most).expect("4096 values").len(), 4096);
    }
}
