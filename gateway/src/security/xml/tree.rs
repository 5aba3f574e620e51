//! A small, hardened XML tree parser on quick-xml, with namespace resolution (SEC-XML-SIG-1,
//! SEC-XML-ENC-1 input handling).
//!
//! Refused, whatever the caller: any `<!DOCTYPE` (so no internal subset, no external entities
//! and no entity expansion), references to entities other than the five predefined ones and
//! character references, processing instructions (only the XML declaration at the very start is
//! accepted: our profiles carry no PIs, and a PI is data the signature covers in c14n but which no
//! consumer looks at, so refusing it removes a place to hide content), XML declarations that
//! name a version other than 1.0 or an encoding other than UTF-8, characters outside the XML 1.0
//! `Char` production, unbound prefixes, duplicate attributes (also duplicate expanded names),
//! non-whitespace text outside the root element, and input beyond the [`Limits`].
//! Comments are accepted and dropped (exclusive c14n *without* comments ignores them anyway);
//! CDATA sections become ordinary text.
//!
//! quick-xml's plain `Reader` does the tokenizing; namespace resolution is done here rather
//! than with `NsReader` so that the XML-Namespaces constraints we rely on (reserved `xml` /
//! `xmlns` prefixes, no `xmlns:p=""`, duplicate expanded attribute names, unbound prefixes)
//! are enforced in one place and the declarations as written stay available to c14n.

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

use super::XmlError;

/// The XML namespace, bound to the `xml` prefix by definition.
pub const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
/// The namespace of namespace declarations, bound to `xmlns` by definition.
pub const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";

/// Resource limits enforced while parsing (SEC-XML-* hardening).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum input size in bytes.
    pub max_bytes: usize,
    /// Maximum element nesting depth (the root is depth 1).
    pub max_depth: usize,
    /// Maximum attributes (namespace declarations included) on one element.
    pub max_attributes: usize,
    /// Maximum number of elements in the document.
    pub max_elements: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 16 * 1024 * 1024,
            max_depth: 64,
            max_attributes: 64,
            max_elements: 1_000_000,
        }
    }
}

/// One namespace binding: prefix (`None` = default namespace) and URI (`""` = undeclared).
pub type NsBinding = (Option<String>, String);

/// An attribute with its resolved namespace (namespace declarations are kept apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// Prefix as written (`None` for an unprefixed attribute).
    pub prefix: Option<String>,
    /// Local name.
    pub local: String,
    /// Namespace URI (`None` for unprefixed attributes).
    pub ns: Option<String>,
    /// Normalized, unescaped value.
    pub value: String,
}

/// A child node. Comments and the XML declaration are not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// An element.
    Element(Element),
    /// Character data (already unescaped; adjacent text and CDATA merged).
    Text(String),
}

/// An element with resolved names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// Prefix as written.
    pub prefix: Option<String>,
    /// Local name.
    pub local: String,
    /// Namespace URI (`None` = no namespace).
    pub ns: Option<String>,
    /// Namespace declarations on this element, in source order.
    pub ns_decls: Vec<NsBinding>,
    /// Attributes other than namespace declarations, in source order.
    pub attrs: Vec<Attr>,
    /// Children in document order.
    pub children: Vec<Node>,
}

/// A parsed document (only the root element matters: PIs are refused, comments dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// The document element.
    pub root: Element,
}

impl Element {
    /// Whether this element is `{ns}local`.
    pub fn is(&self, ns: &str, local: &str) -> bool {
        self.ns.as_deref() == Some(ns) && self.local == local
    }

    /// The value of the unprefixed attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.is_none() && a.local == name)
            .map(|a| a.value.as_str())
    }

    /// Child elements in order.
    pub fn child_elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// Concatenated text of the direct text children.
    pub fn text(&self) -> String {
        self.children
            .iter()
            .filter_map(|n| match n {
                Node::Text(t) => Some(t.as_str()),
                Node::Element(_) => None,
            })
            .collect()
    }

    /// True when every text child is XML whitespace.
    pub fn only_whitespace_text(&self) -> bool {
        self.children.iter().all(|n| match n {
            Node::Text(t) => t.chars().all(|c| matches!(c, ' ' | '\t' | '\n' | '\r')),
            Node::Element(_) => true,
        })
    }

    /// Every element of the subtree (self included) for which `pred` holds, in document order,
    /// each with its ancestors (outermost first).
    pub fn find_all<'a>(
        &'a self,
        pred: &dyn Fn(&Element) -> bool,
    ) -> Vec<(Vec<&'a Element>, &'a Element)> {
        fn walk<'a>(
            el: &'a Element,
            anc: &mut Vec<&'a Element>,
            pred: &dyn Fn(&Element) -> bool,
            out: &mut Vec<(Vec<&'a Element>, &'a Element)>,
        ) {
            if pred(el) {
                out.push((anc.clone(), el));
            }
            anc.push(el);
            for c in el.child_elements() {
                walk(c, anc, pred, out);
            }
            anc.pop();
        }
        let mut out = Vec::new();
        walk(self, &mut Vec::new(), pred, &mut out);
        out
    }
}

/// The namespace bindings in scope inside `ancestors.last()` (i.e. for a child of it), given
/// the chain of ancestors outermost first. Later bindings override earlier ones.
pub fn scope_of(ancestors: &[&Element]) -> Vec<NsBinding> {
    let mut scope: Vec<NsBinding> = Vec::new();
    for a in ancestors {
        for d in &a.ns_decls {
            scope.retain(|(p, _)| p != &d.0);
            scope.push(d.clone());
        }
    }
    scope
}

/// Parses a complete document with the default [`Limits`].
pub fn parse(input: &str) -> Result<Document, XmlError> {
    parse_with_limits(input, &Limits::default())
}

/// Parses a complete document with the given limits.
pub fn parse_with_limits(input: &str, limits: &Limits) -> Result<Document, XmlError> {
    let root = parse_inner(input, limits, &[], true)?;
    Ok(Document { root })
}

/// Parses one element given the namespace bindings in scope at its future parent (used for
/// decrypted `Type=Element` plaintext). No XML declaration is allowed.
pub fn parse_fragment(input: &str, scope: &[NsBinding]) -> Result<Element, XmlError> {
    parse_inner(input, &Limits::default(), scope, false)
}

fn perr(msg: impl Into<String>) -> XmlError {
    XmlError::Malformed(msg.into())
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

fn check_chars(s: &str) -> Result<(), XmlError> {
    if s.chars().all(is_xml_char) {
        Ok(())
    } else {
        Err(perr("character outside the XML 1.0 Char production"))
    }
}

/// Normalizes line ends (`\r\n` and lone `\r` become `\n`) as an XML processor must.
fn normalize_eol(s: &str) -> Cow<'_, str> {
    if !s.contains('\r') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' {
            if chars.peek() == Some(&'\n') {
                chars.next();
            }
            out.push('\n');
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Resolves a reference name (the text between `&` and `;`): predefined entities and
/// character references only. Anything else is an entity we refuse to expand.
fn resolve_ref(name: &str) -> Result<char, XmlError> {
    let c = match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "apos" => '\'',
        "quot" => '"',
        _ => {
            let num = name
                .strip_prefix('#')
                .ok_or_else(|| XmlError::EntityRefused(name.to_string()))?;
            let code = if let Some(hex) = num.strip_prefix('x') {
                if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(perr("bad character reference"));
                }
                u32::from_str_radix(hex, 16)
            } else {
                if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(perr("bad character reference"));
                }
                num.parse::<u32>()
            }
            .map_err(|_| perr("bad character reference"))?;
            let c = char::from_u32(code).ok_or_else(|| perr("bad character reference"))?;
            if !is_xml_char(c) {
                return Err(perr("character reference to a non-XML character"));
            }
            c
        }
    };
    Ok(c)
}

/// Normalizes and unescapes a raw attribute value (XML 1.0 §3.3.3 for CDATA attributes: no DTD,
/// so every attribute is CDATA).
fn attr_value(raw: &str) -> Result<String, XmlError> {
    let eol = normalize_eol(raw);
    let mut out = String::with_capacity(eol.len());
    let mut rest: &str = &eol;
    while let Some(pos) = rest.find(['&', '\t', '\n', '<']) {
        out.push_str(&rest[..pos]);
        let c = rest.as_bytes()[pos];
        match c {
            b'&' => {
                let after = &rest[pos + 1..];
                let end = after
                    .find(';')
                    .ok_or_else(|| perr("unterminated reference in attribute"))?;
                out.push(resolve_ref(&after[..end])?);
                rest = &after[end + 1..];
            }
            b'<' => return Err(perr("'<' in attribute value")),
            _ => {
                out.push(' ');
                rest = &rest[pos + 1..];
            }
        }
    }
    out.push_str(rest);
    check_chars(&out)?;
    Ok(out)
}

/// A conservative NCName check: ASCII letters, `_` or any non-ASCII character first; then also
/// digits, `.` and `-`. (Non-ASCII is not checked against the exact XML name tables.)
fn is_ncname(n: &str) -> bool {
    let mut chars = n.chars();
    let ok_rest =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') || !c.is_ascii();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' || (!c.is_ascii() && is_xml_char(c)) => {
            chars.all(|c| ok_rest(c) && is_xml_char(c))
        }
        _ => false,
    }
}

fn split_qname(q: &str) -> Result<(Option<&str>, &str), XmlError> {
    let (p, l) = match q.split_once(':') {
        None => (None, q),
        Some((p, l)) => (Some(p), l),
    };
    if p.is_some_and(|p| !is_ncname(p)) || !is_ncname(l) {
        return Err(perr(format!("bad qualified name {q:?}")));
    }
    Ok((p, l))
}

fn lookup<'a>(scope: &'a [NsBinding], prefix: Option<&str>) -> Option<&'a str> {
    if prefix == Some("xml") {
        return Some(XML_NS);
    }
    scope
        .iter()
        .rev()
        .find(|(p, _)| p.as_deref() == prefix)
        .map(|(_, u)| u.as_str())
        .filter(|u| !u.is_empty())
}

fn build_element(
    start: &BytesStart<'_>,
    scope: &mut Vec<NsBinding>,
    limits: &Limits,
) -> Result<(Element, usize), XmlError> {
    let qname = std::str::from_utf8(start.name().0.as_bytes())
        .map_err(|_| perr("element name is not UTF-8"))?
        .to_string();
    let mut ns_decls: Vec<NsBinding> = Vec::new();
    let mut raw_attrs: Vec<(String, String)> = Vec::new();
    let mut count = 0usize;
    for a in start.attributes() {
        let a = a.map_err(|e| perr(format!("attribute: {e}")))?;
        count += 1;
        if count > limits.max_attributes {
            return Err(XmlError::LimitExceeded("attributes per element"));
        }
        let key = a.key.0.to_string();
        let value = attr_value(&a.value)?;
        if key == "xmlns" {
            if value == XML_NS || value == XMLNS_NS {
                return Err(perr("reserved namespace bound as default"));
            }
            ns_decls.push((None, value));
        } else if let Some(p) = key.strip_prefix("xmlns:") {
            if !is_ncname(p) {
                return Err(perr("bad namespace prefix"));
            }
            if value.is_empty() {
                return Err(perr("prefix undeclaration is not XML 1.0"));
            }
            if p == "xmlns" || value == XMLNS_NS || ((p == "xml") != (value == XML_NS)) {
                return Err(perr("reserved prefix or namespace misused"));
            }
            ns_decls.push((Some(p.to_string()), value));
        } else {
            raw_attrs.push((key, value));
        }
    }
    let pushed = ns_decls.len();
    for d in &ns_decls {
        scope.push(d.clone());
    }
    let (prefix, local) = split_qname(&qname)?;
    let ns = match prefix {
        Some(p) => Some(
            lookup(scope, Some(p))
                .ok_or_else(|| perr(format!("unbound prefix {p:?}")))?
                .to_string(),
        ),
        None => lookup(scope, None).map(str::to_string),
    };
    let mut attrs = Vec::with_capacity(raw_attrs.len());
    for (k, v) in raw_attrs {
        let (p, l) = split_qname(&k)?;
        let ans = match p {
            Some(p) => Some(
                lookup(scope, Some(p))
                    .ok_or_else(|| perr(format!("unbound prefix {p:?}")))?
                    .to_string(),
            ),
            None => None,
        };
        if attrs.iter().any(|x: &Attr| x.ns == ans && x.local == l) {
            return Err(perr("duplicate attribute"));
        }
        attrs.push(Attr {
            prefix: p.map(str::to_string),
            local: l.to_string(),
            ns: ans,
            value: v,
        });
    }
    Ok((
        Element {
            prefix: prefix.map(str::to_string),
            local: local.to_string(),
            ns,
            ns_decls,
            attrs,
            children: Vec::new(),
        },
        pushed,
    ))
}

fn push_text(stack: &mut [Element], text: &str) {
    if let Some(top) = stack.last_mut() {
        if let Some(Node::Text(t)) = top.children.last_mut() {
            t.push_str(text);
        } else {
            top.children.push(Node::Text(text.to_string()));
        }
    }
}

fn parse_inner(
    input: &str,
    limits: &Limits,
    initial_scope: &[NsBinding],
    document: bool,
) -> Result<Element, XmlError> {
    if input.len() > limits.max_bytes {
        return Err(XmlError::LimitExceeded("document size"));
    }
    // Cheap early refusal; the event loop refuses DocType events as well.
    if input.contains("<!DOCTYPE") || input.contains("<!ENTITY") {
        return Err(XmlError::DtdRefused);
    }
    let input = input.strip_prefix('\u{feff}').unwrap_or(input);
    let mut reader = Reader::from_str(input);
    {
        let cfg = reader.config_mut();
        cfg.expand_empty_elements = false;
        cfg.check_end_names = true;
        cfg.check_comments = true;
        cfg.trim_text(false);
    }
    let mut scope: Vec<NsBinding> = initial_scope.to_vec();
    // Per open element: the element and how many bindings it pushed on `scope`.
    let mut stack: Vec<Element> = Vec::new();
    let mut pushed: Vec<usize> = Vec::new();
    let mut root: Option<Element> = None;
    let mut elements = 0usize;
    let mut first = true;
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| perr(format!("at byte {}: {e}", reader.error_position())))?;
        let was_first = first;
        first = false;
        match ev {
            Event::Decl(d) => {
                if !(document && was_first) {
                    return Err(XmlError::ProcessingInstructionRefused);
                }
                let v = d.version().map_err(|e| perr(format!("declaration: {e}")))?;
                if v.as_ref() != "1.0" {
                    return Err(perr("only XML 1.0 is accepted"));
                }
                if let Some(enc) = d.encoding() {
                    let enc = enc.map_err(|e| perr(format!("declaration: {e}")))?;
                    if !enc.eq_ignore_ascii_case("utf-8") {
                        return Err(perr("only UTF-8 is accepted"));
                    }
                }
            }
            Event::PI(_) => return Err(XmlError::ProcessingInstructionRefused),
            Event::DocType(_) => return Err(XmlError::DtdRefused),
            Event::Comment(_) => {}
            Event::Start(s) | Event::Empty(s) if root.is_some() => {
                let _ = s;
                return Err(perr("more than one root element"));
            }
            Event::Start(s) => {
                elements += 1;
                if elements > limits.max_elements {
                    return Err(XmlError::LimitExceeded("element count"));
                }
                if stack.len() + 1 > limits.max_depth {
                    return Err(XmlError::LimitExceeded("nesting depth"));
                }
                let (el, n) = build_element(&s, &mut scope, limits)?;
                stack.push(el);
                pushed.push(n);
            }
            Event::Empty(s) => {
                elements += 1;
                if elements > limits.max_elements {
                    return Err(XmlError::LimitExceeded("element count"));
                }
                if stack.len() + 1 > limits.max_depth {
                    return Err(XmlError::LimitExceeded("nesting depth"));
                }
                let (el, n) = build_element(&s, &mut scope, limits)?;
                scope.truncate(scope.len() - n);
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Node::Element(el)),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or_else(|| perr("unbalanced end tag"))?;
                let n = pushed.pop().unwrap_or(0);
                scope.truncate(scope.len().saturating_sub(n));
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Node::Element(el)),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let raw: &str = &t;
                if raw.contains(']') && raw.contains("]]>") {
                    return Err(perr("']]>' in character data"));
                }
                let text = normalize_eol(raw);
                check_chars(&text)?;
                if stack.is_empty() {
                    if !text.chars().all(|c| matches!(c, ' ' | '\t' | '\n')) {
                        return Err(perr("text outside the root element"));
                    }
                } else {
                    push_text(&mut stack, &text);
                }
            }
            Event::CData(c) => {
                if stack.is_empty() {
                    return Err(perr("CDATA outside the root element"));
                }
                let inner = c.into_inner();
                let text = normalize_eol(&inner);
                check_chars(&text)?;
                push_text(&mut stack, &text);
            }
            Event::GeneralRef(r) => {
                if stack.is_empty() {
                    return Err(perr("reference outside the root element"));
                }
                let c = resolve_ref(&r)?;
                let mut buf = [0u8; 4];
                push_text(&mut stack, c.encode_utf8(&mut buf));
            }
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(perr("unclosed element at end of input"));
    }
    root.ok_or_else(|| perr("no root element"))
}

/// Escapes text content as canonical XML does (`&`, `<`, `>`, CR).
pub fn escape_text(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            _ => out.push(c),
        }
    }
}

/// Escapes an attribute value as canonical XML does (`&`, `<`, `"`, TAB, LF, CR).
pub fn escape_attr(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            _ => out.push(c),
        }
    }
}

fn qname(prefix: Option<&str>, local: &str, out: &mut String) {
    if let Some(p) = prefix {
        out.push_str(p);
        out.push(':');
    }
    out.push_str(local);
}

/// Serializes an element as written (own namespace declarations, attributes in source order).
/// The result re-parses to the same tree in the same namespace context.
pub fn serialize_element(el: &Element, out: &mut String) {
    out.push('<');
    qname(el.prefix.as_deref(), &el.local, out);
    for (p, u) in &el.ns_decls {
        match p {
            Some(p) => {
                out.push_str(" xmlns:");
                out.push_str(p);
            }
            None => out.push_str(" xmlns"),
        }
        out.push_str("=\"");
        escape_attr(u, out);
        out.push('"');
    }
    for a in &el.attrs {
        out.push(' ');
        qname(a.prefix.as_deref(), &a.local, out);
        out.push_str("=\"");
        escape_attr(&a.value, out);
        out.push('"');
    }
    if el.children.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    for c in &el.children {
        match c {
            Node::Element(e) => serialize_element(e, out),
            Node::Text(t) => escape_text(t, out),
        }
    }
    out.push_str("</");
    qname(el.prefix.as_deref(), &el.local, out);
    out.push('>');
}

/// Serializes a document (no XML declaration; UTF-8).
pub fn serialize(doc: &Document) -> String {
    let mut out = String::new();
    serialize_element(&doc.root, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_doctype_is_refused_even_without_entities() {
        assert!(matches!(
            parse("<!DOCTYPE a><a/>"),
            Err(XmlError::DtdRefused)
        ));
    }

    #[test]
    fn an_undefined_entity_reference_is_refused() {
        assert!(matches!(
            parse("<a>&foo;</a>"),
            Err(XmlError::EntityRefused(_))
        ));
        assert!(matches!(
            parse("<a b=\"&foo;\"/>"),
            Err(XmlError::EntityRefused(_))
        ));
    }

    #[test]
    fn processing_instructions_are_refused_but_the_declaration_is_accepted() {
        assert!(parse("<?xml version=\"1.0\" encoding=\"UTF-8\"?><a/>").is_ok());
        assert!(matches!(
            parse("<?xml-stylesheet href=\"x\"?><a/>"),
            Err(XmlError::ProcessingInstructionRefused)
        ));
        assert!(matches!(
            parse("<a><?pi x?></a>"),
            Err(XmlError::ProcessingInstructionRefused)
        ));
    }

    #[test]
    fn a_non_utf8_encoding_declaration_is_refused() {
        assert!(parse("<?xml version=\"1.0\" encoding=\"Shift_JIS\"?><a/>").is_err());
    }

    #[test]
    fn limits_on_depth_attributes_and_size_are_enforced() {
        let deep = "<a>".repeat(65) + &"</a>".repeat(65);
        assert!(matches!(parse(&deep), Err(XmlError::LimitExceeded(_))));
        let ok = "<a>".repeat(64) + &"</a>".repeat(64);
        assert!(parse(&ok).is_ok());
        let attrs: String = (0..65).map(|i| format!(" a{i}=\"x\"")).collect();
        assert!(matches!(
            parse(&format!("<a{attrs}/>")),
            Err(XmlError::LimitExceeded(_))
        ));
        let small = Limits {
            max_bytes: 10,
            ..Limits::default()
        };
        assert!(matches!(
            parse_with_limits("<a>0123456789</a>", &small),
            Err(XmlError::LimitExceeded(_))
        ));
    }

    #[test]
    fn namespaces_resolve_and_unbound_prefixes_are_refused() {
        let d = parse(
            "<a xmlns=\"urn:d\" xmlns:p=\"urn:p\"><p:b p:x=\"1\" y=\"2\"/><c xmlns=\"\"/></a>",
        )
        .unwrap();
        assert_eq!(d.root.ns.as_deref(), Some("urn:d"));
        let kids: Vec<_> = d.root.child_elements().collect();
        assert_eq!(kids[0].ns.as_deref(), Some("urn:p"));
        assert_eq!(kids[0].attrs[0].ns.as_deref(), Some("urn:p"));
        assert_eq!(kids[0].attrs[1].ns, None);
        assert_eq!(kids[1].ns, None);
        assert!(parse("<q:a/>").is_err());
        assert!(parse("<a xmlns:p=\"urn:x\" xmlns:q=\"urn:x\" p:b=\"1\" q:b=\"2\"/>").is_err());
    }

    #[test]
    fn text_and_attribute_values_are_normalized_like_an_xml_processor() {
        let d = parse("<a b=\"x\ty&#9;\r\nz\">1\r\n2\r3&#xD;&lt;<![CDATA[<&>]]></a>").unwrap();
        assert_eq!(d.root.attr("b"), Some("x y\t z"));
        assert_eq!(d.root.text(), "1\n2\n3\r<<&>");
    }

    #[test]
    fn japanese_element_and_attribute_names_are_accepted() {
        let d = parse("<料金 種別=\"上水道\"><氏名/></料金>").unwrap();
        assert_eq!(d.root.local, "料金");
        assert_eq!(d.root.attr("種別"), Some("上水道"));
    }

    #[test]
    fn malformed_documents_are_refused() {
        for bad in [
            "<a>",
            "<a></b>",
            "<a/><b/>",
            "text<a/>",
            "<a b=\"1\" b=\"2\"/>",
            "<a>\u{1}</a>",
            "<a>&#0;</a>",
            "<1a/>",
            "<a\"b/>",
            "<a:b:c xmlns:a=\"urn:a\"/>",
            "<a -x=\"1\"/>",
            "",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
