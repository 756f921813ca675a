//! Identifiers for generated code: a schema's names (lowercase ASCII,
//! digits and '_') in the case each language expects, kept apart from the
//! language's reserved words and from each other.

use std::collections::BTreeSet;

/// `hand_size` -> `HandSize`: for types and enum variants. Leading
/// underscores are dropped; a name that would start with a digit gets one.
pub(crate) fn pascal(name: &str) -> String {
    let joined: String = name.split('_').map(capitalized).collect();
    match joined.chars().next() {
        None => "Unnamed".to_owned(),
        Some(first) if first.is_ascii_digit() => format!("_{joined}"),
        Some(_) => joined,
    }
}

/// `hand_size` -> `handSize`: for TypeScript members and functions.
/// Leading underscores are kept (`_private` stays `_private`).
pub(crate) fn camel(name: &str) -> String {
    let body = name.trim_start_matches('_');
    let leading = &name[..name.len() - body.len()];
    let mut parts = body.split('_').filter(|part| !part.is_empty());
    let first = parts.next().unwrap_or_default();
    let rest: String = parts.map(capitalized).collect();
    let joined = format!("{leading}{first}{rest}");
    if joined.chars().all(|c| c == '_') {
        return format!("{joined}unnamed");
    }
    joined
}

/// `hand__size_` -> `hand_size`: for Rust functions and fields, as the
/// `non_snake_case` lint wants them (no doubled underscores inside).
pub(crate) fn snake(name: &str) -> String {
    let body = name.trim_start_matches('_');
    let leading = &name[..name.len() - body.len()];
    let words: Vec<&str> = body.split('_').filter(|word| !word.is_empty()).collect();
    let joined = format!("{leading}{}", words.join("_"));
    if joined.chars().all(|c| c == '_') {
        return format!("{joined}unnamed");
    }
    joined
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// The identifiers of one namespace of generated code. A wanted name that
/// is a reserved word gets a `_` suffix (`type` -> `type_`); one already
/// taken gets a number (`handSize2`). Names are claimed in the schema's
/// order, so the same schema always gives the same names.
pub(crate) struct Scope {
    /// The language's reserved words and the names the generated code
    /// itself uses in this namespace.
    reserved: BTreeSet<&'static str>,
    /// Names handed out so far.
    taken: BTreeSet<String>,
}

impl Scope {
    /// `reserved`: lists of words separated by whitespace.
    pub(crate) fn new(reserved: &[&'static str]) -> Self {
        Self {
            reserved: reserved
                .iter()
                .flat_map(|words| words.split_whitespace())
                .collect(),
            taken: BTreeSet::new(),
        }
    }

    /// Reserves `names` as well.
    pub(crate) fn reserving(mut self, names: &[&'static str]) -> Self {
        self.reserved.extend(names);
        self
    }

    pub(crate) fn claim(&mut self, wanted: String) -> String {
        let base = if self.reserved.contains(wanted.as_str()) {
            wanted + "_"
        } else {
            wanted
        };
        let mut name = base.clone();
        let mut number = 2;
        while self.reserved.contains(name.as_str()) || self.taken.contains(&name) {
            name = format!("{base}{number}");
            number += 1;
        }
        self.taken.insert(name.clone());
        name
    }
}

/// Words a TypeScript binding (an ES module, so strict mode) may not be:
/// keywords, strict mode's reserved words, `arguments` and `eval`; and
/// `constructor` (a class's own), `type` (the messages' discriminant) and
/// `undefined`. Type names (`number`, `string`) are not reserved: the
/// generated types are PascalCase.
pub(crate) const TS_RESERVED: &str = "\
    arguments await break case catch class const constructor continue debugger default \
    delete do else enum eval export extends false finally for function if implements import \
    in instanceof interface let new null package private protected public return static \
    super switch this throw true try type typeof undefined var void while with yield";

/// Globals the generated TypeScript refers to: a type of the same name
/// would hide them.
pub(crate) const TS_GLOBALS: &str = "\
    Array BigInt Boolean Error JSON Map Math Number Object Promise RangeError String Symbol \
    TypeError Uint8Array";

/// Rust's keywords (strict, reserved and weak ones that cannot name an
/// item), and `_`.
pub(crate) const RUST_KEYWORDS: &str = "\
    _ abstract as async await become box break const continue crate do dyn else enum extern \
    false final fn for gen if impl in let loop macro match mod move mut override priv pub \
    ref return self Self static struct super trait true try type typeof union unsafe unsized \
    use virtual where while yield";

/// Types of the prelude and of the imports the generated Rust uses: a type
/// of the same name would hide them.
pub(crate) const RUST_TYPES: &str = "\
    ActorId Arc Box Clone Copy Debug Eq GameActor GameEvent GameReplica Hash Iterator None \
    Ok Option PartialEq Result Schema Some String Value ValueError Vec Err bool f64 i16 i32 \
    i64 i8 str u16 u32 u64 u8 usize";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases() {
        assert_eq!(pascal("hand_size"), "HandSize");
        assert_eq!(pascal("_private"), "Private");
        assert_eq!(pascal("a__b"), "AB");
        assert_eq!(pascal("_1st"), "_1st");
        assert_eq!(pascal("_"), "Unnamed");
        assert_eq!(camel("hand_size"), "handSize");
        assert_eq!(camel("_private_part"), "_privatePart");
        assert_eq!(camel("a__b_"), "aB");
        assert_eq!(camel("__"), "__unnamed");
        assert_eq!(snake("hand_size"), "hand_size");
        assert_eq!(snake("a__b_"), "a_b");
        assert_eq!(snake("__x__y"), "__x_y");
        assert_eq!(snake("_"), "_unnamed");
    }

    #[test]
    fn reserved_words_get_a_suffix_and_repeats_a_number() {
        let mut scope = Scope::new(&[TS_RESERVED, "id"]);
        assert_eq!(scope.claim("type".into()), "type_");
        assert_eq!(scope.claim("type_".into()), "type_2");
        assert_eq!(scope.claim("id".into()), "id_");
        assert_eq!(scope.claim("handSize".into()), "handSize");
        assert_eq!(scope.claim("handSize".into()), "handSize2");
        assert_eq!(scope.claim("handSize2".into()), "handSize22");
    }
}
