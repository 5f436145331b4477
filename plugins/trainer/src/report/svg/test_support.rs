//! Reading the SVG the tests check.

use roxmltree::{Document, Node};

/// The SVG parsed as XML; panics (failing the test) when it is not well-formed.
pub fn parse(svg: &str) -> Document<'_> {
    Document::parse(svg).unwrap_or_else(|e| panic!("not XML: {e}\n{svg}"))
}

/// Elements named `name`.
pub fn elements<'a>(doc: &'a Document<'_>, name: &str) -> Vec<Node<'a, 'a>> {
    doc.descendants().filter(|n| n.has_tag_name(name)).collect()
}

/// The text of every `<text>` element, trimmed.
pub fn texts(doc: &Document<'_>) -> Vec<String> {
    elements(doc, "text")
        .iter()
        .map(|n| n.text().unwrap_or_default().trim().to_string())
        .collect()
}
