//! The MCP tools of `ctxd mcp`, each one request to the daemon.
//!
//! Daemon errors become tool errors (`isError`, with the daemon's message) so an agent can read
//! and correct them; a malformed call is refused by the SDK before it gets here.

use ctxd_client::Client;
use ctxd_proto::{Delete, Document, Field, Filter, Get, Metadata, Search, Upsert};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::{Json, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;

/// The server: a client of the daemon and the default collection.
pub struct Tools {
    client: Arc<Client>,
    collection: String,
    tool_router: ToolRouter<Self>,
}

/// `store_document`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct StoreParams {
    /// The text to remember.
    pub text: String,
    /// Attributes to filter on later: strings, numbers, booleans or lists of those.
    pub metadata: Option<Map<String, Value>>,
    /// The document's id; a new one is generated when left out. Storing an id again replaces
    /// that document.
    pub id: Option<String>,
    /// The collection (default: the server's).
    pub collection: Option<String>,
}

/// `search`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SearchParams {
    /// What to look for, in plain words.
    pub query: String,
    /// How many hits (default 5, at most 100).
    pub k: Option<u32>,
    /// A metadata filter in ChromaDB's syntax, e.g. {"topic": "work"} or {"year": {"$gte": 2024}}.
    pub filter: Option<Value>,
    /// The collection (default: the server's).
    pub collection: Option<String>,
}

/// `get_documents`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct GetParams {
    /// The ids to read.
    pub ids: Vec<String>,
    /// The collection (default: the server's).
    pub collection: Option<String>,
}

/// `delete_documents`: by ids, by filter, or both (a document must match both).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct DeleteParams {
    /// The ids to delete.
    pub ids: Option<Vec<String>>,
    /// Delete the documents whose metadata matches (ChromaDB's syntax).
    pub filter: Option<Value>,
    /// The collection (default: the server's).
    pub collection: Option<String>,
}

/// A document as the tools return it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Hit {
    /// The document's id.
    pub id: String,
    /// Its text.
    pub text: Option<String>,
    /// Its metadata.
    pub metadata: Option<Map<String, Value>>,
    /// Relevance, higher is better (search only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

/// `store_document`'s result.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Stored {
    /// The stored document's id.
    pub id: String,
}

/// `search`'s and `get_documents`' result.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Hits {
    /// Best first for search; in the order asked for get_documents (missing ids left out).
    pub documents: Vec<Hit>,
}

/// `delete_documents`' result.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Deleted {
    /// How many documents were deleted.
    pub deleted: u64,
}

/// `list_collections`' result.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Collections {
    /// Every collection.
    pub collections: Vec<CollectionEntry>,
}

/// One collection.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CollectionEntry {
    /// Its name.
    pub name: String,
    /// How many documents it holds.
    pub count: u64,
    /// The model the daemon embeds its text with, if any (then search is semantic).
    pub embedder: Option<String>,
}

const MAX_K: u32 = 100;

#[tool_router]
impl Tools {
    /// The server for `client`, with `collection` as the default collection.
    pub fn new(client: Arc<Client>, collection: String) -> Tools {
        Tools {
            client,
            collection,
            tool_router: Self::tool_router(),
        }
    }

    fn collection(&self, given: Option<String>) -> String {
        given.unwrap_or_else(|| self.collection.clone())
    }

    #[tool(
        description = "Store a document (a note, a fact, a memory) so it can be searched later. Returns its id."
    )]
    async fn store_document(
        &self,
        Parameters(params): Parameters<StoreParams>,
    ) -> Result<Json<Stored>, String> {
        let id = params
            .id
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let metadata = params
            .metadata
            .filter(|m| !m.is_empty())
            .map(|m| Metadata::from_json(&Value::Object(m).to_string()).map_err(|e| e.to_string()))
            .transpose()?;
        self.client
            .upsert(Upsert {
                collection: self.collection(params.collection),
                documents: vec![Document {
                    id: id.clone(),
                    text: Some(params.text),
                    vector: None,
                    metadata,
                }],
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(Json(Stored { id }))
    }

    #[tool(
        description = "Search stored documents: by meaning when the collection has an embedder, else by keywords (bm25). Best first."
    )]
    async fn search(
        &self,
        Parameters(params): Parameters<SearchParams>,
    ) -> Result<Json<Hits>, String> {
        let filter = parse_filter(params.filter)?;
        let k = params.k.unwrap_or(5).clamp(1, MAX_K);
        let result = self
            .client
            .search(Search {
                collection: self.collection(params.collection),
                text: Some(params.query),
                k: Some(k),
                filter,
                include: Some(vec![Field::Text, Field::Metadata]),
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(Json(Hits {
            documents: result
                .hits
                .into_iter()
                .map(|hit| Hit {
                    id: hit.id,
                    text: hit.text,
                    metadata: hit.metadata.map(metadata_map),
                    score: Some(hit.score),
                })
                .collect(),
        }))
    }

    #[tool(description = "Read stored documents by their ids.")]
    async fn get_documents(
        &self,
        Parameters(params): Parameters<GetParams>,
    ) -> Result<Json<Hits>, String> {
        let page = self
            .client
            .get(Get {
                collection: self.collection(params.collection),
                limit: Some(u32::try_from(params.ids.len()).unwrap_or(u32::MAX).max(1)),
                ids: Some(params.ids),
                include: Some(vec![Field::Text, Field::Metadata]),
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(Json(Hits {
            documents: page
                .documents
                .into_iter()
                .map(|doc| Hit {
                    id: doc.id,
                    text: doc.text,
                    metadata: doc.metadata.map(metadata_map),
                    score: None,
                })
                .collect(),
        }))
    }

    #[tool(
        description = "Delete stored documents by ids, by a metadata filter, or both (a document must match both). Returns how many were deleted."
    )]
    async fn delete_documents(
        &self,
        Parameters(params): Parameters<DeleteParams>,
    ) -> Result<Json<Deleted>, String> {
        if params.ids.is_none() && params.filter.is_none() {
            return Err("give `ids`, `filter` or both (deleting never means everything)".into());
        }
        let result = self
            .client
            .delete(Delete {
                collection: self.collection(params.collection),
                ids: params.ids,
                filter: parse_filter(params.filter)?,
                text_filter: None,
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(Json(Deleted {
            deleted: result.deleted,
        }))
    }

    #[tool(description = "List the collections with their document counts.")]
    async fn list_collections(&self) -> Result<Json<Collections>, String> {
        let listed = self
            .client
            .list_collections()
            .await
            .map_err(|e| e.to_string())?;
        Ok(Json(Collections {
            collections: listed
                .collections
                .into_iter()
                .map(|c| CollectionEntry {
                    name: c.name,
                    count: c.count,
                    embedder: c.embedder.map(|e| e.name),
                })
                .collect(),
        }))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("ctxd", env!("CARGO_PKG_VERSION")))
            .with_instructions(format!(
                "A document store shared by every session: store_document to remember, search \
                 to recall (collection `{}` unless another is named), get_documents, \
                 delete_documents, list_collections.",
                self.collection
            ))
    }
}

fn parse_filter(value: Option<Value>) -> Result<Option<Filter>, String> {
    value
        .map(|v| Filter::from_value(&v).map_err(|e| format!("invalid filter: {e}")))
        .transpose()
}

fn metadata_map(metadata: Metadata) -> Map<String, Value> {
    serde_json::from_str(metadata.as_json()).unwrap_or_default()
}
