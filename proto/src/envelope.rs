//! The envelope around every message: request ids, `op`, `wait_ms`, `ok`, `error`.
//!
//! A request is one JSON object: `{"id": .., "op": "..", ...parameters, "wait_ms": ..}`. A reply
//! is `{"id": .., "ok": true, ...result}` or `{"id": .., "ok": false, "error": {..}}`. The reply
//! echoes the request's `id` (`null` when the request had none or it could not be read).

use crate::error::{ErrorBody, ErrorCode};
use crate::ops::{Call, Operation};
use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};
use std::fmt;

/// A request's `id`: any JSON number or string the client chooses, echoed in the reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    /// A numeric id, kept exactly as sent.
    Number(Number),
    /// A string id.
    String(String),
}

impl From<u64> for RequestId {
    fn from(n: u64) -> Self {
        RequestId::Number(n.into())
    }
}

impl From<&str> for RequestId {
    fn from(s: &str) -> Self {
        RequestId::String(s.to_owned())
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestId::Number(n) => write!(f, "{n}"),
            RequestId::String(s) => write!(f, "{s:?}"),
        }
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

impl Request {
    /// Decodes one line (without its `\n`), classifying every failure as the protocol requires:
    /// unreadable JSON, a non-object or a bad field is `bad_request`; an `op` that names no
    /// operation is `unknown_op`. The id is recovered whenever the JSON itself is readable, so
    /// even a rejected request gets an answer the client can match.
    pub fn decode(line: &[u8]) -> Result<Request, Rejected> {
        let reject = |id: Option<RequestId>, code, message: String| Rejected {
            id,
            error: ErrorBody::new(code, message),
        };
        let value: Value = serde_json::from_slice(line)
            .map_err(|e| reject(None, ErrorCode::BadRequest, format!("malformed JSON: {e}")))?;
        let Value::Object(mut object) = value else {
            return Err(reject(
                None,
                ErrorCode::BadRequest,
                "a request must be a JSON object".to_owned(),
            ));
        };
        let id = match object.remove("id") {
            None | Some(Value::Null) => None,
            Some(value) => Some(RequestId::deserialize(value).map_err(|_| {
                reject(
                    None,
                    ErrorCode::BadRequest,
                    "`id` must be a number or a string".to_owned(),
                )
            })?),
        };
        let wait_ms = match object.remove("wait_ms") {
            None | Some(Value::Null) => None,
            Some(value) => Some(value.as_u64().ok_or_else(|| {
                reject(
                    id.clone(),
                    ErrorCode::BadRequest,
                    format!("`wait_ms` must be a non-negative integer, got {value}"),
                )
            })?),
        };
        let name = match object.get("op") {
            Some(Value::String(name)) => name.clone(),
            Some(other) => {
                return Err(reject(
                    id,
                    ErrorCode::BadRequest,
                    format!("`op` must be a string, got {other}"),
                ));
            }
            None => {
                return Err(reject(
                    id,
                    ErrorCode::BadRequest,
                    "missing field `op`".to_owned(),
                ));
            }
        };
        object.remove("op");
        match Operation::from_params(&name, object) {
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
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let line = serde_json::to_vec(&value).map_err(serde::de::Error::custom)?;
        Request::decode(&line).map_err(|r| serde::de::Error::custom(r.error.message))
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
        let mut object = Map::<String, Value>::deserialize(deserializer)?;
        let id = match object.remove("id") {
            None | Some(Value::Null) => None,
            Some(value) => Some(RequestId::deserialize(value).map_err(D::Error::custom)?),
        };
        let outcome = match object.remove("ok") {
            Some(Value::Bool(true)) => {
                Ok(T::deserialize(Value::Object(object)).map_err(D::Error::custom)?)
            }
            Some(Value::Bool(false)) => {
                let error = object
                    .remove("error")
                    .ok_or_else(|| D::Error::missing_field("error"))?;
                Err(ErrorBody::deserialize(error).map_err(D::Error::custom)?)
            }
            _ => return Err(D::Error::custom("reply has no boolean `ok`")),
        };
        Ok(Response { id, outcome })
    }
}
