//! How input from outside is shown back in messages: never whole when it is long (a 1 MB queue
//! name must not come back in a 1 MB error), always on one line.

/// The longest input shown whole; longer input is cut and its length said.
pub const SHOWN_CHARS: usize = 64;

/// `text` as an error message shows it: whole up to 64 characters, else its first 64 and how
/// long it was.
pub fn clip(text: &str) -> String {
    match text.char_indices().nth(SHOWN_CHARS) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}… ({} bytes)", &text[..cut], text.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_input_is_cut_and_measured_short_input_is_whole() {
        assert_eq!(clip("default"), "default");
        let long = "q".repeat(1_000_000);
        let shown = clip(&long);
        assert_eq!(shown, format!("{}… (1000000 bytes)", "q".repeat(64)));
        // Cut at a character boundary, never inside one.
        assert_eq!(clip(&"é".repeat(100)), format!("{}… (200 bytes)", "é".repeat(64)));
    }
}
