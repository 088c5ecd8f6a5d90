//! `ctxd collections [list | create | get | drop]`: one action per collection operation.

use super::args::{CollectionsArgs, CollectionsCommand, CreateArgs};
use super::output::{Output, exit, fail, table, wire_name};
use ctxd_client::Client;
use ctxd_proto::{CollectionInfo, CreateCollection, DropCollectionResult};
use std::process::ExitCode;

/// Runs `ctxd collections` (listing when no action is given).
pub async fn run(client: &Client, args: CollectionsArgs, out: Output) -> ExitCode {
    match args.action.unwrap_or(CollectionsCommand::List) {
        CollectionsCommand::List => list(client, out).await,
        CollectionsCommand::Create(create_args) => create(client, create_args, out).await,
        CollectionsCommand::Get { name } => get(client, &name, out).await,
        CollectionsCommand::Drop { name } => drop(client, &name, out).await,
    }
}

async fn list(client: &Client, out: Output) -> ExitCode {
    match client.list_collections().await {
        Ok(result) => {
            out.print(&result, |r| render_list(&r.collections));
            ExitCode::from(exit::OK)
        }
        Err(e) => fail(&e),
    }
}

async fn create(client: &Client, args: CreateArgs, out: Output) -> ExitCode {
    let if_not_exists = args.if_not_exists;
    let params = CreateCollection {
        name: args.name,
        dimension: args.dimension,
        embedder: args.embedder,
        distance: args.distance,
        tokenizer: args.tokenizer,
        if_not_exists,
    };
    match client.create_collection(params).await {
        Ok(result) => {
            out.print(&result, |r| {
                // With --if-not-exists the reply is the same whether the collection was made
                // now or already existed, so the text does not claim either.
                let verb = if if_not_exists { "ready" } else { "created" };
                format!("{verb}: {}", describe(&r.collection))
            });
            ExitCode::from(exit::OK)
        }
        Err(e) => fail(&e),
    }
}

async fn get(client: &Client, name: &str, out: Output) -> ExitCode {
    match client.get_collection(name).await {
        Ok(result) => {
            out.print(&result, |r| describe(&r.collection));
            ExitCode::from(exit::OK)
        }
        Err(e) => fail(&e),
    }
}

async fn drop(client: &Client, name: &str, out: Output) -> ExitCode {
    match client.drop_collection(name).await {
        Ok(result) => {
            out.print(&result, |&DropCollectionResult { dropped }| {
                if dropped {
                    format!("dropped collection `{name}` and its documents")
                } else {
                    // Dropping is idempotent: a collection that is already gone is success.
                    format!("no collection `{name}`; nothing dropped")
                }
            });
            ExitCode::from(exit::OK)
        }
        Err(e) => fail(&e),
    }
}

/// `notes: dimension 384, cosine, porter, 5183 documents`.
fn describe(c: &CollectionInfo) -> String {
    format!(
        "collection `{}`: dimension {}, distance {}, tokenizer {}, embedder {}, {} documents",
        c.name,
        dimension(c),
        wire_name(&c.distance),
        wire_name(&c.tokenizer),
        embedder(c),
        c.count
    )
}

/// The dimension, or `unset` for a collection whose first vector will fix it.
fn dimension(c: &CollectionInfo) -> String {
    match c.dimension {
        0 => "unset".to_owned(),
        n => n.to_string(),
    }
}

fn embedder(c: &CollectionInfo) -> String {
    c.embedder
        .as_ref()
        .map_or_else(|| "none".to_owned(), |e| e.name.clone())
}

fn render_list(collections: &[CollectionInfo]) -> String {
    if collections.is_empty() {
        return "no collections (create one with `ctxd collections create NAME`)".into();
    }
    let rows: Vec<Vec<String>> = collections
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                dimension(c),
                wire_name(&c.distance),
                wire_name(&c.tokenizer),
                embedder(c),
                c.count.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "DIMENSION",
            "DISTANCE",
            "TOKENIZER",
            "EMBEDDER",
            "DOCUMENTS",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctxd_proto::{Distance, Tokenizer};

    #[test]
    fn the_list_is_a_table_with_every_setting() {
        let text = render_list(&[CollectionInfo {
            name: "notes".into(),
            dimension: 384,
            distance: Distance::Cosine,
            tokenizer: Tokenizer::Unicode61,
            count: 5183,
            embedder: Some(ctxd_proto::CollectionEmbedder {
                name: "minilm".into(),
                sha256: "53aa5117".into(),
            }),
        }]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "NAME   DIMENSION  DISTANCE  TOKENIZER  EMBEDDER  DOCUMENTS"
        );
        assert_eq!(
            lines[1],
            "notes  384        cosine    unicode61  minilm    5183"
        );
    }
}
