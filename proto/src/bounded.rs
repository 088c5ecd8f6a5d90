//! Decoding that enforces the limits of protocol 1 while it reads, so a request never costs
//! memory out of proportion to what it may carry: a vector longer than [`MAX_DIMENSION`]
//! (checked by [`Vector`]'s own decoding, for arrays and base64 alike), an upsert of more than [`MAX_BATCH_DOCUMENTS`] documents, more than [`MAX_IDS`] ids or a
//! filter larger than [`MAX_FILTER_BYTES`] is refused at the element that crosses the limit,
//! before the rest is decoded.

use crate::limits::{MAX_BATCH_DOCUMENTS, MAX_IDS};
use crate::types::Document;
use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

#[allow(unused_imports, reason = "named in the module documentation")]
use crate::{
    Vector,
    limits::{MAX_DIMENSION, MAX_FILTER_BYTES},
};

/// A list of at most `max` elements; `what` names them in the error ("values of a vector").
struct Bounded<T> {
    max: usize,
    what: &'static str,
    element: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for Bounded<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a list of at most {} {}", self.max, self.what)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max));
        while let Some(item) = seq.next_element()? {
            if items.len() == self.max {
                return Err(de::Error::custom(format!(
                    "more than {} {}",
                    self.max, self.what
                )));
            }
            items.push(item);
        }
        Ok(items)
    }
}

fn bounded<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
    max: usize,
    what: &'static str,
) -> Result<Vec<T>, D::Error> {
    deserializer.deserialize_seq(Bounded {
        max,
        what,
        element: PhantomData,
    })
}

/// An optional list read with [`bounded`].
struct OptionalBounded<T> {
    max: usize,
    what: &'static str,
    element: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for OptionalBounded<T> {
    type Value = Option<Vec<T>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "null or a list of at most {} {}", self.max, self.what)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        bounded(deserializer, self.max, self.what).map(Some)
    }
}

fn optional_bounded<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
    max: usize,
    what: &'static str,
) -> Result<Option<Vec<T>>, D::Error> {
    deserializer.deserialize_option(OptionalBounded {
        max,
        what,
        element: PhantomData,
    })
}

/// The documents of one upsert: at most [`MAX_BATCH_DOCUMENTS`].
pub(crate) fn documents<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Document>, D::Error> {
    bounded(
        d,
        MAX_BATCH_DOCUMENTS,
        "documents in one upsert; split the batch",
    )
}

/// The ids of one `get` or `delete`: at most [`MAX_IDS`].
pub(crate) fn ids<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    optional_bounded(d, MAX_IDS, "ids in one request; split it")
}

/// A filter's JSON (`filter`, `text_filter`), read as text first so one larger than
/// [`MAX_FILTER_BYTES`] is refused before it is parsed into a tree; `what` names it.
pub(crate) fn filter_json<'de, D: Deserializer<'de>>(
    d: D,
    what: &str,
) -> Result<serde_json::Value, D::Error> {
    let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
    if raw.get().len() > crate::limits::MAX_FILTER_BYTES {
        return Err(de::Error::custom(format!(
            "the {what} is {} bytes of JSON; the maximum is {}",
            raw.get().len(),
            crate::limits::MAX_FILTER_BYTES
        )));
    }
    serde_json::from_str(raw.get()).map_err(de::Error::custom)
}
