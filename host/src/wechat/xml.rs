//! A hardened XML reader into a small element tree, and the CDATA writer replies use.
//!
//! WeChat's XML is flat or shallow (`<xml>` with leaf fields and a few nested groups), so the
//! reader builds an [`Element`] tree under tight limits, and the typed models read from it. It
//! strips characters XML 1.0 cannot carry (users do type `\x1d`), refuses DTDs and any entity
//! but the five predefined ones, and never expands anything.

use std::borrow::Cow;
use std::sync::LazyLock;

use memchr::memmem;
use quick_xml::Reader;
use quick_xml::events::Event;
use serde::Serialize;

use super::error::{Error, Result};

/// The largest document the reader accepts (a push body; WeChat's are a few kilobytes).
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
/// The deepest nesting WeChat uses is 4 (`xml/SendPicsInfo/PicList/item/PicMd5Sum`).
const MAX_DEPTH: usize = 8;
/// More elements than any real push has, few enough that a hostile one costs little.
const MAX_ELEMENTS: usize = 1024;

/// One XML element: its name, its text (CDATA and text joined, entities resolved) and children.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Element {
    /// The element name as written (WeChat's names are case-sensitive).
    pub name: String,
    /// The text content; empty for elements that only hold children.
    pub text: String,
    /// Child elements in document order; repeated names stay repeated.
    pub children: Vec<Element>,
}

impl Element {
    /// A leaf element with text.
    pub fn leaf(name: impl Into<String>, text: impl Into<String>) -> Self {
        Element {
            name: name.into(),
            text: text.into(),
            children: Vec::new(),
        }
    }

    /// The first child called `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child called `name`, in order (one or many).
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of the first child called `name`.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }

    /// The text at a `/`-separated path of child names, e.g. `ScanCodeInfo/ScanResult`.
    pub fn text_at(&self, path: &str) -> Option<&str> {
        path.split('/')
            .try_fold(self, |el, name| el.child(name))
            .map(|el| el.text.as_str())
    }

    /// Clears the text of an element with children when it is only the whitespace laid out
    /// between them.
    fn drop_layout_whitespace(&mut self) {
        if !self.children.is_empty() && self.text.trim().is_empty() {
            self.text.clear();
        }
    }

    /// Writes the element as XML, every text in CDATA (numbers in `numeric` bare, as WeChat does).
    pub fn write(&self, out: &mut String, numeric: &[&str]) {
        out.push('<');
        out.push_str(&self.name);
        out.push('>');
        if self.children.is_empty() {
            if numeric.contains(&self.name.as_str()) {
                out.push_str(&self.text);
            } else {
                push_cdata(out, &self.text);
            }
        }
        for child in &self.children {
            child.write(out, numeric);
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }
}

/// True for the characters XML 1.0 allows in a document.
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Removes the characters XML 1.0 cannot carry, borrowing when there are none.
pub fn sanitize(input: &str) -> Cow<'_, str> {
    if has_non_xml_char(input.as_bytes()) {
        Cow::Owned(input.chars().filter(|&c| is_xml_char(c)).collect())
    } else {
        Cow::Borrowed(input)
    }
}

/// Whether every character of `text` is one XML 1.0 can carry.
pub fn is_xml_text(text: &str) -> bool {
    !has_non_xml_char(text.as_bytes())
}

/// Whether UTF-8 `bytes` hold a character XML 1.0 forbids. In UTF-8 those are the ASCII
/// controls other than tab, newline and return, and U+FFFE and U+FFFF (`EF BF BE`/`EF BF BF`;
/// surrogates cannot occur). Eight bytes at a time: only a word holding a byte below 0x20 or
/// an 0xEF is looked at byte by byte.
fn has_non_xml_char(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    let forbidden_at = |i: usize| match bytes[i] {
        b'\t' | b'\n' | b'\r' => false,
        b if b < 0x20 => true,
        0xEF => bytes.get(i + 1) == Some(&0xBF) && matches!(bytes.get(i + 2), Some(0xBE | 0xBF)),
        _ => false,
    };
    let words = bytes.chunks_exact(8);
    let tail_start = bytes.len() - words.remainder().len();
    for (n, word) in words.enumerate() {
        let mut array = [0u8; 8];
        array.copy_from_slice(word);
        let word = u64::from_le_bytes(array);
        // Classic SWAR tests: a byte below 0x20, and a byte equal to 0xEF (exact per word).
        let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGH_BITS;
        let xor_ef = word ^ (ONES * 0xEF);
        let ef = xor_ef.wrapping_sub(ONES) & !xor_ef & HIGH_BITS;
        if below_space | ef != 0 && (n * 8..n * 8 + 8).any(forbidden_at) {
            return true;
        }
    }
    (tail_start..bytes.len()).any(forbidden_at)
}

/// The end of a CDATA section. Built once: `memmem::find` would build a searcher on each call,
/// which costs more than the search in a field of a push.
static CDATA_END: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new("]]>"));

/// Appends `text` as CDATA, splitting any `]]>` so the value cannot break out of the section.
pub fn push_cdata(out: &mut String, text: &str) {
    out.push_str("<![CDATA[");
    let mut rest = text;
    while let Some(end) = CDATA_END.find(rest.as_bytes()) {
        out.push_str(&rest[..end]);
        out.push_str("]]]]><![CDATA[>");
        rest = &rest[end + 3..];
    }
    out.push_str(rest);
    out.push_str("]]>");
}

/// Parses a document into its root element, under the limits above.
pub fn parse_document(input: &str) -> Result<Element> {
    if input.len() > MAX_DOCUMENT_BYTES {
        return Err(Error::BodyTooLarge {
            len: input.len(),
            limit: MAX_DOCUMENT_BYTES,
        });
    }
    let input = sanitize(input);
    match parse_common_shape(&input) {
        Some(root) => Ok(root),
        None => parse_any(&input),
    }
}

/// The shape nearly every push has, read without an XML library: elements without attributes,
/// text without references, and CDATA sections, with nothing but whitespace around the root.
/// Anything else (a declaration, a comment, a reference, an attribute, an empty-element tag, a
/// limit reached or any error) makes it give up with `None`, and [`parse_any`] decides. Where
/// it gives an element, `parse_any` gives the same one (a property test checks this).
fn parse_common_shape(input: &str) -> Option<Element> {
    let bytes = input.as_bytes();
    let mut stack: Vec<Element> = Vec::with_capacity(MAX_DEPTH);
    let mut elements = 0usize;
    let mut pos = skip_whitespace(bytes, 0);
    loop {
        // At a markup character: a start tag, an end tag or a CDATA section.
        let tag = pos + 1;
        match bytes.get(pos..)? {
            [b'<', b'/', ..] => {
                let end = tag + 1 + memchr::memchr(b'>', &bytes[tag + 1..])?;
                let mut done = stack.pop()?;
                if done.name != input[tag + 1..end] {
                    return None;
                }
                done.drop_layout_whitespace();
                pos = end + 1;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => return (skip_whitespace(bytes, pos) == bytes.len()).then_some(done),
                }
            }
            [b'<', b'!', ..] => {
                let start = pos + "<![CDATA[".len();
                if !bytes[pos..].starts_with(b"<![CDATA[") {
                    return None;
                }
                let len = CDATA_END.find(&bytes[start..])?;
                stack.last_mut()?.text.push_str(&input[start..start + len]);
                pos = start + len + "]]>".len();
            }
            [b'<', ..] => {
                let end = tag + memchr::memchr(b'>', &bytes[tag..])?;
                let name = &input[tag..end];
                elements += 1;
                if !is_plain_name(name) || !within_limits(stack.len(), elements) {
                    return None;
                }
                stack.push(Element {
                    name: name.to_owned(),
                    ..Element::default()
                });
                pos = end + 1;
            }
            _ => return None,
        }
        // The text up to the next markup, inside the element on top of the stack.
        let next = pos + memchr::memchr(b'<', &bytes[pos..])?;
        if next > pos {
            let text = &input[pos..next];
            if text.contains('&') {
                return None;
            }
            stack.last_mut()?.text.push_str(text);
        }
        pos = next;
    }
}

/// Whether an element opened at `depth` (elements above it) as the document's `elements`th
/// element is within the reader's limits.
fn within_limits(depth: usize, elements: usize) -> bool {
    depth < MAX_DEPTH && elements <= MAX_ELEMENTS
}

/// The index of the first byte at or after `pos` that is not XML whitespace.
fn skip_whitespace(bytes: &[u8], pos: usize) -> usize {
    pos + bytes[pos..]
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .count()
}

/// An element name of the kind WeChat uses: an ASCII letter or `_`, then letters, digits,
/// `_`, `-` and `.`.
fn is_plain_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Parses any document with the XML library, under the limits above.
fn parse_any(input: &str) -> Result<Element> {
    let mut reader = Reader::from_str(input);
    let config = reader.config_mut();
    config.expand_empty_elements = true;
    config.check_end_names = true;
    config.trim_text(false);

    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut elements = 0usize;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| Error::Xml(format!("at byte {}: {e}", reader.error_position())))?;
        match event {
            Event::DocType(_) => return Err(Error::XmlForbidden("DTD (<!DOCTYPE>)".into())),
            Event::Start(start) => {
                if root.is_some() {
                    return Err(Error::Xml("content after the root element".into()));
                }
                elements += 1;
                if !within_limits(stack.len(), elements) {
                    return Err(Error::Xml(format!(
                        "more than {MAX_DEPTH} levels or {MAX_ELEMENTS} elements"
                    )));
                }
                let name = start.name().0.to_owned();
                stack.push(Element {
                    name,
                    ..Element::default()
                });
            }
            Event::End(_) => {
                let Some(mut done) = stack.pop() else {
                    return Err(Error::Xml("unexpected closing tag".into()));
                };
                done.drop_layout_whitespace();
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => root = Some(done),
                }
            }
            Event::Text(text) => {
                let text = text.into_inner();
                match stack.last_mut() {
                    Some(current) => current.text.push_str(&text),
                    None if text.trim().is_empty() => {}
                    None => return Err(Error::Xml("text outside the root element".into())),
                }
            }
            Event::CData(cdata) => {
                let cdata = cdata.into_inner();
                let current = stack
                    .last_mut()
                    .ok_or_else(|| Error::Xml("CDATA outside the root element".into()))?;
                current.text.push_str(&cdata);
            }
            Event::GeneralRef(reference) => {
                let current = stack
                    .last_mut()
                    .ok_or_else(|| Error::Xml("reference outside the root element".into()))?;
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(c)) => Some(c),
                    Ok(None) => predefined_entity(&reference.into_inner()),
                    Err(e) => return Err(Error::Xml(e.to_string())),
                };
                match resolved {
                    Some(c) if is_xml_char(c) => current.text.push(c),
                    Some(_) => {} // a character reference to a control character: stripped
                    None => {
                        return Err(Error::XmlForbidden(
                            "entity reference (only &lt; &gt; &amp; &apos; &quot; are allowed)"
                                .into(),
                        ));
                    }
                }
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::Empty(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(Error::Xml("document ends inside an element".into()));
    }
    root.ok_or_else(|| Error::Xml("no root element".into()))
}

fn predefined_entity(name: &str) -> Option<char> {
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "apos" => Some('\''),
        "quot" => Some('"'),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text and CDATA pieces of the common shape.
    const TEXTS: &[&str] = &[
        "text",
        "1348831860",
        " ",
        "\n  ",
        "\r\n",
        "\t",
        "中文😀",
        ">",
        "<![CDATA[x]]>",
        "<![CDATA[]]>",
        "<![CDATA[a]]]]><![CDATA[>b]]>",
        "<![CDATA[<&>]]>",
    ];
    /// Pieces that make the common shape give up, or break the document.
    const ODD: &[&str] = &[
        "]]>",
        "&lt;",
        "&amp;",
        "&#x4e2d;",
        "&bad;",
        "&",
        "<",
        "<E/>",
        "<E />",
        "<A x=\"1\">",
        "<A x='>'>",
        "</A >",
        "</A>",
        "<A>",
        "<?xml version=\"1.0\"?>",
        "<!-- c -->",
        "<!DOCTYPE xml>",
        "<![CDATA[",
        "<1>",
        "</>",
        "<>",
        "<a:b></a:b>",
        "x",
    ];

    /// A well-formed document of the common shape, with at most one odd piece put anywhere.
    fn document() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let name = proptest::sample::select(&["xml", "A", "item", "B.c-d_1", "_x"][..]);
        let leaf = (
            name.clone(),
            proptest::collection::vec(proptest::sample::select(TEXTS), 0..3),
        )
            .prop_map(|(name, texts)| format!("<{name}>{}</{name}>", texts.concat()));
        let tree = leaf.prop_recursive(4, 24, 4, move |inner| {
            let part = prop_oneof![
                inner,
                proptest::sample::select(TEXTS).prop_map(String::from)
            ];
            (name.clone(), proptest::collection::vec(part, 0..5))
                .prop_map(|(name, parts)| format!("<{name}>{}</{name}>", parts.concat()))
        });
        let odd =
            proptest::option::of((proptest::sample::select(ODD), any::<prop::sample::Index>()));
        (proptest::sample::select(&["", " ", "\n"][..]), tree, odd).prop_map(|(lead, tree, odd)| {
            let mut doc = format!("{lead}{tree}");
            if let Some((piece, at)) = odd {
                let at = at.index(doc.len() + 1);
                if doc.is_char_boundary(at) {
                    doc.insert_str(at, piece);
                }
            }
            doc
        })
    }

    #[test]
    fn common_shape_reads_a_typical_push_itself() {
        let push = "<xml><ToUserName><![CDATA[gh_1]]></ToUserName>\n<CreateTime>1348831860</CreateTime>\
                    <Content><![CDATA[你好 & <b>]]></Content><G><item><K>1</K></item></G></xml>\n";
        let root = parse_common_shape(push).expect("the common shape");
        assert_eq!(Ok(&root), parse_any(push).as_ref());
        assert_eq!(root.child_text("Content"), Some("你好 & <b>"));
        assert_eq!(root.text_at("G/item/K"), Some("1"));
        for other in [
            "<?xml version=\"1.0\"?><xml></xml>",
            "<xml><!-- c --></xml>",
            "<xml><E/></xml>",
            "<xml a=\"1\"></xml>",
            "<xml>&lt;</xml>",
            "<xml></xml>x",
        ] {
            assert_eq!(parse_common_shape(other), None, "{other:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn common_shape_agrees_with_the_xml_library(doc in document()) {
            if let Some(root) = parse_common_shape(&doc) {
                proptest::prop_assert_eq!(Ok(root), parse_any(&doc));
            }
        }

        #[test]
        fn sanitize_keeps_exactly_the_xml_characters(text in "(\\PC|[\\x00-\\x1f\\x7f\\u{fffe}\\u{ffff}\\u{fffd}\\u{fbff}]){0,80}") {
            let expected: String = text.chars().filter(|&c| is_xml_char(c)).collect();
            let sanitized = sanitize(&text);
            proptest::prop_assert_eq!(sanitized.as_ref(), expected.as_str());
        }

        #[test]
        fn cdata_carries_any_text_through_a_parse(text in "([\\]>]|\\PC){0,40}") {
            let text: String = text.chars().filter(|&c| is_xml_char(c)).collect();
            let mut doc = String::from("<xml><C>");
            push_cdata(&mut doc, &text);
            doc.push_str("</C></xml>");
            let root = parse_document(&doc).expect("written CDATA parses");
            proptest::prop_assert_eq!(root.child_text("C"), Some(text.as_str()));
        }
    }

    #[test]
    fn parses_cdata_text_and_entities() {
        let root = parse_document(
            "<?xml version=\"1.0\"?><xml><A><![CDATA[a]]]]><![CDATA[>b]]></A>\
             <B>x &lt; y &amp;&#x4e2d;&#25991;</B><!-- c --></xml>",
        )
        .expect("parse");
        assert_eq!(root.name, "xml");
        assert_eq!(root.child_text("A"), Some("a]]>b"));
        assert_eq!(root.child_text("B"), Some("x < y &中文"));
    }

    #[test]
    fn keeps_repeated_elements_and_paths() {
        let root = parse_document(
            "<xml>\n  <G><item><K>1</K></item><item><K>2</K></item></G>\n  <E/>\n</xml>",
        )
        .expect("parse");
        let group = root.child("G").expect("G");
        let keys: Vec<_> = group
            .children_named("item")
            .filter_map(|i| i.child_text("K"))
            .collect();
        assert_eq!(keys, ["1", "2"]);
        assert_eq!(root.text_at("G/item/K"), Some("1"));
        assert_eq!(root.child_text("E"), Some(""));
        assert_eq!(root.text, "");
    }

    #[test]
    fn strips_control_characters_but_keeps_newlines_and_emoji() {
        let root =
            parse_document("<xml><C>a\u{1d}b\u{0}c\r\n\t😀\u{fffe}</C></xml>").expect("parse");
        assert_eq!(root.child_text("C"), Some("abc\r\n\t😀"));
        let root = parse_document("<xml><C>x&#1;y&#x1F600;</C></xml>").expect("parse");
        assert_eq!(root.child_text("C"), Some("xy😀"));
    }

    #[test]
    fn refuses_dtd_and_billion_laughs() {
        let laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<xml><Content>&lol2;</Content></xml>"#;
        assert_eq!(
            parse_document(laughs),
            Err(Error::XmlForbidden("DTD (<!DOCTYPE>)".into()))
        );
    }

    #[test]
    fn refuses_external_entity_even_without_dtd() {
        let xxe = "<xml><Content>&xxe;</Content></xml>";
        assert!(matches!(parse_document(xxe), Err(Error::XmlForbidden(_))));
        let xxe = r#"<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><Content>&xxe;</Content></xml>"#;
        assert!(matches!(parse_document(xxe), Err(Error::XmlForbidden(_))));
    }

    #[test]
    fn rejects_malformed_documents() {
        for bad in [
            "",
            "<xml>",
            "<xml></other>",
            "<xml></xml><xml></xml>",
            "text<xml></xml>",
            "<xml><a></xml>",
        ] {
            assert!(
                matches!(parse_document(bad), Err(Error::Xml(_))),
                "{bad:?} gave {:?}",
                parse_document(bad)
            );
        }
    }

    #[test]
    fn rejects_deep_nesting_and_element_floods() {
        let deep = format!("{}{}", "<a>".repeat(50), "</a>".repeat(50));
        assert!(matches!(parse_document(&deep), Err(Error::Xml(_))));
        let flood = format!("<xml>{}</xml>", "<a/>".repeat(5000));
        assert!(matches!(parse_document(&flood), Err(Error::Xml(_))));
    }

    #[test]
    fn rejects_oversized_documents() {
        let big = format!("<xml><C>{}</C></xml>", "a".repeat(10 * 1024 * 1024));
        assert_eq!(
            parse_document(&big),
            Err(Error::BodyTooLarge {
                len: big.len(),
                limit: MAX_DOCUMENT_BYTES
            })
        );
    }

    #[test]
    fn cdata_writer_splits_terminators() {
        let mut out = String::new();
        push_cdata(&mut out, "a]]>b]]>");
        assert_eq!(out, "<![CDATA[a]]]]><![CDATA[>b]]]]><![CDATA[>]]>");
        let doc = format!("<xml><C>{out}</C></xml>");
        assert_eq!(
            parse_document(&doc).expect("parse").child_text("C"),
            Some("a]]>b]]>")
        );
    }
}
