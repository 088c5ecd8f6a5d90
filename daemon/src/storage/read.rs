//! The read operations other than search: collections, `get`, `count`.

use super::StorageError;
use super::documents::{self, ReplyBytes, Selection};
use super::filter_sql::{self, SqlFilter};
use super::reader::ReadSide;
use super::text_filter_sql;
use ctxd_proto::limits::{DEFAULT_LIMIT, MAX_LIMIT};
use ctxd_proto::{
    CollectionResult, Count, CountResult, Field, Filter, Get, GetResult, ListCollectionsResult,
    TextFilter, Vector,
};

/// `list_collections`.
pub fn list_collections(side: &ReadSide) -> ListCollectionsResult {
    ListCollectionsResult {
        collections: side.catalog().iter().map(|c| c.info()).collect(),
    }
}

/// `get_collection`.
pub fn get_collection(side: &ReadSide, name: &str) -> Result<CollectionResult, StorageError> {
    Ok(CollectionResult {
        collection: side.catalog().require(name)?.info(),
    })
}

/// `get`.
pub fn get(side: &ReadSide, params: &Get) -> Result<GetResult, StorageError> {
    let collection = side.catalog().require(&params.collection)?.clone();
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if limit > MAX_LIMIT {
        return Err(StorageError::Invalid(format!(
            "`limit` {limit} is above the maximum of {MAX_LIMIT}; page with `offset`"
        )));
    }
    let include = include_or_default(params.include.as_deref());
    let filter = compile(params.filter.as_ref(), params.text_filter.as_ref())?;
    let selection = Selection {
        ids: params.ids.as_deref(),
        filter: filter.as_ref(),
    };
    let with_vectors = include.contains(&Field::Vector);
    let mut reply = ReplyBytes::new(if with_vectors {
        collection.dimension as usize
    } else {
        0
    });
    let rows = side.with_conn(|conn| {
        documents::select_docs(
            conn,
            collection.id,
            &selection,
            limit,
            params.offset.unwrap_or(0),
            &mut reply,
        )
    })?;
    let rtxn = if with_vectors {
        Some(side.vectors.read_txn()?)
    } else {
        None
    };
    let encoding = params.vector_encoding.unwrap_or_default();
    let documents = rows
        .into_iter()
        .map(|row| {
            let key = row.key;
            let mut doc = row.into_document(&include);
            if let Some(rtxn) = &rtxn {
                doc.vector = side
                    .vectors
                    .get(rtxn, collection.id, key)?
                    .map(|v| Vector::from(v).encoded(encoding));
            }
            Ok(doc)
        })
        .collect::<Result<_, StorageError>>()?;
    Ok(GetResult { documents })
}

/// `count`.
pub fn count(side: &ReadSide, params: &Count) -> Result<CountResult, StorageError> {
    let collection = side.catalog().require(&params.collection)?.clone();
    let Some(filter) = compile(params.filter.as_ref(), params.text_filter.as_ref())? else {
        return Ok(CountResult {
            count: collection.count,
        });
    };
    let selection = Selection {
        ids: None,
        filter: Some(&filter),
    };
    let count = side.with_conn(|conn| documents::count(conn, collection.id, &selection))?;
    Ok(CountResult { count })
}

/// The parts to return: as asked, or text and metadata.
pub fn include_or_default(include: Option<&[Field]>) -> Vec<Field> {
    include.map_or_else(|| Field::DEFAULT_INCLUDE.to_vec(), <[Field]>::to_vec)
}

/// Compiles the optional metadata and text filters of a request into one condition on a
/// document row (`d`); errors are `bad_request`.
pub fn compile(
    filter: Option<&Filter>,
    text_filter: Option<&TextFilter>,
) -> Result<Option<SqlFilter>, StorageError> {
    let metadata = filter
        .map(|f| filter_sql::compile(f, "d.metadata"))
        .transpose()
        .map_err(|e| StorageError::Invalid(format!("invalid filter: {e}")))?;
    let text = text_filter
        .map(|f| text_filter_sql::compile(f, "d.text"))
        .transpose()
        .map_err(|e| StorageError::Invalid(format!("invalid text_filter: {e}")))?;
    Ok(text_filter_sql::both(metadata, text))
}
