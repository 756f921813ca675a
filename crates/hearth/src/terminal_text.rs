//! Text that came from the network or from a file, made safe to print on a
//! terminal. A server (or a recording) chooses chat lines, names, zone
//! names and close reasons; printed raw, an escape sequence in them could
//! clear the screen, retitle the window, recolour what follows or draw a
//! fake line ("[whisper admin -> you] ..."), and a direction override could
//! reorder a line. Every print site of the CLI shows such text through
//! [`escaped`], which writes those characters as visible escapes instead
//! (or [`escaped_lines`], for a message that may span lines).

use std::fmt;

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// `text` as a terminal may show it: control characters (C0, DEL, C1),
/// format characters (bidi controls, zero-width characters, tags) and line
/// or paragraph separators written as `\n`, `\r`, `\t` or `\u{…}`; every
/// other character as it is.
pub fn escaped<T: fmt::Display>(text: T) -> Escaped<T> {
    Escaped {
        text,
        newlines: Newlines::Escaped,
    }
}

/// Like [`escaped`], but a newline stays a line break, and every line
/// after the first is indented: readable for a message that spans lines
/// (a parser's error with its excerpt of a file), and no line of it can
/// pass for one of the program's own.
pub fn escaped_lines<T: fmt::Display>(text: T) -> Escaped<T> {
    Escaped {
        text,
        newlines: Newlines::Indented,
    }
}

/// See [`escaped`] and [`escaped_lines`].
pub struct Escaped<T> {
    text: T,
    newlines: Newlines,
}

#[derive(Clone, Copy)]
enum Newlines {
    Escaped,
    Indented,
}

impl<T: fmt::Display> fmt::Display for Escaped<T> {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        let mut writer = EscapingWriter {
            out,
            newlines: self.newlines,
        };
        // Escaping as the text is written: no copy of it, whatever its size.
        // `{:#}` passes on (an anyhow error then shows its causes).
        if writer.out.alternate() {
            write!(writer, "{:#}", self.text)
        } else {
            write!(writer, "{}", self.text)
        }
    }
}

struct EscapingWriter<'a, 'b> {
    out: &'a mut fmt::Formatter<'b>,
    newlines: Newlines,
}

impl fmt::Write for EscapingWriter<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut plain_from = 0;
        for (at, c) in text.char_indices() {
            if !moves_the_terminal(c) {
                continue;
            }
            self.out.write_str(&text[plain_from..at])?;
            match (c, self.newlines) {
                ('\n', Newlines::Indented) => self.out.write_str("\n    ")?,
                ('\n', Newlines::Escaped) => self.out.write_str("\\n")?,
                ('\r', _) => self.out.write_str("\\r")?,
                ('\t', _) => self.out.write_str("\\t")?,
                (other, _) => write!(self.out, "\\u{{{:x}}}", u32::from(other))?,
            }
            plain_from = at + c.len_utf8();
        }
        self.out.write_str(&text[plain_from..])
    }
}

/// Whether a character can act on the terminal or on how a line reads
/// rather than show as itself.
fn moves_the_terminal(c: char) -> bool {
    // Cc is C0, DEL and C1 (U+009B is CSI on its own).
    c.is_control()
        || matches!(
            c.general_category(),
            GeneralCategory::Format
                | GeneralCategory::LineSeparator
                | GeneralCategory::ParagraphSeparator
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(text: &str) -> String {
        escaped(text).to_string()
    }

    #[test]
    fn terminal_sequences_show_as_escapes() {
        assert_eq!(shown("\u{1b}[2Jgone"), "\\u{1b}[2Jgone");
        assert_eq!(shown("\u{1b}]0;title\u{7}"), "\\u{1b}]0;title\\u{7}");
        assert_eq!(shown("\u{9b}31m red"), "\\u{9b}31m red");
        assert_eq!(shown("a\u{7f}b"), "a\\u{7f}b");
        assert_eq!(
            shown("hi\r\n[whisper admin -> you] x\t"),
            "hi\\r\\n[whisper admin -> you] x\\t"
        );
        assert_eq!(shown("\0"), "\\u{0}");
    }

    #[test]
    fn bidi_and_invisible_characters_show_as_escapes() {
        for c in [
            '\u{202e}',
            '\u{2066}',
            '\u{2069}',
            '\u{200e}',
            '\u{061c}',
            '\u{200b}',
            '\u{feff}',
            '\u{00ad}',
            '\u{180e}',
            '\u{e0041}',
            '\u{2028}',
            '\u{2029}',
        ] {
            assert_eq!(
                shown(&format!("a{c}b")),
                format!("a\\u{{{:x}}}b", u32::from(c))
            );
        }
    }

    #[test]
    fn ordinary_text_is_unchanged() {
        for text in [
            "hello, meadow",
            "psst ✨ café Ålice",
            "東京 مرحبا שלום",
            "a \\u{1b} typed out",
            "",
        ] {
            assert_eq!(shown(text), text);
        }
    }

    #[test]
    fn escaped_lines_keeps_line_breaks_but_indents_them() {
        assert_eq!(
            escaped_lines("TOML parse error at line 1\n  |\n1 | a\u{1b}[2J\r\n").to_string(),
            "TOML parse error at line 1\n      |\n    1 | a\\u{1b}[2J\\r\n    "
        );
    }

    #[test]
    fn any_display_is_escaped_with_its_alternate_form() {
        let error = anyhow::anyhow!("closed: bad\u{1b}[0m").context("login failed");
        assert_eq!(escaped(&error).to_string(), "login failed");
        assert_eq!(
            format!("{:#}", escaped(&error)),
            "login failed: closed: bad\\u{1b}[0m"
        );
    }
}
