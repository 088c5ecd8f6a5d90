//! Golden JSON fixtures for every message of protocol 1, round-tripped through the typed API.
//!
//! The fixtures live in `tests/fixtures/`, one pretty-printed JSON object per file:
//!
//! - `requests/<op>.json` and `requests/<op>_<variant>.json`: a request, decoded with
//!   [`Request::decode`] and encoded again with serde and with [`encode_request`];
//! - `responses/<op>.json` and `responses/<op>_<variant>.json`: a success reply, decoded as
//!   `Response<<C as Call>::Output>` for the operation's parameter type `C`;
//! - `errors/<code>.json`: a failure reply carrying that [`ErrorCode`].
//!
//! Fixtures are compared as JSON values after a trip through the wire form (bytes), so key order
//! and number spelling do not matter but every field does. The directories are read at run time:
//! a fixture added there is tested without touching this file, and an operation or error code
//! without a fixture fails [`every_operation_and_error_code_has_fixtures`].

use ctxd_proto::{
    Attach, Call, Check, Comparison, Count, CreateCollection, Delete, Detach, DropCollection,
    Empty, ErrorBody, ErrorCode, Filter, Get, GetCollection, Health, Hello, ListCollections,
    Operation, PROTOCOL_VERSION, Ping, Rejected, Release, Renew, Request, RequestId, Response,
    Resume, Scalar, Search, Shutdown, Snapshot, SnapshotStream, Status, Update, Upsert,
    encode_request,
};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value, json};
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// Known problems

// ---------------------------------------------------------------------------------------------
// Every operation, by its parameter type

/// Generates the per-operation dispatch from the list of parameter types (each named like its
/// [`Operation`] variant). The `match` over [`Operation`] has no wildcard, so a new operation
/// that is missing here does not compile; [`every_operation_and_error_code_has_fixtures`] checks
/// that every name of [`Operation::NAMES`] is dispatched.
macro_rules! protocol_calls {
    ($($call:ident),+ $(,)?) => {
        /// Encodes the request's parameters with [`encode_request`], as a typed client would.
        fn encode_params(request: &Request) -> Result<Vec<u8>, serde_json::Error> {
            let (id, wait_ms) = (request.id.as_ref(), request.wait_ms);
            match &request.op {
                $(Operation::$call(params) => encode_request(id, params, wait_ms),)+
            }
        }

        /// The round trip of a success reply of operation `op`, or `None` when `op` names no
        /// operation.
        fn success_check(op: &str) -> Option<fn(&Fixture) -> Result<(), String>> {
            $(if op == <$call as Call>::OP {
                return Some(check_success::<$call>);
            })+
            None
        }

        /// Decodes a failure reply as the reply of every operation, as each typed client
        /// would, and returns the error of each.
        fn failure_as_every_output(fixture: &Fixture) -> Vec<Result<ErrorBody, String>> {
            vec![$(check_failure::<$call>(fixture),)+]
        }
    };
}

protocol_calls!(
    Hello,
    Ping,
    Health,
    Status,
    CreateCollection,
    ListCollections,
    GetCollection,
    DropCollection,
    Upsert,
    Delete,
    Get,
    Count,
    Search,
    Release,
    Renew,
    Resume,
    Snapshot,
    SnapshotStream,
    Check,
    Shutdown,
    Attach,
    Detach,
    Update,
);

// ---------------------------------------------------------------------------------------------
// Fixture loading

/// One fixture file.
struct Fixture {
    /// The file name without `.json`.
    name: String,
    /// The path relative to `tests/fixtures`, for messages.
    file: String,
    /// The content.
    value: Value,
}

impl Fixture {
    /// The fixture as it travels: one compact line.
    fn line(&self) -> Vec<u8> {
        serde_json::to_vec(&self.value).expect("a JSON value always serializes")
    }

    /// Checks that `bytes` (what the API wrote) is this fixture's JSON value.
    fn expect_same(&self, what: &str, bytes: &[u8]) -> Result<(), String> {
        let written: Value = serde_json::from_slice(bytes)
            .map_err(|e| format!("{}: {what} wrote invalid JSON: {e}", self.file))?;
        if written == self.value {
            Ok(())
        } else {
            Err(format!(
                "{}: {what} differs from the fixture\n  fixture: {}\n  written: {written}",
                self.file, self.value
            ))
        }
    }
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
}

/// Every fixture of one kind (`requests`, `responses` or `errors`), sorted by name.
fn fixtures(kind: &str) -> Vec<Fixture> {
    let dir = fixtures_dir().join(kind);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list fixtures in {}: {e}", dir.display()));
    let mut fixtures: Vec<Fixture> = entries
        .map(|entry| {
            let path = entry
                .unwrap_or_else(|e| panic!("cannot list fixtures in {}: {e}", dir.display()))
                .path();
            load(kind, &path)
        })
        .collect();
    fixtures.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(!fixtures.is_empty(), "no fixtures in {}", dir.display());
    fixtures
}

fn load(kind: &str, path: &Path) -> Fixture {
    let file_name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_else(|| panic!("fixture path {} is not UTF-8", path.display()));
    let file = format!("{kind}/{file_name}");
    let name = file_name
        .strip_suffix(".json")
        .unwrap_or_else(|| panic!("{file}: fixtures must be named *.json"))
        .to_owned();
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{file}: {e}"));
    let StrictValue(value) =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: not valid JSON: {e}"));
    assert!(value.is_object(), "{file}: a message must be a JSON object");
    assert!(
        text.trim_end().contains('\n') && text.ends_with('\n'),
        "{file}: fixtures are pretty-printed for humans and end with a newline"
    );
    Fixture { name, file, value }
}

/// The operation a request or response fixture is about: its name is `<op>` or
/// `<op>_<variant>` (the longest matching operation wins, so `get_collection` is not a variant
/// of `get`).
fn op_of(fixture: &Fixture) -> &'static str {
    let name = fixture.name.as_str();
    Operation::NAMES
        .iter()
        .copied()
        .filter(|op| {
            name == *op
                || name
                    .strip_prefix(op)
                    .is_some_and(|rest| rest.starts_with('_'))
        })
        .max_by_key(|op| op.len())
        .unwrap_or_else(|| {
            panic!(
                "{}: the name must be <op>.json or <op>_<variant>.json for an op of {:?}",
                fixture.file,
                Operation::NAMES
            )
        })
}

/// A JSON value parsed without tolerating duplicate object keys: `serde_json::Value` keeps the
/// last one silently, which would hide a mistake in a fixture.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key `{key}`")));
            }
            let StrictValue(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Runs `check` on every fixture and fails once, listing every fixture that failed.
fn check_all(fixtures: &[Fixture], check: impl Fn(&Fixture) -> Result<(), String>) {
    let failures: Vec<String> = fixtures.iter().filter_map(|f| check(f).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n{}",
        failures.len(),
        fixtures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Round trips

fn check_request(fixture: &Fixture) -> Result<(), String> {
    let file = &fixture.file;
    let request = Request::decode(&fixture.line())
        .map_err(|rejected| format!("{file}: rejected: {}", rejected.error))?;
    let op = op_of(fixture);
    if request.op.name() != op {
        return Err(format!(
            "{file}: decoded as `{}`, not `{op}`",
            request.op.name()
        ));
    }
    if request.id.is_none() {
        return Err(format!("{file}: golden requests carry an `id`"));
    }
    let wire = serde_json::to_vec(&request)
        .map_err(|e| format!("{file}: the decoded request does not serialize: {e}"))?;
    fixture.expect_same("serializing the decoded Request", &wire)?;
    let encoded =
        encode_params(&request).map_err(|e| format!("{file}: encode_request failed: {e}"))?;
    fixture.expect_same("encode_request of the parameters", &encoded)?;
    let again = Request::decode(&encoded)
        .map_err(|rejected| format!("{file}: its own encoding is rejected: {}", rejected.error))?;
    if again != request {
        return Err(format!(
            "{file}: decoding its encoding gives {again:?}, not {request:?}"
        ));
    }
    let via_serde: Request = serde_json::from_value(fixture.value.clone())
        .map_err(|e| format!("{file}: `impl Deserialize for Request` rejects it: {e}"))?;
    if via_serde != request {
        return Err(format!(
            "{file}: serde gives {via_serde:?}, decode gives {request:?}"
        ));
    }
    Ok(())
}

fn check_success<C: Call>(fixture: &Fixture) -> Result<(), String> {
    let file = &fixture.file;
    let response: Response<C::Output> = serde_json::from_slice(&fixture.line())
        .map_err(|e| format!("{file}: does not decode as a `{}` reply: {e}", C::OP))?;
    if let Err(error) = &response.outcome {
        return Err(format!("{file}: decodes as a failure: {error}"));
    }
    if response.id.is_none() {
        return Err(format!("{file}: golden replies echo an `id`"));
    }
    let wire = serde_json::to_vec(&response)
        .map_err(|e| format!("{file}: the decoded reply does not serialize: {e}"))?;
    fixture.expect_same("serializing the decoded Response", &wire)
}

fn check_failure<C: Call>(fixture: &Fixture) -> Result<ErrorBody, String> {
    let file = &fixture.file;
    let response: Response<C::Output> = serde_json::from_slice(&fixture.line())
        .map_err(|e| format!("{file}: does not decode as a `{}` reply: {e}", C::OP))?;
    let wire = serde_json::to_vec(&response)
        .map_err(|e| format!("{file}: the decoded reply does not serialize: {e}"))?;
    fixture.expect_same(&format!("serializing it as a `{}` reply", C::OP), &wire)?;
    match response.outcome {
        Ok(_) => Err(format!("{file}: decodes as a `{}` success", C::OP)),
        Err(error) => Ok(error),
    }
}

fn check_error(fixture: &Fixture) -> Result<(), String> {
    let file = &fixture.file;
    let response: Response<Empty> = serde_json::from_slice(&fixture.line())
        .map_err(|e| format!("{file}: does not decode as Response<Empty>: {e}"))?;
    let wire = serde_json::to_vec(&response)
        .map_err(|e| format!("{file}: the decoded reply does not serialize: {e}"))?;
    fixture.expect_same("serializing the decoded Response<Empty>", &wire)?;
    let error = response
        .outcome
        .err()
        .ok_or_else(|| format!("{file}: decodes as a success"))?;
    if error.code.as_str() != fixture.name {
        return Err(format!(
            "{file}: the code is `{}`, not the file's name",
            error.code
        ));
    }
    let message = &error.message;
    let lowercase = message.chars().next().is_some_and(|c| !c.is_uppercase());
    if !lowercase || message.ends_with('.') {
        return Err(format!(
            "{file}: messages start lowercase and have no trailing period: {message:?}"
        ));
    }
    for other in failure_as_every_output(fixture) {
        let other = other?;
        if other != error {
            return Err(format!(
                "{file}: decodes differently per operation: {other:?}"
            ));
        }
    }
    Ok(())
}

#[test]
fn request_fixtures_round_trip() {
    check_all(&fixtures("requests"), check_request);
}

#[test]
fn response_fixtures_round_trip() {
    let fixtures = fixtures("responses");
    check_all(&fixtures, |fixture| {
        let op = op_of(fixture);
        let check =
            success_check(op).unwrap_or_else(|| panic!("{}: no dispatch for `{op}`", fixture.file));
        check(fixture)
    });
}

#[test]
fn error_fixtures_round_trip() {
    check_all(&fixtures("errors"), check_error);
}

#[test]
fn every_operation_and_error_code_has_fixtures() {
    let ops: BTreeSet<&str> = Operation::NAMES.into_iter().collect();
    assert_eq!(
        ops.len(),
        Operation::NAMES.len(),
        "Operation::NAMES has duplicates"
    );
    for kind in ["requests", "responses"] {
        let covered: BTreeSet<&str> = fixtures(kind).iter().map(op_of).collect();
        let missing: Vec<&&str> = ops.difference(&covered).collect();
        assert!(missing.is_empty(), "no {kind} fixture for {missing:?}");
    }
    for op in Operation::NAMES {
        assert!(
            success_check(op).is_some(),
            "`{op}` is missing from protocol_calls! in tests/golden.rs"
        );
    }

    let codes: BTreeSet<&str> = ErrorCode::ALL.into_iter().map(ErrorCode::as_str).collect();
    assert_eq!(
        codes.len(),
        ErrorCode::ALL.len(),
        "ErrorCode::ALL has duplicates"
    );
    for code in ErrorCode::ALL {
        let on_wire = serde_json::to_value(code).expect("an error code serializes");
        assert_eq!(
            on_wire,
            code.as_str(),
            "serde and as_str disagree for {code:?}"
        );
    }
    let files: BTreeSet<String> = fixtures("errors").into_iter().map(|f| f.name).collect();
    let files: BTreeSet<&str> = files.iter().map(String::as_str).collect();
    assert_eq!(
        files, codes,
        "errors/ must hold exactly one <code>.json per ErrorCode::ALL"
    );
}

#[test]
fn error_fixtures_carry_their_details() {
    let errors = fixtures("errors");
    let error_of = |code: ErrorCode| -> (Option<RequestId>, ErrorBody) {
        let fixture = errors
            .iter()
            .find(|f| f.name == code.as_str())
            .unwrap_or_else(|| panic!("errors/{code}.json is missing"));
        let response: Response<Empty> = serde_json::from_slice(&fixture.line())
            .unwrap_or_else(|e| panic!("{}: {e}", fixture.file));
        let error = response
            .outcome
            .expect_err(&format!("{} is a failure reply", fixture.file));
        (response.id, error)
    };

    let (_, released) = error_of(ErrorCode::Released);
    assert!(
        released.details["lease_expires_at"].is_u64(),
        "errors/released.json: `lease_expires_at` is Unix milliseconds"
    );
    let (_, mismatch) = error_of(ErrorCode::DimensionMismatch);
    assert!(
        mismatch.details["expected"].is_u64() && mismatch.details["received"].is_u64(),
        "errors/dimension_mismatch.json: `expected` and `received` are lengths"
    );
    let (_, unsupported) = error_of(ErrorCode::UnsupportedProtocol);
    assert_eq!(
        unsupported.details["supported"],
        json!([PROTOCOL_VERSION]),
        "errors/unsupported_protocol.json: `supported` lists the versions"
    );
    let (id, _) = error_of(ErrorCode::FrameTooLarge);
    assert_eq!(
        id, None,
        "errors/frame_too_large.json: an unread line has no id"
    );
    for code in ErrorCode::ALL {
        let (_, error) = error_of(code);
        let expected_details: &[&str] = match code {
            ErrorCode::Released => &["lease_expires_at"],
            ErrorCode::DimensionMismatch => &["expected", "received"],
            ErrorCode::UnsupportedProtocol => &["supported"],
            ErrorCode::EmbedderUnavailable => &["embedder"],
            _ => &[],
        };
        let details: BTreeSet<&str> = error.details.keys().map(String::as_str).collect();
        let expected: BTreeSet<&str> = expected_details.iter().copied().collect();
        assert_eq!(details, expected, "errors/{code}.json: unexpected details");
    }
}

// ---------------------------------------------------------------------------------------------
// Rejections

/// Decodes a line that must be rejected.
fn rejected(line: &str) -> Rejected {
    match Request::decode(line.as_bytes()) {
        Ok(request) => panic!("{line} was accepted as {request:?}"),
        Err(rejected) => rejected,
    }
}

/// Asserts the code and id of a rejection, and that the message mentions each of `mentions`.
fn assert_rejected(line: &str, code: ErrorCode, id: Option<RequestId>, mentions: &[&str]) {
    let Rejected { id: got_id, error } = rejected(line);
    assert_eq!(error.code, code, "{line}: {error}");
    assert_eq!(got_id, id, "{line}: the id of the rejection");
    for needle in mentions {
        assert!(
            error.message.contains(needle),
            "{line}: the message {:?} should mention {needle}",
            error.message
        );
    }
}

#[test]
fn malformed_json_is_a_bad_request_without_id() {
    for line in [
        r#"{"id":1,"op":"ping""#,
        "",
        "{id:1}",
        r#"{"id":1,"op":"ping"} x"#,
    ] {
        assert_rejected(line, ErrorCode::BadRequest, None, &["malformed JSON"]);
    }
}

#[test]
fn non_objects_are_bad_requests() {
    for line in ["[1,2]", r#""ping""#, "42", "null", "true"] {
        assert_rejected(line, ErrorCode::BadRequest, None, &["object"]);
    }
}

#[test]
fn unknown_ops_keep_the_id() {
    assert_rejected(
        r#"{"id":5,"op":"serch"}"#,
        ErrorCode::UnknownOp,
        Some(5.into()),
        &["`serch`"],
    );
    assert_rejected(
        r#"{"id":"req-a","op":"Ping","wait_ms":10}"#,
        ErrorCode::UnknownOp,
        Some("req-a".into()),
        &["`Ping`"],
    );
}

#[test]
fn missing_or_mistyped_op_is_a_bad_request() {
    assert_rejected(
        r#"{"id":8}"#,
        ErrorCode::BadRequest,
        Some(8.into()),
        &["`op`"],
    );
    assert_rejected(
        r#"{"id":8,"op":42}"#,
        ErrorCode::BadRequest,
        Some(8.into()),
        &["`op`"],
    );
}

#[test]
fn unknown_fields_are_bad_requests_that_keep_the_id() {
    let cases = [
        (r#"{"id":3,"op":"ping","verbose":true}"#, "`verbose`"),
        (
            r#"{"id":3,"op":"search","collection":"notes","text":"otter","topk":5}"#,
            "`topk`",
        ),
        (
            r#"{"id":3,"op":"search","collection":"notes","text":"otter","weights":{"lexical":1,"semantic":2}}"#,
            "`semantic`",
        ),
        (
            r#"{"id":3,"op":"upsert","collection":"notes","documents":[{"id":"a","text":"x","embedding":[1]}]}"#,
            "`embedding`",
        ),
        (
            r#"{"id":3,"op":"create_collection","name":"notes","dimension":4,"metric":"cosine"}"#,
            "`metric`",
        ),
    ];
    for (line, field) in cases {
        assert_rejected(line, ErrorCode::BadRequest, Some(3.into()), &[field]);
    }
}

#[test]
fn mistyped_and_missing_fields_are_bad_requests() {
    // The message names the operation and the offending field (and value, where serde has it).
    let cases = [
        (
            r#"{"id":4,"op":"create_collection","name":"notes","dimension":"x"}"#,
            "`dimension`",
        ),
        (
            r#"{"id":4,"op":"search","collection":"notes","text":"otter","k":-1}"#,
            "`k`",
        ),
        (
            r#"{"id":4,"op":"upsert","collection":"c","documents":[{"id":"a","vector":[1,"x"]}]}"#,
            "`documents[0].vector[1]`",
        ),
        (
            r#"{"id":4,"op":"search","collection":"notes","mode":"semantic"}"#,
            "`semantic`",
        ),
        (
            r#"{"id":4,"op":"get","collection":"notes","include":["text","embedding"]}"#,
            "`embedding`",
        ),
        (r#"{"id":4,"op":"hello","protocol":"1"}"#, "`protocol`"),
        // Regression: serde's derive would take an array of field values as a struct.
        (
            r#"{"id":4,"op":"upsert","collection":"c","documents":[["a","text"]]}"#,
            "`documents[0]`",
        ),
        (
            r#"{"id":4,"op":"search","collection":"c","text":"x","weights":[1,2]}"#,
            "`weights`",
        ),
        (
            r#"{"id":4,"op":"upsert","collection":"c","documents":[{"id":"a","txt":"x"}]}"#,
            "`txt`",
        ),
        (r#"{"id":4,"op":"get_collection"}"#, "`name`"),
        (r#"{"id":4,"op":"renew","lease_id":"lease-1"}"#, "`ttl_s`"),
    ];
    for (line, mention) in cases {
        assert_rejected(line, ErrorCode::BadRequest, Some(4.into()), &[mention]);
    }
}

#[test]
fn ids_of_the_wrong_type_are_bad_requests_without_id() {
    for line in [
        r#"{"id":[1],"op":"ping"}"#,
        r#"{"id":{"n":1},"op":"ping"}"#,
        r#"{"id":true,"op":"ping"}"#,
    ] {
        assert_rejected(line, ErrorCode::BadRequest, None, &["`id`"]);
    }
}

#[test]
fn wait_ms_must_be_a_non_negative_integer() {
    for line in [
        r#"{"id":9,"op":"ping","wait_ms":-5}"#,
        r#"{"id":9,"op":"ping","wait_ms":"5"}"#,
        r#"{"id":9,"op":"ping","wait_ms":2.5}"#,
    ] {
        assert_rejected(line, ErrorCode::BadRequest, Some(9.into()), &["`wait_ms`"]);
    }
}

#[test]
fn bad_filters_in_requests_are_bad_requests() {
    assert_rejected(
        r#"{"id":10,"op":"count","collection":"notes","filter":{"title":{"$regex":"^ott"}}}"#,
        ErrorCode::BadRequest,
        Some(10.into()),
        &["`$regex`", "`title`"],
    );
}

#[test]
fn optional_envelope_fields_may_be_absent_or_null() {
    for (line, id) in [
        (r#"{"op":"ping"}"#, None),
        (r#"{"id":null,"op":"ping","wait_ms":null}"#, None),
        (
            r#"{"id":1.5,"op":"ping"}"#,
            Some(RequestId::from_json("1.5").expect("a number")),
        ),
        (r#"{"id":"","op":"ping","wait_ms":0}"#, Some("".into())),
    ] {
        let request = Request::decode(line.as_bytes())
            .unwrap_or_else(|rejected| panic!("{line} was rejected: {}", rejected.error));
        assert_eq!(request.id, id, "{line}");
        assert_eq!(request.op, Operation::Ping(Ping {}), "{line}");
    }
}

// ---------------------------------------------------------------------------------------------
// Filters

fn parse_filter(value: Value) -> Filter {
    Filter::from_value(&value).unwrap_or_else(|e| panic!("{value} was rejected: {e}"))
}

fn field(name: &str, op: Comparison) -> Filter {
    Filter::Field {
        field: name.to_owned(),
        op,
    }
}

fn text(s: &str) -> Scalar {
    Scalar::String(s.to_owned())
}

fn number(n: i64) -> Scalar {
    Scalar::Number(n.into())
}

#[test]
fn chromadb_filter_forms_parse() {
    let cases = [
        (
            json!({"genre": "poetry"}),
            field("genre", Comparison::Eq(text("poetry"))),
        ),
        (
            json!({"draft": false}),
            field("draft", Comparison::Eq(Scalar::Bool(false))),
        ),
        (
            json!({"year": {"$eq": 2020}}),
            field("year", Comparison::Eq(number(2020))),
        ),
        (
            json!({"year": {"$ne": 2020}}),
            field("year", Comparison::Ne(number(2020))),
        ),
        (
            json!({"year": {"$gt": 2020}}),
            field("year", Comparison::Gt(number(2020))),
        ),
        (
            json!({"year": {"$gte": 2020}}),
            field("year", Comparison::Gte(number(2020))),
        ),
        (
            json!({"year": {"$lt": 2020}}),
            field("year", Comparison::Lt(number(2020))),
        ),
        (
            json!({"year": {"$lte": 2020}}),
            field("year", Comparison::Lte(number(2020))),
        ),
        (
            json!({"lang": {"$in": ["en", "de"]}}),
            field("lang", Comparison::In(vec![text("en"), text("de")])),
        ),
        (
            json!({"lang": {"$nin": []}}),
            field("lang", Comparison::Nin(vec![])),
        ),
        (
            json!({"$or": [{"kind": "fact"}, {"$and": [{"year": {"$gte": 2020}}, {"verified": true}]}]}),
            Filter::Or(vec![
                field("kind", Comparison::Eq(text("fact"))),
                Filter::And(vec![
                    field("year", Comparison::Gte(number(2020))),
                    field("verified", Comparison::Eq(Scalar::Bool(true))),
                ]),
            ]),
        ),
    ];
    for (value, expected) in cases {
        assert_eq!(parse_filter(value.clone()), expected, "{value}");
    }
}

#[test]
fn a_multi_key_filter_object_is_an_and() {
    let filter = parse_filter(json!({"kind": "fact", "year": {"$gte": 2020}}));
    let Filter::And(parts) = filter else {
        panic!("a multi-key object parses as $and, got {filter:?}");
    };
    assert_eq!(parts.len(), 2, "{parts:?}");
    assert!(
        parts.contains(&field("kind", Comparison::Eq(text("fact")))),
        "{parts:?}"
    );
    assert!(
        parts.contains(&field("year", Comparison::Gte(number(2020)))),
        "{parts:?}"
    );
}

#[test]
fn filters_serialize_in_canonical_form() {
    let canonical = [
        json!({"genre": "poetry"}),
        json!({"year": {"$gte": 2020.5}}),
        json!({"lang": {"$nin": ["en", "de"]}}),
        json!({"$and": [{"kind": "fact"}, {"$or": [{"year": {"$lt": 2000}}, {"draft": true}]}]}),
    ];
    for value in canonical {
        let written = serde_json::to_value(parse_filter(value.clone())).expect("filters serialize");
        assert_eq!(written, value, "a canonical filter is written as read");
    }
    let written =
        serde_json::to_value(parse_filter(json!({"year": {"$eq": 2020}}))).expect("serializes");
    assert_eq!(
        written,
        json!({"year": 2020}),
        "`$eq` is written as a bare value"
    );
}

#[test]
fn unsupported_filters_are_rejected_naming_the_problem() {
    let cases = [
        (
            json!({"title": {"$regex": "^ott"}}),
            vec!["`$regex`", "`title`"],
        ),
        (json!({"$regex": "^ott"}), vec!["`$regex`"]),
        (json!({"$not": {"kind": "fact"}}), vec!["`$not`"]),
        (json!({}), vec!["empty"]),
        (json!({"$and": {"kind": "fact"}}), vec!["`$and`", "list"]),
        (json!({"$or": []}), vec!["`$or`", "at least one"]),
        (json!({"kind": null}), vec!["`kind`", "null"]),
        (json!({"kind": {"$ne": null}}), vec!["`kind`", "null"]),
        (
            json!({"lang": {"$in": ["en", null]}}),
            vec!["`lang`", "null"],
        ),
        (
            json!({"lang": {"$in": "en"}}),
            vec!["`$in`", "`lang`", "list"],
        ),
        (json!({"tags": ["a", "b"]}), vec!["`tags`", "a list"]),
        (
            json!({"year": {"$gt": 1, "$lt": 5}}),
            vec!["`year`", "exactly one operator"],
        ),
        (json!({"year": {}}), vec!["`year`", "exactly one operator"]),
        (json!([{"kind": "fact"}]), vec!["JSON object", "a list"]),
    ];
    for (value, mentions) in cases {
        let message = match Filter::from_value(&value) {
            Ok(filter) => panic!("{value} was accepted as {filter:?}"),
            Err(message) => message,
        };
        for needle in mentions {
            assert!(
                message.contains(needle),
                "{value}: the message {message:?} should mention {needle}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The loader itself

#[test]
fn the_fixture_loader_rejects_duplicate_keys() {
    let duplicate = r#"{"id": 1, "ok": true, "ok": false}"#;
    let error = serde_json::from_str::<StrictValue>(duplicate)
        .err()
        .expect("a duplicate key is an error");
    assert!(error.to_string().contains("duplicate key `ok`"), "{error}");
    let StrictValue(value) = serde_json::from_str(r#"{"a": [1, -2, 2.5, "x", null, {"b": true}]}"#)
        .expect("a plain object loads");
    assert_eq!(value, json!({"a": [1, -2, 2.5, "x", null, {"b": true}]}));
}

// ---------------------------------------------------------------------------------------------
// Ids, limits and metadata, as decoded

#[test]
fn request_ids_are_kept_and_echoed_byte_for_byte() {
    for id in [
        "123456789012345678901234567890",
        "-0",
        "1.50",
        "1E+3",
        r#""\u00e9t\u00e9""#,
        r#""été""#,
    ] {
        let request = Request::decode(format!(r#"{{"op":"ping","id":{id}}}"#).as_bytes())
            .unwrap_or_else(|r| panic!("{id}: {}", r.error));
        let got = request.id.expect("an id");
        assert_eq!(got.as_json(), id);
        let reply = serde_json::to_string(&Response::<Empty> {
            id: Some(got),
            outcome: Ok(Empty {}),
        })
        .expect("a reply");
        assert_eq!(reply, format!(r#"{{"id":{id},"ok":true}}"#));
        let back: Response<Empty> = serde_json::from_str(&reply).expect("decodes");
        assert_eq!(back.id.expect("id").as_json(), id);
    }
    let long = format!(r#"{{"op":"ping","id":"{}"}}"#, "x".repeat(300));
    assert_rejected(&long, ErrorCode::BadRequest, None, &["`id`", "256"]);
}

#[test]
fn the_limits_are_enforced_while_decoding() {
    let values = |n: usize| vec!["0"; n].join(",");
    let vector = format!(
        r#"{{"id":1,"op":"upsert","collection":"c","documents":[{{"id":"a","vector":[{}]}}]}}"#,
        values(4097)
    );
    assert_rejected(
        &vector,
        ErrorCode::BadRequest,
        Some(1.into()),
        &["more than 4096 values"],
    );
    let fits = vector.replace(&values(4097), &values(4096));
    Request::decode(fits.as_bytes()).expect("4096 values are a vector");
    let query = format!(
        r#"{{"id":1,"op":"search","collection":"c","vector":[{}]}}"#,
        values(5000)
    );
    assert_rejected(
        &query,
        ErrorCode::BadRequest,
        Some(1.into()),
        &["`vector`", "4096"],
    );

    let documents = vec![r#"{"id":"a","text":"t"}"#; 1001].join(",");
    let upsert = format!(r#"{{"id":2,"op":"upsert","collection":"c","documents":[{documents}]}}"#);
    assert_rejected(
        &upsert,
        ErrorCode::BadRequest,
        Some(2.into()),
        &["more than 1000 documents"],
    );

    let ids = vec![r#""i""#; 100_001].join(",");
    for op in ["get", "delete"] {
        let line = format!(r#"{{"id":3,"op":"{op}","collection":"c","ids":[{ids}]}}"#);
        assert_rejected(
            &line,
            ErrorCode::BadRequest,
            Some(3.into()),
            &["more than 100000 ids"],
        );
    }

    let huge_in = format!(
        r#"{{"id":4,"op":"count","collection":"c","filter":{{"k":{{"$in":[{}]}}}}}}"#,
        values(600_000)
    );
    assert_rejected(
        &huge_in,
        ErrorCode::BadRequest,
        Some(4.into()),
        &["`filter`", "bytes of JSON"],
    );

    assert_rejected(
        r#"{"id":5,"op":"ping","op":"ping"}"#,
        ErrorCode::BadRequest,
        Some(5.into()),
        &["duplicate field `op`"],
    );
    assert_rejected(
        r#"{"id":6,"op":"get_collection","name":"a","name":"b"}"#,
        ErrorCode::BadRequest,
        Some(6.into()),
        &["duplicate field `name`"],
    );
}

#[test]
fn metadata_is_decoded_as_compact_json_text() {
    let line = r#"{"id":1,"op":"upsert","collection":"c","documents":[{"id":"a","text":"t","metadata":{ "kind" : "fact", "n": [1, 2] }}]}"#;
    let request = Request::decode(line.as_bytes()).expect("valid");
    let Operation::Upsert(upsert) = request.op else {
        panic!("an upsert")
    };
    let metadata = upsert.documents[0].metadata.as_ref().expect("metadata");
    assert_eq!(metadata.as_json(), r#"{"kind":"fact","n":[1,2]}"#);
    assert_rejected(
        r#"{"id":2,"op":"upsert","collection":"c","documents":[{"id":"a","text":"t","metadata":[1]}]}"#,
        ErrorCode::BadRequest,
        Some(2.into()),
        &["`documents[0].metadata`", "object"],
    );
}
