//! What a chat message may contain. Characters are refused by class (their
//! Unicode general category, from `unicode-properties`), not by a list of
//! tricks seen so far: a list always has gaps, and every gap is a way to
//! hide a word from the game's filter, to make one message pose as another
//! (a name reversed, a fake system line) or to send a message that looks
//! empty.
//!
//! Refused: control characters (Cc), format characters (Cf: direction
//! controls, zero-width characters, soft hyphens, tag characters),
//! unassigned code points and noncharacters (Cn), private-use characters
//! (Co), line and paragraph separators (Zl, Zp), and the characters that
//! draw nothing although their category says letter, mark or symbol (the
//! fillers below).
//!
//! Two exceptions keep ordinary emoji working, each only where an emoji
//! needs it:
//! - U+200D ZERO WIDTH JOINER (Cf) between two emoji: it builds the family,
//!   profession and flag sequences every phone keyboard sends. Anywhere
//!   else (inside a word) it is invisible and only hides the word.
//! - U+FE0E and U+FE0F (text and emoji presentation) right after an emoji
//!   character: keyboards send U+2764 U+FE0F for a red heart and digit,
//!   U+FE0F, U+20E3 for a keycap. Alone they are invisible. The other
//!   variation selectors (U+FE00–FE0D, U+E0100–E01EF) select glyph variants
//!   of mathematical symbols and CJK ideographs; keyboards and input methods
//!   do not send them in chat, and after any letter they would hide a word
//!   from a filter just as well, so they are refused everywhere.
//!
//! Known cost: emoji tag sequences (the flags of England, Scotland and
//! Wales) are built from tag characters, which also smuggle whole hidden
//! ASCII texts: they are refused, and those three flags with them. U+200C
//! ZERO WIDTH NON-JOINER is refused too, although Persian spelling uses it
//! between letters: telling that use from a hidden break in a Latin word
//! needs the script of each letter.

use unicode_properties::{GeneralCategory, UnicodeEmoji, UnicodeGeneralCategory};

/// Joins emoji into one picture (family, profession, rainbow flag).
const ZERO_WIDTH_JOINER: char = '\u{200D}';
/// Asks for the text presentation of the emoji before it.
const TEXT_PRESENTATION: char = '\u{FE0E}';
/// Asks for the emoji presentation of the character before it.
const EMOJI_PRESENTATION: char = '\u{FE0F}';

/// Hearth's own checks (the decoder already bounded the length and checked
/// UTF-8): the text to deliver, trimmed, or why not.
pub fn check_text(text: &str) -> Result<&str, &'static str> {
    let text = text.trim();
    if text.is_empty() {
        return Err("the message is empty");
    }
    let mut before = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        check_char(before, c, chars.peek().copied())?;
        before = Some(c);
    }
    Ok(text)
}

/// Whether `c` may stand between `before` and `after` (`None`: the start
/// or the end of the text); if not, why.
fn check_char(before: Option<char>, c: char, after: Option<char>) -> Result<(), &'static str> {
    match c {
        ZERO_WIDTH_JOINER => {
            if before.is_some_and(ends_emoji) && after.is_some_and(is_pictograph) {
                Ok(())
            } else {
                Err("a zero-width joiner is allowed only between two emoji")
            }
        }
        TEXT_PRESENTATION | EMOJI_PRESENTATION => {
            if before.is_some_and(|b| b.is_emoji_char()) {
                Ok(())
            } else {
                Err("a variation selector is allowed only right after an emoji")
            }
        }
        _ if is_filler(c) => Err("blank filler characters are not allowed in chat"),
        _ => match c.general_category() {
            GeneralCategory::Control => Err("control characters are not allowed in chat"),
            GeneralCategory::Format => {
                Err("invisible or direction-changing characters are not allowed in chat")
            }
            GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator => {
                Err("line breaks are not allowed in chat: send one line per message")
            }
            GeneralCategory::PrivateUse => {
                Err("private-use characters are not allowed in chat: other players cannot see them")
            }
            GeneralCategory::Unassigned | GeneralCategory::Surrogate => {
                Err("unassigned code points are not allowed in chat")
            }
            _ => Ok(()),
        },
    }
}

/// Characters that draw nothing (or nothing but blank) although their
/// category is a letter, a mark or a symbol: Unicode's default-ignorable
/// code points outside Cf and Cn, the blank braille pattern, and the
/// variation selectors other than the two emoji presentation ones.
fn is_filler(c: char) -> bool {
    matches!(
        c,
        // COMBINING GRAPHEME JOINER (Mn).
        '\u{034F}'
        // HANGUL CHOSEONG and JUNGSEONG FILLER (Lo).
        | '\u{115F}' | '\u{1160}'
        // KHMER VOWEL INHERENT AQ and AA (Mn).
        | '\u{17B4}' | '\u{17B5}'
        // MONGOLIAN FREE VARIATION SELECTORS ONE to FOUR and the VOWEL
        // SEPARATOR (Mn, and Cf for U+180E).
        | '\u{180B}'..='\u{180F}'
        // BRAILLE PATTERN BLANK (So).
        | '\u{2800}'
        // HANGUL FILLER and HALFWIDTH HANGUL FILLER (Lo).
        | '\u{3164}' | '\u{FFA0}'
        // VARIATION SELECTORS 1 to 14 and 17 to 256 (Mn).
        | '\u{FE00}'..='\u{FE0D}'
        | '\u{E0100}'..='\u{E01EF}'
    )
}

/// A character an emoji ZWJ sequence may join from: an emoji, or the emoji
/// presentation selector that follows one (itself checked to follow one).
fn ends_emoji(c: char) -> bool {
    c == EMOJI_PRESENTATION || is_pictograph(c)
}

/// An emoji other than the ASCII ones (digits, `#` and `*` are emoji
/// characters too, for keycaps): a joiner between two digits would be
/// invisible.
fn is_pictograph(c: char) -> bool {
    !c.is_ascii() && c.is_emoji_char()
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    #[test]
    fn ordinary_text_passes_trimmed() {
        assert_eq!(check_text("  hi "), Ok("hi"));
        for text in [
            "héllo wörld ✓",
            "naïve café, Ærøskøbing, Ŝ̌",
            "你好，世界！こんにちは 안녕하세요",
            "مرحبا بالعالم",
            "שלום עולם",
            "Привет, мир",
            "नमस्ते दुनिया",
            "a  b\u{00A0}c\u{3000}d",
        ] {
            assert_eq!(check_text(text), Ok(text));
        }
    }

    #[test]
    fn emoji_pass_with_their_joiners_and_selectors() {
        for text in [
            "gg 🎉",
            // Family: man ZWJ woman ZWJ girl ZWJ boy.
            "👨\u{200D}👩\u{200D}👧\u{200D}👦",
            // Rainbow flag: white flag VS16 ZWJ rainbow.
            "🏳\u{FE0F}\u{200D}🌈",
            // Technologist, medium skin tone: person, modifier, ZWJ, laptop.
            "🧑\u{1F3FD}\u{200D}💻",
            // Pirate flag: black flag ZWJ skull and crossbones VS16.
            "🏴\u{200D}☠\u{FE0F}",
            // Red heart, and the heart as text.
            "I \u{2764}\u{FE0F} it, \u{2764}\u{FE0E}",
            // Keycap one.
            "1\u{FE0F}\u{20E3}",
            // Flag of France (regional indicators).
            "🇫🇷",
        ] {
            assert_eq!(check_text(text), Ok(text), "{text:?}");
        }
    }

    #[test]
    fn every_character_named_in_issue_25_is_refused() {
        for c in [
            '\u{061C}', // ARABIC LETTER MARK (bidi)
            '\u{180E}', // MONGOLIAN VOWEL SEPARATOR
            '\u{00AD}', // SOFT HYPHEN
            '\u{E0000}',
            '\u{E0001}', // LANGUAGE TAG
            '\u{E0020}', // TAG SPACE
            '\u{E0041}', // TAG LATIN CAPITAL LETTER A
            '\u{E007F}', // CANCEL TAG
            '\u{3164}',  // HANGUL FILLER
            '\u{115F}',
            '\u{1160}',
            '\u{FFA0}',
            '\u{2800}', // BRAILLE PATTERN BLANK
            '\u{180B}',
            '\u{180C}',
            '\u{180D}',
            '\u{180F}',
            '\u{FE00}',
            '\u{FE0E}',
            '\u{FE0F}',
            '\u{E0100}',
            '\u{E01EF}',
            '\u{200D}',
            '\u{200B}',
            '\u{200C}',
            '\u{200E}',
            '\u{202E}',
            '\u{2066}',
            '\u{FEFF}',
            '\u{2028}', // LINE SEPARATOR
            '\u{2029}', // PARAGRAPH SEPARATOR
            '\u{E000}', // private use
            '\u{F8FF}',
            '\u{F0000}',
            '\u{0378}', // unassigned
            '\u{FFFF}', // noncharacter
            '\u{7}',
            '\u{1B}',
            '\u{85}',
        ] {
            for text in [
                format!("a{c}b"),
                format!("{c}"),
                format!("{c}x"),
                format!("x{c}"),
            ] {
                assert!(
                    check_text(&text).is_err() || !check_text(&text).unwrap().contains(c),
                    "U+{:04X} in {text:?} was accepted",
                    c as u32
                );
            }
            assert!(
                check_text(&format!("a{c}b")).is_err(),
                "U+{:04X} inside a word",
                c as u32
            );
        }
    }

    #[test]
    fn joiners_and_selectors_are_refused_away_from_emoji() {
        for text in [
            "bad\u{200D}word",
            "\u{200D}🎉",
            "🎉\u{200D}",
            "🎉\u{200D} x",
            "1\u{200D}2",
            "a\u{FE0F}",
            "\u{FE0F}🎉",
            "🎉 \u{FE0F}",
            // An emoji followed by tags: the flag of England.
            "🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}",
            // A selector meant for an ideograph.
            "葛\u{E0100}",
        ] {
            assert!(check_text(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        assert_eq!(check_text("   "), Err("the message is empty"));
        assert_eq!(
            check_text("a\u{7}b"),
            Err("control characters are not allowed in chat")
        );
        assert!(check_text("evil\u{202E}txt.exe")
            .unwrap_err()
            .contains("direction-changing"));
        assert!(check_text("a\u{3164}b").unwrap_err().contains("filler"));
        assert!(check_text("a\u{2028}b").unwrap_err().contains("one line"));
        assert!(check_text("a\u{E000}b")
            .unwrap_err()
            .contains("private-use"));
        assert!(check_text("a\u{0378}b").unwrap_err().contains("unassigned"));
    }

    /// Every category the chat refuses, or a filler.
    fn never_allowed(c: char) -> bool {
        is_filler(c)
            || matches!(
                c.general_category(),
                GeneralCategory::Control
                    | GeneralCategory::Format
                    | GeneralCategory::LineSeparator
                    | GeneralCategory::ParagraphSeparator
                    | GeneralCategory::PrivateUse
                    | GeneralCategory::Unassigned
                    | GeneralCategory::Surrogate
            )
    }

    #[test]
    fn no_character_of_a_refused_class_passes_inside_a_word() {
        // Every Unicode scalar value, once: refused exactly when its class
        // is, or when it is a joiner or selector with no emoji beside it.
        let mut refused = 0u32;
        for c in (0..=char::MAX as u32).filter_map(char::from_u32) {
            let text = format!("a{c}b");
            let expected = never_allowed(c) || matches!(c, '\u{200D}' | '\u{FE0E}' | '\u{FE0F}');
            assert_eq!(
                check_text(&text).is_err(),
                expected,
                "U+{:04X} ({:?})",
                c as u32,
                c.general_category()
            );
            refused += u32::from(expected);
        }
        // Cn and Co alone hold several hundred thousand code points.
        assert!(refused > 900_000, "{refused}");
    }

    /// Characters of the refused classes, for sampling.
    fn refused_characters() -> Vec<char> {
        (0..=char::MAX as u32)
            .filter_map(char::from_u32)
            .filter(|&c| never_allowed(c))
            .collect()
    }

    /// Text mixing letters, spaces, emoji, joiners, selectors, any
    /// character at all and characters of the refused classes.
    fn mixed_text() -> impl Strategy<Value = String> {
        let refused = refused_characters();
        let piece = prop_oneof![
            3 => prop::sample::select(vec!['a', 'z', ' ', 'é', '你', 'ب', '1', '#']),
            2 => prop::sample::select(vec!['🎉', '👨', '👩', '\u{2764}', '\u{1F3FD}', '🏳']),
            2 => prop::sample::select(vec!['\u{200D}', '\u{FE0E}', '\u{FE0F}', '\u{20E3}']),
            2 => prop::sample::select(refused),
            1 => any::<char>(),
        ];
        prop::collection::vec(piece, 0..24).prop_map(|chars| chars.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Whatever the text, what is accepted holds no character of a
        /// refused class, and a joiner or presentation selector only where
        /// an emoji needs it.
        #[test]
        fn accepted_text_holds_no_refused_character(text in mixed_text()) {
            if let Ok(accepted) = check_text(&text) {
                prop_assert!(!accepted.is_empty());
                let chars: Vec<char> = accepted.chars().collect();
                for (i, &c) in chars.iter().enumerate() {
                    let before = i.checked_sub(1).map(|j| chars[j]);
                    let after = chars.get(i + 1).copied();
                    match c {
                        '\u{200D}' => {
                            prop_assert!(before.is_some_and(|b| b == '\u{FE0F}' || (!b.is_ascii() && b.is_emoji_char())), "{:?}", accepted);
                            prop_assert!(after.is_some_and(|a| !a.is_ascii() && a.is_emoji_char()), "{:?}", accepted);
                        }
                        '\u{FE0E}' | '\u{FE0F}' => {
                            prop_assert!(before.is_some_and(|b| b.is_emoji_char()), "{:?}", accepted);
                        }
                        _ => prop_assert!(!never_allowed(c), "U+{:04X} in {:?}", c as u32, accepted),
                    }
                }
            }
        }
    }
}
