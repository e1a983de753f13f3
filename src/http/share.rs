//! Link previews for shared results: a result page (`/s/{id}`) is the app's `index.html` with
//! Open Graph and Twitter card tags that name the submission's largest shares, so a link pasted
//! into a chat or a post shows a title and a summary. Crawlers run no script: the server has to
//! write them.
//!
//! The tags replace the block between `<!-- share-meta` and `<!-- /share-meta -->` in the
//! page (the app's default tags); every value is HTML-escaped.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::domain::Category;
use crate::submissions::Submissions;

/// A preview is a nicety: a slow database must not hold the page for long.
const LOOKUP_TIMEOUT: Duration = Duration::from_millis(800);
/// How many of the largest shares the title names.
const NAMED: usize = 3;

const BLOCK_START: &str = "<!-- share-meta";
const BLOCK_END: &str = "<!-- /share-meta -->";

/// What a preview says about one submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    pub title: String,
    pub description: String,
}

/// Finds submissions for previews: the same lookup the GraphQL `submission` field makes.
#[derive(Clone)]
pub struct SharedResults {
    submissions: Submissions,
    categories: Arc<Vec<Category>>,
}

impl std::fmt::Debug for SharedResults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedResults").finish_non_exhaustive()
    }
}

impl SharedResults {
    pub fn new(submissions: Submissions, categories: Arc<Vec<Category>>) -> Self {
        SharedResults {
            submissions,
            categories,
        }
    }

    /// The preview of the submission `id` names; `None` for an id that is not a submission's,
    /// or when the store cannot answer in time (the page then keeps the app's default tags).
    pub async fn preview(&self, id: &str) -> Option<Preview> {
        let id = Uuid::parse_str(id).ok()?;
        match tokio::time::timeout(LOOKUP_TIMEOUT, self.submissions.find(id)).await {
            Ok(Ok(Some(found))) => Some(preview_of(&found.allocations, &self.categories)),
            Ok(Ok(None)) => None,
            Ok(Err(error)) => {
                tracing::warn!(%error, "no link preview: the submission could not be read");
                None
            }
            Err(_) => {
                tracing::warn!("no link preview: the submission was not read in time");
                None
            }
        }
    }
}

/// "A tax split: Healthcare 25 %, Education 20 %, Social Security 15 %" and a line on what the
/// page shows. Largest first; equal shares keep the categories' display order.
pub fn preview_of(
    allocations: &[(crate::domain::CategoryId, crate::domain::Hundredths)],
    categories: &[Category],
) -> Preview {
    let mut named: Vec<(&Category, crate::domain::Hundredths)> = allocations
        .iter()
        .filter(|(_, share)| share.raw() > 0)
        .filter_map(|(id, share)| {
            categories
                .iter()
                .find(|c| c.id == *id)
                .map(|category| (category, *share))
        })
        .collect();
    named.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then(a.0.display_order.cmp(&b.0.display_order))
    });
    let largest: Vec<String> = named
        .iter()
        .take(NAMED)
        .map(|(category, share)| format!("{} {}", category.name, percent(*share)))
        .collect();
    let title = if largest.is_empty() {
        "A tax split".to_owned()
    } else {
        format!("A tax split: {}", largest.join(", "))
    };
    let description = format!(
        "How one citizen would split their taxes across {} budget categories, beside the live \
         national average. Make your own split.",
        allocations.len()
    );
    Preview { title, description }
}

/// "25 %" for 25.00, "12.5 %" for 12.50, "3.25 %" for 3.25: short, as in a headline.
fn percent(share: crate::domain::Hundredths) -> String {
    let text = share.to_string();
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text} %")
}

/// The tags of a preview, every value escaped.
pub fn meta_tags(preview: &Preview) -> String {
    let title = escape_html(&preview.title);
    let description = escape_html(&preview.description);
    format!(
        "<meta property=\"og:site_name\" content=\"Tax Budget Allocator\" />\n\
         <meta property=\"og:type\" content=\"article\" />\n\
         <meta property=\"og:title\" content=\"{title}\" />\n\
         <meta property=\"og:description\" content=\"{description}\" />\n\
         <meta name=\"twitter:card\" content=\"summary\" />\n\
         <meta name=\"twitter:title\" content=\"{title}\" />\n\
         <meta name=\"twitter:description\" content=\"{description}\" />\n\
         <meta name=\"description\" content=\"{description}\" />\n"
    )
}

/// The page with the default share block replaced by `tags`; without the block (an older
/// build), the tags go before `</head>`; without that either, the page is left as it is.
pub fn inject(page: &str, tags: &str) -> String {
    if let Some(start) = page.find(BLOCK_START) {
        if let Some(end) = page[start..].find(BLOCK_END) {
            let end = start + end + BLOCK_END.len();
            return format!("{}{tags}{}", &page[..start], &page[end..]);
        }
    }
    match page.find("</head>") {
        Some(head) => format!("{}{tags}{}", &page[..head], &page[head..]),
        None => page.to_owned(),
    }
}

/// `text` as HTML reads it as text, in an element or a quoted attribute.
pub(super) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CategoryId, Hundredths};

    #[test]
    fn escapes_what_html_would_read_as_markup() {
        assert_eq!(
            escape_html(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
    }

    fn category(id: i32, name: &str) -> Category {
        Category {
            id: CategoryId(id),
            slug: format!("c{id}"),
            name: name.to_owned(),
            description: String::new(),
            color: "#000000".to_owned(),
            display_order: id,
            active: true,
        }
    }

    fn share(raw: i64) -> Hundredths {
        Hundredths::from_raw(raw).expect("in range")
    }

    #[test]
    fn names_the_largest_shares_in_order() {
        let categories = [
            category(1, "Healthcare"),
            category(2, "Education"),
            category(3, "Defense"),
            category(4, "Other"),
        ];
        let allocations = [
            (CategoryId(1), share(2500)),
            (CategoryId(2), share(1250)),
            (CategoryId(3), share(6000)),
            (CategoryId(4), share(250)),
        ];
        let preview = preview_of(&allocations, &categories);
        assert_eq!(
            preview.title,
            "A tax split: Defense 60 %, Healthcare 25 %, Education 12.5 %"
        );
        assert!(preview.description.contains("4 budget categories"));
    }

    #[test]
    fn escapes_names_and_replaces_the_default_block() {
        let preview = Preview {
            title: "A tax split: <script>\"x\" & 'y'".to_owned(),
            description: "d".to_owned(),
        };
        let page = "<html><head><meta charset=\"utf-8\" />\n<!-- share-meta: default -->\n\
                    <meta property=\"og:title\" content=\"Tax Budget Allocator\" />\n\
                    <!-- /share-meta -->\n<title>t</title></head><body></body></html>";
        let out = inject(page, &meta_tags(&preview));
        assert!(!out.contains("<script>"), "{out}");
        assert!(
            out.contains("content=\"A tax split: &lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;\"")
        );
        assert!(!out.contains("content=\"Tax Budget Allocator\" />\n<!--"));
        assert_eq!(out.matches("og:title").count(), 1, "{out}");
        assert!(out.starts_with("<html><head><meta charset=\"utf-8\" />"));
        assert!(out.ends_with("<title>t</title></head><body></body></html>"));
    }

    #[test]
    fn without_the_block_the_tags_go_before_the_end_of_head() {
        let out = inject("<head><title>t</title></head><body>", "<meta x />");
        assert_eq!(out, "<head><title>t</title><meta x /></head><body>");
        assert_eq!(inject("no head", "<meta x />"), "no head");
    }
}
