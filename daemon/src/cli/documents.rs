//! `ctxd get`, `ctxd delete`, `ctxd count`: documents by id or filter.

use super::args::{CountArgs, DeleteArgs, GetArgs};
use super::output::{Output, exit, fail};
use ctxd_client::Client;
use ctxd_proto::limits::MAX_LIMIT;
use ctxd_proto::{Count, Delete, Document, Get, GetResult};
use std::collections::HashSet;
use std::fmt::Write;
use std::process::ExitCode;

/// Vector components shown in text output before the rest is elided.
const VECTOR_PREVIEW: usize = 8;

/// `ctxd get COLLECTION ID...`: prints the documents found; exit 1 if any id is missing.
pub async fn get(client: &Client, args: GetArgs, out: Output) -> ExitCode {
    let mut documents = Vec::with_capacity(args.ids.len());
    // `get` returns at most `limit` documents, so ids go in pages the daemon returns whole.
    for ids in args.ids.chunks(MAX_LIMIT as usize) {
        let params = Get {
            collection: args.collection.clone(),
            ids: Some(ids.to_vec()),
            filter: None,
            limit: Some(ids.len() as u32),
            offset: None,
            include: args.include.clone(),
            vector_encoding: None,
            text_filter: None,
        };
        match client.get(params).await {
            Ok(page) => documents.extend(page.documents),
            Err(e) => return fail(&e),
        }
    }
    let found: HashSet<&str> = documents.iter().map(|d| d.id.as_str()).collect();
    let mut missing: Vec<&str> = Vec::new();
    for id in &args.ids {
        if !found.contains(id.as_str()) && !missing.contains(&id.as_str()) {
            missing.push(id);
        }
    }
    let missing = missing.join(", ");
    let result = GetResult { documents };
    out.print(&result, |r| render_documents(&r.documents));
    if missing.is_empty() {
        ExitCode::from(exit::OK)
    } else {
        eprintln!("ctxd: not found in `{}`: {missing}", args.collection);
        ExitCode::from(exit::FAILED)
    }
}

/// `ctxd delete COLLECTION [ID...] [--filter JSON]`: prints how many were deleted.
pub async fn delete(client: &Client, args: DeleteArgs, out: Output) -> ExitCode {
    let params = Delete {
        collection: args.collection.clone(),
        ids: (!args.ids.is_empty()).then_some(args.ids),
        filter: args.filter,
        text_filter: None,
    };
    match client.delete(params).await {
        Ok(result) => {
            out.print(&result, |r| {
                format!(
                    "deleted {} {} from `{}`",
                    r.deleted,
                    plural(r.deleted, "document", "documents"),
                    args.collection
                )
            });
            ExitCode::from(exit::OK)
        }
        Err(e) => fail(&e),
    }
}

/// `ctxd count COLLECTION [--filter JSON]`: prints the number alone, for scripts.
pub async fn count(client: &Client, args: CountArgs, out: Output) -> ExitCode {
    let params = Count {
        collection: args.collection,
        filter: args.filter,
        text_filter: None,
    };
    match client.count(params).await {
        Ok(result) => {
            out.print(&result, |r| r.count.to_string());
            ExitCode::from(exit::OK)
        }
        Err(e) => fail(&e),
    }
}

/// Each document as its id, then its parts indented, with a blank line between documents.
pub fn render_documents(documents: &[Document]) -> String {
    let mut text = String::new();
    for (i, document) in documents.iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        let _ = writeln!(text, "{}", document.id);
        if let Some(body) = &document.text {
            // Full text, its line breaks kept, aligned under the first line.
            let body = body.trim_end().replace('\n', "\n            ");
            let _ = writeln!(text, "  text      {body}");
        }
        if let Some(metadata) = &document.metadata {
            let _ = writeln!(text, "  metadata  {}", compact(metadata));
        }
        if let Some(vector) = &document.vector {
            let _ = writeln!(text, "  vector    {}", preview(vector));
        }
    }
    text
}

/// Compact JSON of a metadata object.
pub fn compact(metadata: &ctxd_proto::Metadata) -> String {
    serde_json::to_string(metadata).unwrap_or_else(|_| "{?}".to_owned())
}

/// `[0.1, 0.2, …] (384 dimensions)`: the first few components only.
pub fn preview(vector: &[f32]) -> String {
    let shown: Vec<String> = vector
        .iter()
        .take(VECTOR_PREVIEW)
        .map(|x| x.to_string())
        .collect();
    let more = if vector.len() > VECTOR_PREVIEW {
        ", …"
    } else {
        ""
    };
    format!(
        "[{}{more}] ({} {})",
        shown.join(", "),
        vector.len(),
        plural(vector.len() as u64, "dimension", "dimensions")
    )
}

/// `one` for 1, else `many`.
pub fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_render_with_their_parts() {
        let documents = vec![
            Document {
                id: "a".into(),
                text: Some("otters\nhold hands".into()),
                vector: Some(vec![1.0, 0.5].into()),
                metadata: serde_json::json!({"kind": "fact"})
                    .as_object()
                    .cloned()
                    .map(Into::into),
            },
            Document {
                id: "b".into(),
                ..Document::default()
            },
        ];
        assert_eq!(
            render_documents(&documents),
            "a\n  text      otters\n            hold hands\n  metadata  {\"kind\":\"fact\"}\n  \
             vector    [1, 0.5] (2 dimensions)\n\nb\n"
        );
    }

    #[test]
    fn long_vectors_are_previewed() {
        let vector: Vec<f32> = (0..384).map(|i| i as f32).collect();
        assert_eq!(
            preview(&vector),
            "[0, 1, 2, 3, 4, 5, 6, 7, …] (384 dimensions)"
        );
    }
}
