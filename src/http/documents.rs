//! Parsed GraphQL documents by the hash of their text, so that a document sent again (every
//! `submitAllocation` of the web app sends the same one) is not parsed again.
//!
//! async-graphql parses every request's text with a PEG parser; a profile of the writes bench
//! had that parse at about 5 % of the server process. Cloning a parsed document costs a
//! fraction of parsing it (the writes bench prints both). Depth and directive checks still run
//! on the cached copy: the schema makes them on whatever document it is given. A kept document
//! also learns whether it passed the full validation (see [`KeptDocument`]).

use std::sync::Arc;

use async_graphql::parser::types::ExecutableDocument;

use super::swap_map::BoundedSwapMap;
use crate::graphql::KeptDocument;

/// Most documents kept (see [`BoundedSwapMap`] for what happens past it).
const DOCUMENTS: usize = 256;

/// Longest document text kept (bytes), which with [`DOCUMENTS`] bounds the memory: the web
/// app's and GraphiQL's documents are all well under it.
pub const MAX_DOCUMENT_BYTES: usize = 8 * 1024;

/// The documents parsed so far, each behind a pointer that a request clones the document of.
pub struct Documents {
    parsed: BoundedSwapMap<Arc<KeptDocument>>,
}

impl Default for Documents {
    fn default() -> Self {
        Documents {
            parsed: BoundedSwapMap::new(DOCUMENTS),
        }
    }
}

impl Documents {
    /// Gives `request` its parsed document: the one kept under `hash` (the SHA-256 of its
    /// text), else its text parsed now and kept; returns the kept document. A document that
    /// does not parse, or is too long to keep, is left for the schema to parse and report as
    /// usual.
    pub fn attach(
        &self,
        request: &mut async_graphql::Request,
        hash: &str,
    ) -> Option<Arc<KeptDocument>> {
        if let Some(kept) = self.parsed.load().get(hash) {
            request.set_parsed_query(ExecutableDocument::clone(kept.document()));
            return Some(kept.clone());
        }
        if request.query.len() > MAX_DOCUMENT_BYTES {
            return None;
        }
        let document = request.parsed_query().ok()?.clone();
        let kept = Arc::new(KeptDocument::new(document));
        self.parsed.update(hash, |_| kept.clone());
        Some(kept)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.parsed.load().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::read_cache::document_hash;

    fn attached(documents: &Documents, query: &str) -> async_graphql::Request {
        let mut request = async_graphql::Request::new(query);
        documents.attach(&mut request, &document_hash(query));
        request
    }

    #[test]
    fn a_document_sent_again_is_the_one_kept() {
        let documents = Documents::default();
        let query = "mutation($i: SubmitAllocationInput!) { submitAllocation(input: $i) { submission { id } } }";
        let mut first = attached(&documents, query);
        assert_eq!(documents.len(), 1);
        // The second request's text is not what its parsed document says: only the kept
        // document can have been given to it.
        let mut second = async_graphql::Request::new("{ this is not graphql");
        documents.attach(&mut second, &document_hash(query));
        assert_eq!(documents.len(), 1);
        let (first, second) = (
            first.parsed_query().unwrap(),
            second.parsed_query().unwrap(),
        );
        assert_eq!(format!("{first:?}"), format!("{second:?}"));
    }

    #[test]
    fn keeps_neither_what_does_not_parse_nor_what_is_too_long() {
        let documents = Documents::default();
        let mut broken = attached(&documents, "{ aggregates { ");
        assert!(broken.parsed_query().is_err());
        let long = format!("{{ {} }}", "__typename ".repeat(MAX_DOCUMENT_BYTES / 10));
        assert!(long.len() > MAX_DOCUMENT_BYTES);
        let mut long = attached(&documents, &long);
        // Left for the schema, which parses it as before.
        assert!(long.parsed_query().is_ok());
        assert_eq!(documents.len(), 0);
    }

    #[test]
    fn starts_again_past_its_bound() {
        let documents = Documents::default();
        for n in 0..DOCUMENTS {
            attached(&documents, &format!("{{ a{n}: __typename }}"));
        }
        assert_eq!(documents.len(), DOCUMENTS);
        attached(&documents, "{ one_more: __typename }");
        assert_eq!(documents.len(), 1);
    }
}
