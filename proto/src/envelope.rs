//! The envelope around every message: request ids, `op`, `wait_ms`, `ok`, `error`.
//!
//! A request is one JSON object: `{"id": .., "op": "..", ...parameters, "wait_ms": ..}`. A reply
//! is `{"id": .., "ok": true, ...result}` or `{"id": .., "ok": false, "error": {..}}`. The reply
//! echoes the request's `id` (`null` when the request had none or it could not be read).

use crate::error::{ErrorBody, ErrorCode};
use crate::ops::{Call, Operation};
use serde::de::value::MapDeserializer;
use serde::de::{DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::error::Category;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// A request's `id`: a JSON number or string the client chooses, echoed in the reply **byte for
/// byte as sent** (`123456789012345678901234567890`, `-0` and `1.50` come back exactly so; a
/// number is never reformatted as a float). At most [`MAX_ID_JSON_BYTES`] of JSON.
#[derive(Clone)]
pub struct RequestId(Box<RawValue>);

/// The longest request id, as JSON text: an id is a correlation token, not a payload.
pub const MAX_ID_JSON_BYTES: usize = 256;

impl RequestId {
    /// The id whose JSON text is `json` (a number or a string, as written on the wire).
    pub fn from_json(json: &str) -> Result<RequestId, String> {
        let raw: Box<RawValue> = serde_json::from_str(json).map_err(|e| e.to_string())?;
        RequestId::checked(raw)
    }

    /// The id's JSON text, exactly as the client wrote it.
    pub fn as_json(&self) -> &str {
        self.0.get()
    }

    fn checked(raw: Box<RawValue>) -> Result<RequestId, String> {
        let text = raw.get();
        if text.len() > MAX_ID_JSON_BYTES {
            return Err(format!(
                "`id` is {} bytes of JSON; the maximum is {MAX_ID_JSON_BYTES}",
                text.len()
            ));
        }
        // Valid JSON (the parser read it): the first byte tells its type.
        match text.as_bytes().first() {
            Some(b'"' | b'-' | b'0'..=b'9') => Ok(RequestId(raw)),
            _ => Err("`id` must be a number or a string".to_owned()),
        }
    }
}

impl PartialEq for RequestId {
    fn eq(&self, other: &Self) -> bool {
        self.as_json() == other.as_json()
    }
}

impl Eq for RequestId {}

impl std::hash::Hash for RequestId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_json().hash(state);
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({})", self.as_json())
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_json())
    }
}

impl From<u64> for RequestId {
    fn from(n: u64) -> Self {
        RequestId::from_json(&n.to_string()).expect("an integer is a valid id")
    }
}

impl From<&str> for RequestId {
    fn from(s: &str) -> Self {
        let json = serde_json::to_string(s).expect("a string always serializes");
        RequestId::from_json(&json).unwrap_or_else(|_| {
            // Only a string longer than the limit gets here.
            RequestId::from_json("\"\"").expect("an empty string is a valid id")
        })
    }
}

impl Serialize for RequestId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        RequestId::checked(raw).map_err(serde::de::Error::custom)
    }
}

/// A decoded request: envelope fields plus the operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Request {
    /// The client's id for this request.
    pub id: Option<RequestId>,
    /// The operation and its parameters (`op` and the rest of the object).
    #[serde(flatten)]
    pub op: Operation,
    /// While the daemon is released, wait up to this many milliseconds for it to resume
    /// instead of failing with `released`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

/// A line that could not be decoded into a [`Request`], with what to answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// The request's id, when it could be read.
    pub id: Option<RequestId>,
    /// The error to send back.
    pub error: ErrorBody,
}

/// The fields of one JSON object, in order, each value still JSON text borrowed from the line:
/// reading them validates the JSON but builds nothing.
struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
                while let Some(Key(key)) = map.next_key()? {
                    fields.push((key, map.next_value()?));
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(Object)
    }
}

/// An object key, borrowed from the line unless it holds escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> Visitor<'de> for Text {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

impl Request {
    /// Decodes one line (without its `\n`), classifying every failure as the protocol requires:
    /// unreadable JSON, a non-object or a bad field is `bad_request`; an `op` that names no
    /// operation is `unknown_op`. The id is recovered whenever the JSON itself is readable, so
    /// even a rejected request gets an answer the client can match.
    ///
    /// The line is read once into its fields (JSON text borrowed from the line), then the
    /// operation's parameters are decoded from those straight into their types: no JSON tree
    /// is built, and the limits of protocol 1 (vector length, documents per upsert, ids per
    /// request, filter size) are enforced while reading, so the memory a request takes is a
    /// small multiple of its line whatever the line holds.
    pub fn decode(line: &[u8]) -> Result<Request, Rejected> {
        let reject = |id: Option<RequestId>, code, message: String| Rejected {
            id,
            error: ErrorBody::new(code, message),
        };
        let Fields(fields) = serde_json::from_slice(line).map_err(|e| {
            let message = match e.classify() {
                Category::Data => "a request must be a JSON object".to_owned(),
                _ => format!("malformed JSON: {e}"),
            };
            reject(None, ErrorCode::BadRequest, message)
        })?;
        let mut envelope: [Option<&RawValue>; 3] = [None; 3];
        let mut duplicate = None;
        let mut params = Vec::with_capacity(fields.len());
        for (key, value) in fields {
            let slot = match &*key {
                "id" => 0,
                "op" => 1,
                "wait_ms" => 2,
                _ => {
                    params.push((key, value));
                    continue;
                }
            };
            if envelope[slot].replace(value).is_some() {
                duplicate.get_or_insert(["id", "op", "wait_ms"][slot]);
            }
        }
        let [id, op, wait_ms] = envelope;
        if duplicate == Some("id") {
            return Err(reject(
                None,
                ErrorCode::BadRequest,
                "duplicate field `id`".to_owned(),
            ));
        }
        let id = match id.filter(|raw| raw.get() != "null") {
            None => None,
            Some(raw) => Some(
                RequestId::checked(raw.to_owned())
                    .map_err(|message| reject(None, ErrorCode::BadRequest, message))?,
            ),
        };
        if let Some(field) = duplicate {
            return Err(reject(
                id,
                ErrorCode::BadRequest,
                format!("duplicate field `{field}`"),
            ));
        }
        let wait_ms = match wait_ms.filter(|raw| raw.get() != "null") {
            None => None,
            Some(raw) => Some(serde_json::from_str::<u64>(raw.get()).map_err(|_| {
                reject(
                    id.clone(),
                    ErrorCode::BadRequest,
                    format!(
                        "`wait_ms` must be a non-negative integer, got {}",
                        raw.get()
                    ),
                )
            })?),
        };
        let name: String = match op {
            None => {
                return Err(reject(
                    id,
                    ErrorCode::BadRequest,
                    "missing field `op`".to_owned(),
                ));
            }
            Some(raw) => serde_json::from_str(raw.get()).map_err(|_| {
                reject(
                    id.clone(),
                    ErrorCode::BadRequest,
                    format!("`op` must be a string, got {}", raw.get()),
                )
            })?,
        };
        match Operation::from_params(&name, params) {
            Some(Ok(op)) => Ok(Request { id, op, wait_ms }),
            Some(Err(e)) => Err(reject(
                id,
                ErrorCode::BadRequest,
                format!("invalid `{name}` request: {e}"),
            )),
            None => Err(reject(
                id,
                ErrorCode::UnknownOp,
                format!("unknown operation `{name}`"),
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Request {
    /// The request as JSON text, then [`Request::decode`]: the same rules, and the id kept as
    /// written (from a `serde_json::Value` the id is as the value prints it).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        Request::decode(raw.get().as_bytes()).map_err(|r| serde::de::Error::custom(r.error.message))
    }
}

/// Encodes a request for call `C` as one line, without the trailing `\n`.
pub fn encode_request<C: Call>(
    id: Option<&RequestId>,
    params: &C,
    wait_ms: Option<u64>,
) -> Result<Vec<u8>, serde_json::Error> {
    #[derive(Serialize)]
    struct Outgoing<'a, C> {
        id: Option<&'a RequestId>,
        op: &'static str,
        #[serde(flatten)]
        params: &'a C,
        #[serde(skip_serializing_if = "Option::is_none")]
        wait_ms: Option<u64>,
    }
    serde_json::to_vec(&Outgoing {
        id,
        op: C::OP,
        params,
        wait_ms,
    })
}

/// A reply: the echoed id and either the operation's result or an error.
#[derive(Debug, Clone, PartialEq)]
pub struct Response<T> {
    /// The request's id (`None` is sent as `null`).
    pub id: Option<RequestId>,
    /// The result (`"ok": true` and its fields) or the error (`"ok": false, "error": {..}`).
    pub outcome: Result<T, ErrorBody>,
}

impl<T: Serialize> Serialize for Response<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Success<'a, T> {
            id: &'a Option<RequestId>,
            ok: bool,
            #[serde(flatten)]
            result: &'a T,
        }
        #[derive(Serialize)]
        struct Failure<'a> {
            id: &'a Option<RequestId>,
            ok: bool,
            error: &'a ErrorBody,
        }
        match &self.outcome {
            Ok(result) => Success {
                id: &self.id,
                ok: true,
                result,
            }
            .serialize(serializer),
            Err(error) => Failure {
                id: &self.id,
                ok: false,
                error,
            }
            .serialize(serializer),
        }
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Response<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        // The fields as JSON text, then each decoded into its type: no JSON tree in between.
        let OwnedFields(mut fields) = OwnedFields::deserialize(deserializer)?;
        let mut take = |name: &str| {
            fields
                .iter()
                .position(|(key, _)| key == name)
                .map(|at| fields.swap_remove(at).1)
        };
        let id = match take("id").filter(|raw| raw.get() != "null") {
            None => None,
            Some(raw) => Some(RequestId::checked(raw).map_err(D::Error::custom)?),
        };
        let ok = take("ok");
        let error = take("error");
        let outcome = match ok.as_ref().map(|raw| raw.get()) {
            Some("true") => {
                let rest = fields.iter().map(|(key, raw)| (key.as_str(), &**raw));
                Ok(
                    T::deserialize(MapDeserializer::<_, serde_json::Error>::new(rest))
                        .map_err(D::Error::custom)?,
                )
            }
            Some("false") => {
                let error = error.ok_or_else(|| D::Error::missing_field("error"))?;
                Err(serde_json::from_str::<ErrorBody>(error.get()).map_err(D::Error::custom)?)
            }
            _ => return Err(D::Error::custom("reply has no boolean `ok`")),
        };
        Ok(Response { id, outcome })
    }
}

/// The fields of one JSON object, each value kept as its JSON text.
struct OwnedFields(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for OwnedFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = OwnedFields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OwnedFields, A::Error> {
                let mut fields = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    fields.push((key, map.next_value()?));
                }
                Ok(OwnedFields(fields))
            }
        }
        deserializer.deserialize_map(Object)
    }
}
