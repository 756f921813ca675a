//! The one way names are compared. Account names are ASCII (letters,
//! digits, '_' and '-'), so two names are the same name exactly when they
//! are equal ignoring ASCII case. Unicode lowercasing must not be used: it
//! maps look-alikes onto ASCII (U+212A KELVIN SIGN lowercases to 'k'), so a
//! name that registration would refuse could reach, lock or pose as an
//! account that exists. Here a non-ASCII character stays what it is, and a
//! key holding one matches no account.

/// The key under which a name is stored and looked up: the accounts'
/// `name_key` column, the world's directory of names.
pub fn name_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// Whether two names are the same name.
pub fn same_name(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_case_is_ignored() {
        assert_eq!(name_key("KAdmin"), "kadmin");
        assert!(same_name("KADMIN", "kadmin"));
    }

    #[test]
    fn look_alikes_are_other_names() {
        // KELVIN SIGN, which str::to_lowercase turns into 'k'.
        assert_ne!(name_key("\u{212A}admin"), "kadmin");
        assert!(!same_name("\u{212A}admin", "kadmin"));
        // LATIN CAPITAL I WITH DOT ABOVE lowercases to "i\u{307}".
        assert_ne!(name_key("\u{130}van"), "ivan");
        // Fullwidth letters.
        assert!(!same_name("\u{FF41}dmin", "admin"));
    }
}
