//! Exclusive XML Canonicalization 1.0 without comments (W3C xml-exc-c14n), SEC-XML-SIG-1 /
//! 表 4-8.
//!
//! Input is an element subtree of a parsed [`Document`](super::tree::Document) plus the
//! namespace bindings in scope at its parent; optionally one element of the subtree is left
//! out (the enveloped-signature transform). Rules implemented:
//! - a namespace declaration is rendered on an element only when the prefix is *visibly
//!   utilized* there (the element's own prefix or the default namespace for an unprefixed
//!   element, the prefix of one of its attributes) or listed in the InclusiveNamespaces
//!   PrefixList (`#default` = default namespace), and the nearest output ancestor did not
//!   already render the same binding; `xmlns=""` is rendered only to undo a non-empty default
//!   rendered by an output ancestor; the `xml` prefix is never declared;
//! - namespace declarations sorted by prefix (default first), attributes by (namespace URI,
//!   local name) with unqualified attributes first; `xml:*` attributes are not inherited;
//! - empty elements are written as start/end tag pairs; text escapes `&` `<` `>` CR, attribute
//!   values escape `&` `<` `"` TAB LF CR; everything else (Japanese text included) is UTF-8
//!   as is; comments are not rendered (they are not kept by the parser anyway).

use super::tree::{Element, Node, NsBinding, XML_NS, escape_attr, escape_text};

/// Canonicalizes `el` (exclusive c14n 1.0 without comments).
///
/// `inherited` are the bindings in scope at `el`'s parent; `inclusive_prefixes` the
/// InclusiveNamespaces PrefixList (tokens, `#default` for the default namespace); `exclude`
/// an element of the subtree (compared by identity) left out with all its descendants.
pub fn canonicalize(
    el: &Element,
    inherited: &[NsBinding],
    inclusive_prefixes: &[String],
    exclude: Option<&Element>,
) -> String {
    let mut out = String::new();
    let mut scope: Vec<NsBinding> = inherited.to_vec();
    let mut rendered: Vec<NsBinding> = Vec::new();
    let incl: Vec<Option<&str>> = inclusive_prefixes
        .iter()
        .map(|p| {
            if p == "#default" {
                None
            } else {
                Some(p.as_str())
            }
        })
        .collect();
    render(el, &mut scope, &mut rendered, &incl, exclude, &mut out);
    out
}

fn lookup<'a>(bindings: &'a [NsBinding], prefix: Option<&str>) -> Option<&'a str> {
    bindings
        .iter()
        .rev()
        .find(|(p, _)| p.as_deref() == prefix)
        .map(|(_, u)| u.as_str())
}

fn render(
    el: &Element,
    scope: &mut Vec<NsBinding>,
    rendered: &mut Vec<NsBinding>,
    incl: &[Option<&str>],
    exclude: Option<&Element>,
    out: &mut String,
) {
    if exclude.is_some_and(|x| std::ptr::eq(x, el)) {
        return;
    }
    let scope_len = scope.len();
    scope.extend(el.ns_decls.iter().cloned());

    // Prefixes to consider: visibly utilized ones, then the inclusive list.
    let mut wanted: Vec<Option<&str>> = vec![el.prefix.as_deref()];
    for a in &el.attrs {
        if let Some(p) = a.prefix.as_deref() {
            wanted.push(Some(p));
        }
    }
    for p in incl {
        // An inclusive prefix is rendered only if it is in scope (the default namespace,
        // when empty, is treated like the visibly-utilized case below).
        if p.is_none() || lookup(scope, *p).is_some() {
            wanted.push(*p);
        }
    }
    let mut decls: Vec<(Option<&str>, String)> = Vec::new();
    for p in wanted {
        if p == Some("xml") || decls.iter().any(|(q, _)| *q == p) {
            continue;
        }
        let uri = lookup(scope, p).unwrap_or("");
        let already = lookup(rendered, p).unwrap_or("");
        if uri != already {
            decls.push((p, uri.to_string()));
        }
    }
    decls.sort_by(|a, b| a.0.unwrap_or("").cmp(b.0.unwrap_or("")));

    out.push('<');
    push_qname(el.prefix.as_deref(), &el.local, out);
    for (p, u) in &decls {
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
    let mut attrs: Vec<_> = el.attrs.iter().collect();
    attrs.sort_by(|a, b| {
        let ka = (a.ns.as_deref().unwrap_or(""), a.local.as_str());
        let kb = (b.ns.as_deref().unwrap_or(""), b.local.as_str());
        ka.cmp(&kb)
    });
    for a in attrs {
        out.push(' ');
        if a.ns.as_deref() == Some(XML_NS) {
            out.push_str("xml:");
        } else if let Some(p) = &a.prefix {
            out.push_str(p);
            out.push(':');
        }
        out.push_str(&a.local);
        out.push_str("=\"");
        escape_attr(&a.value, out);
        out.push('"');
    }
    out.push('>');

    let rendered_len = rendered.len();
    rendered.extend(decls.into_iter().map(|(p, u)| (p.map(str::to_string), u)));
    for c in &el.children {
        match c {
            Node::Element(e) => render(e, scope, rendered, incl, exclude, out),
            Node::Text(t) => escape_text(t, out),
        }
    }
    rendered.truncate(rendered_len);
    scope.truncate(scope_len);

    out.push_str("</");
    push_qname(el.prefix.as_deref(), &el.local, out);
    out.push('>');
}

fn push_qname(prefix: Option<&str>, local: &str, out: &mut String) {
    if let Some(p) = prefix {
        out.push_str(p);
        out.push(':');
    }
    out.push_str(local);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::xml::tree::parse;

    fn c14n(s: &str) -> String {
        let d = parse(s).unwrap();
        canonicalize(&d.root, &[], &[], None)
    }

    #[test]
    fn unused_namespace_declarations_are_dropped_and_used_ones_pushed_down() {
        assert_eq!(
            c14n("<a:r xmlns:a=\"urn:a\" xmlns:b=\"urn:b\"><c><b:d/></c></a:r>"),
            "<a:r xmlns:a=\"urn:a\"><c><b:d xmlns:b=\"urn:b\"></b:d></c></a:r>"
        );
    }

    #[test]
    fn attributes_are_sorted_by_namespace_uri_then_local_name() {
        assert_eq!(
            c14n("<e xmlns:z=\"urn:a\" xmlns:a=\"urn:z\" b=\"1\" a:x=\"2\" z:y=\"3\" a=\"4\"/>"),
            "<e xmlns:a=\"urn:z\" xmlns:z=\"urn:a\" a=\"4\" b=\"1\" z:y=\"3\" a:x=\"2\"></e>"
        );
    }

    #[test]
    fn special_characters_are_escaped_as_the_spec_says() {
        assert_eq!(
            c14n("<e a=\"&lt;&gt;&amp;&quot;'&#9;&#10;&#13;\">&lt;&gt;&amp;\"'&#13;</e>"),
            "<e a=\"&lt;>&amp;&quot;'&#x9;&#xA;&#xD;\">&lt;&gt;&amp;\"'&#xD;</e>"
        );
    }

    #[test]
    fn an_excluded_element_disappears_with_its_subtree() {
        let d = parse("<a><b><c/></b>x</a>").unwrap();
        let b = d.root.child_elements().next().unwrap();
        assert_eq!(canonicalize(&d.root, &[], &[], Some(b)), "<a>x</a>");
    }

    #[test]
    fn the_default_token_renders_the_in_scope_default_namespace_on_a_prefixed_apex() {
        let d = parse("<r xmlns=\"urn:d\"><a:s xmlns:a=\"urn:a\"><t/></a:s></r>").unwrap();
        let s = d.root.child_elements().next().unwrap();
        let inherited = d.root.ns_decls.clone();
        assert_eq!(
            canonicalize(s, &inherited, &["#default".into()], None),
            "<a:s xmlns=\"urn:d\" xmlns:a=\"urn:a\"><t></t></a:s>"
        );
        assert_eq!(
            canonicalize(s, &inherited, &[], None),
            "<a:s xmlns:a=\"urn:a\"><t xmlns=\"urn:d\"></t></a:s>"
        );
    }

    #[test]
    fn inclusive_prefixes_are_rendered_when_in_scope() {
        let d = parse("<a xmlns:p=\"urn:p\" xmlns=\"urn:d\"><b/></a>").unwrap();
        let b = d.root.child_elements().next().unwrap();
        let inherited = d.root.ns_decls.clone();
        assert_eq!(
            canonicalize(b, &inherited, &["p".into(), "q".into()], None),
            "<b xmlns=\"urn:d\" xmlns:p=\"urn:p\"></b>"
        );
    }
}
