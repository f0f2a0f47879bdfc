//! Small text helpers shared by the views: word wrapping, three-state facts, prices and speeds.

use deskmesh_crdt_model::listing::Offer;
use ratatui::text::{Line, Span};

use crate::theme::Theme;

/// Wrap `text` at word boundaries into lines of at most `width` columns; words longer than a line are cut.
pub(crate) fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut out = Vec::new();
    for para in text.lines() {
        let mut line = String::new();
        let mut w = 0;
        for word in para.split_whitespace() {
            let ww = Span::raw(word).width();
            if w > 0 && w + 1 + ww > width {
                out.push(std::mem::take(&mut line));
                w = 0;
            }
            if w > 0 {
                line.push(' ');
                w += 1;
            }
            if ww > width {
                // A word longer than the line: cut it by characters.
                for c in word.chars() {
                    if w >= width {
                        out.push(std::mem::take(&mut line));
                        w = 0;
                    }
                    line.push(c);
                    w += 1;
                }
            } else {
                line.push_str(word);
                w += ww;
            }
        }
        out.push(line);
    }
    out
}

/// A known yes or no, or "unknown" (dim): unknown is never shown as no.
pub(crate) fn yes_no(v: Option<bool>, theme: Theme) -> Span<'static> {
    match v {
        Some(true) => Span::styled("yes", theme.good()),
        Some(false) => Span::raw("no"),
        None => Span::styled("unknown", theme.dim()),
    }
}

/// Any known value as text, or "unknown" (dim).
pub(crate) fn known<T: ToString>(v: Option<T>, theme: Theme) -> Span<'static> {
    match v {
        Some(v) => Span::raw(v.to_string()),
        None => Span::styled("unknown", theme.dim()),
    }
}

/// `label: value` with the label padded to `pad` columns.
pub(crate) fn field(
    label: &str,
    pad: usize,
    value: Vec<Span<'static>>,
    theme: Theme,
) -> Line<'static> {
    let mut spans = vec![Span::styled(format!("  {label:<pad$} "), theme.label())];
    spans.extend(value);
    Line::from(spans)
}

/// "18 EUR", "12.50 EUR", "free".
pub(crate) fn price(o: &Offer) -> String {
    if o.price == 0.0 {
        "free".to_string()
    } else if o.price.fract() == 0.0 {
        format!("{:.0} {}", o.price, o.currency)
    } else {
        format!("{:.2} {}", o.price, o.currency)
    }
}

/// A speed in Mbit/s without a needless decimal.
pub(crate) fn mbps(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// "1 seat", "4 seats".
pub(crate) fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    match n.into() {
        1 => format!("1 {one}"),
        n => format!("{n} {many}"),
    }
}

/// "hot_desk" as "hot desk".
pub(crate) fn words(s: &str) -> String {
    s.replace('_', " ")
}

/// The last `width` columns of `s` (for a text field that is being typed into).
pub(crate) fn tail(s: &str, width: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    chars[chars.len().saturating_sub(width)..].iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_by_words_and_cuts_long_words() {
        assert_eq!(
            wrap("one two three four", 9),
            vec!["one two", "three", "four"]
        );
        assert_eq!(wrap("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(wrap("a\n\nb", 10), vec!["a", "", "b"]);
    }

    #[test]
    fn unknown_is_not_no() {
        let t = Theme::plain();
        assert_eq!(yes_no(None, t).content, "unknown");
        assert_eq!(yes_no(Some(false), t).content, "no");
        assert_eq!(known(None::<u32>, t).content, "unknown");
    }
}
