//! The redo journal's binary form: a group's vector changes as one blob.
//!
//! Each change is a tag byte, then big-endian fields: `P` (put) collection u16, key u32,
//! length u32, then `length` f32 values little-endian; `D` (delete) collection u16, key u32;
//! `C` (clear) collection u16.

use super::StorageError;
use super::vectors::{VectorChange, decode_vector, encode_vector};

const PUT: u8 = b'P';
const DELETE: u8 = b'D';
const CLEAR: u8 = b'C';

/// Encodes changes in order.
pub fn encode(changes: &[VectorChange]) -> Vec<u8> {
    let size: usize = changes
        .iter()
        .map(|c| match c {
            VectorChange::Put { vector, .. } => 11 + 4 * vector.len(),
            VectorChange::Delete { .. } => 7,
            VectorChange::Clear { .. } => 3,
        })
        .sum();
    let mut out = Vec::with_capacity(size);
    for change in changes {
        match change {
            VectorChange::Put {
                collection,
                key,
                vector,
            } => {
                out.push(PUT);
                out.extend_from_slice(&collection.to_be_bytes());
                out.extend_from_slice(&key.to_be_bytes());
                out.extend_from_slice(&(vector.len() as u32).to_be_bytes());
                out.extend_from_slice(&encode_vector(vector));
            }
            VectorChange::Delete { collection, key } => {
                out.push(DELETE);
                out.extend_from_slice(&collection.to_be_bytes());
                out.extend_from_slice(&key.to_be_bytes());
            }
            VectorChange::Clear { collection } => {
                out.push(CLEAR);
                out.extend_from_slice(&collection.to_be_bytes());
            }
        }
    }
    out
}

/// Decodes what [`encode`] wrote; a truncated or unknown entry is corruption.
pub fn decode(mut bytes: &[u8]) -> Result<Vec<VectorChange>, StorageError> {
    let corrupt = || StorageError::Corrupt("the redo journal holds a malformed entry".to_owned());
    let take = |n: usize, bytes: &mut &[u8]| -> Result<Vec<u8>, StorageError> {
        if bytes.len() < n {
            return Err(corrupt());
        }
        let (head, tail) = bytes.split_at(n);
        *bytes = tail;
        Ok(head.to_vec())
    };
    let mut changes = Vec::new();
    while let Some((&tag, rest)) = bytes.split_first() {
        bytes = rest;
        let collection =
            u16::from_be_bytes(take(2, &mut bytes)?.try_into().map_err(|_| corrupt())?);
        match tag {
            CLEAR => changes.push(VectorChange::Clear { collection }),
            PUT | DELETE => {
                let key =
                    u32::from_be_bytes(take(4, &mut bytes)?.try_into().map_err(|_| corrupt())?);
                if tag == DELETE {
                    changes.push(VectorChange::Delete { collection, key });
                    continue;
                }
                let len =
                    u32::from_be_bytes(take(4, &mut bytes)?.try_into().map_err(|_| corrupt())?);
                let raw = take(4 * len as usize, &mut bytes)?;
                let vector = decode_vector(&raw);
                changes.push(VectorChange::Put {
                    collection,
                    key,
                    vector,
                });
            }
            _ => return Err(corrupt()),
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_kind_of_change() {
        let changes = vec![
            VectorChange::Put {
                collection: 3,
                key: 70_000,
                vector: vec![1.5, -0.0, f32::MIN_POSITIVE],
            },
            VectorChange::Delete {
                collection: 65_535,
                key: u32::MAX,
            },
            VectorChange::Clear { collection: 1 },
            VectorChange::Put {
                collection: 1,
                key: 0,
                vector: vec![],
            },
        ];
        let encoded = encode(&changes);
        assert_eq!(decode(&encoded).expect("decodes"), changes);
        assert!(
            decode(&encoded[..encoded.len() - 1]).is_err(),
            "truncation is detected"
        );
        assert!(decode(b"X\0\0").is_err(), "unknown tags are detected");
    }
}
