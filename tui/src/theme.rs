//! Colours and text attributes, in one place so `NO_COLOR` is honoured everywhere.
//!
//! Only the 16 named ANSI colours are used, so the TUI reads the same on a 16-colour console as in a
//! true-colour terminal. Without colour every distinction that matters is still carried by text or a
//! symbol (seat states have their own glyphs, the selected row has a `>` marker) and by attributes
//! (bold, reversed, underlined), which `NO_COLOR` allows. The caller builds the theme from the
//! environment ([`Theme::from_env`]); tests pass one explicitly, so they never depend on the environment.

use ratatui::style::{Color, Modifier, Style};

/// How the TUI styles its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Theme {
    color: bool,
}

impl Theme {
    /// Colours on: the 16 named ANSI colours plus attributes.
    pub fn colored() -> Self {
        Self { color: true }
    }

    /// No colour at all, attributes only (what `NO_COLOR` asks for).
    pub fn plain() -> Self {
        Self { color: false }
    }

    /// Plain when `NO_COLOR` is set to a non-empty value (<https://no-color.org>), coloured otherwise.
    pub fn from_env() -> Self {
        Self::for_no_color(std::env::var_os("NO_COLOR").as_deref())
    }

    /// The theme for a given value of `NO_COLOR`; split out of [`Theme::from_env`] so it can be tested.
    pub fn for_no_color(value: Option<&std::ffi::OsStr>) -> Self {
        match value {
            Some(v) if !v.is_empty() => Self::plain(),
            _ => Self::colored(),
        }
    }

    pub fn has_color(self) -> bool {
        self.color
    }

    fn fg(self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }

    pub(crate) fn normal(self) -> Style {
        Style::new()
    }

    /// Titles and the active tab.
    pub(crate) fn title(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    /// Table headers and field labels.
    pub(crate) fn header(self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }

    pub(crate) fn label(self) -> Style {
        self.fg(Color::Cyan)
    }

    /// Secondary text: ages, hints, unknown values.
    pub(crate) fn dim(self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new().add_modifier(Modifier::DIM)
        }
    }

    /// The selected row or item.
    pub(crate) fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
    }

    /// Active filters and the search text.
    pub(crate) fn active(self) -> Style {
        self.fg(Color::Magenta).add_modifier(Modifier::BOLD)
    }

    pub(crate) fn good(self) -> Style {
        self.fg(Color::Green)
    }

    pub(crate) fn warn(self) -> Style {
        self.fg(Color::Yellow)
    }

    pub(crate) fn bad(self) -> Style {
        self.fg(Color::Red)
    }

    /// Errors: red where there is colour, bold either way so they stand out without it.
    pub(crate) fn error(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }

    /// Today's line in the week of opening hours.
    pub(crate) fn today(self) -> Style {
        self.fg(Color::Green)
            .add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    }

    /// The status bar.
    pub(crate) fn bar(self) -> Style {
        if self.color {
            Style::new().fg(Color::Black).bg(Color::Gray)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }

    /// The offline indicator in the status bar.
    pub(crate) fn offline(self) -> Style {
        if self.color {
            Style::new()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        }
    }

    /// Coastlines on the map.
    pub(crate) fn map_land(self) -> Color {
        if self.color {
            Color::Gray
        } else {
            Color::Reset
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn no_color_set_and_non_empty_turns_colour_off() {
        assert!(!Theme::for_no_color(Some(OsStr::new("1"))).has_color());
        assert!(Theme::for_no_color(Some(OsStr::new(""))).has_color());
        assert!(Theme::for_no_color(None).has_color());
    }

    #[test]
    fn plain_theme_sets_no_colours() {
        let t = Theme::plain();
        for s in [
            t.title(),
            t.header(),
            t.dim(),
            t.selected(),
            t.good(),
            t.bad(),
            t.error(),
            t.today(),
            t.bar(),
            t.offline(),
        ] {
            assert_eq!(s.fg, None);
            assert_eq!(s.bg, None);
        }
    }
}
