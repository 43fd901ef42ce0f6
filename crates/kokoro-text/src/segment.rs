//! Sentence segmentation with byte spans into the input.
//!
//! A sentence ends at `.`, `!`, `?` or `…` (with any closing quotes and brackets after it) that
//! is followed by whitespace, unless the word before the period is a known abbreviation or a
//! single letter (an initial); a line break that leaves a blank line, or ends a line that itself
//! ends in sentence punctuation, also ends one. Reference Kokoro splits the same way: `\n+`
//! first, then at `!.?…`.

use std::ops::Range;

/// Words whose trailing period does not end a sentence (compared without the period,
/// case-sensitively as written, and lowercased).
const NON_TERMINAL: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "st", "mt", "jr", "sr", "sen", "rep", "gov", "gen", "col", "capt", "lt", "sgt",
    "rev", "hon", "pres", "vs", "v", "e.g", "i.e", "cf", "al", "fig", "no", "vol", "pp", "approx", "dept", "est",
    "inc", "ltd", "co", "corp", "ave", "rd", "blvd", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept",
    "oct", "nov", "dec", "a.m", "p.m", "u.s", "u.k", "ph.d", "mssrs", "messrs", "mme", "mlle",
];

/// The byte spans of the sentences of `text`, in order, without the whitespace between them.
/// Every non-whitespace byte of `text` is in exactly one span.
pub fn sentences(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = None::<usize>;
    let mut iter = text.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        if c.is_whitespace() {
            if let Some(s) = start {
                // A blank line ends the sentence whatever came before it.
                if c == '\n'
                    && text[i + 1..].chars().take_while(|c| *c != '\n').all(char::is_whitespace)
                    && text[i + 1..].contains('\n')
                {
                    out.push(s..trim_end(text, i));
                    start = None;
                }
            }
            continue;
        }
        let s = *start.get_or_insert(i);
        if matches!(c, '.' | '!' | '?' | '…') {
            // Take the rest of the terminal run: "?!", "...", closing quotes and brackets.
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = iter.peek() {
                if matches!(d, '.' | '!' | '?' | '…' | '"' | '\'' | '”' | '’' | ')' | ']' | '»') {
                    end = j + d.len_utf8();
                    iter.next();
                } else {
                    break;
                }
            }
            let next = text[end..].chars().next();
            let at_break = next.is_none_or(char::is_whitespace);
            if at_break && !(c == '.' && is_abbreviation(&text[s..i])) {
                out.push(s..end);
                start = None;
            }
        }
    }
    if let Some(s) = start {
        out.push(s..trim_end(text, text.len()));
    }
    out
}

fn trim_end(text: &str, end: usize) -> usize {
    text[..end].trim_end().len()
}

/// Is the word that ends `before` (the text before a period) an abbreviation or an initial?
fn is_abbreviation(before: &str) -> bool {
    let word = before.rsplit(|c: char| c.is_whitespace() || c == '(' || c == '"').next().unwrap_or("");
    if word.is_empty() {
        return false;
    }
    let mut chars = word.chars();
    let first = chars.next().unwrap();
    // "J." in "J. R. R. Tolkien"; a lowercase single letter ("a.") is more often a list item.
    if chars.next().is_none() {
        return first.is_uppercase();
    }
    // Dotted initialisms: "U.S.", "e.g.", "Ph.D.".
    let lower = word.to_lowercase();
    NON_TERMINAL.contains(&lower.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<&str> {
        sentences(text).into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn splits_at_terminal_punctuation() {
        assert_eq!(split("Hello there. How are you?  Fine!"), ["Hello there.", "How are you?", "Fine!"]);
        assert_eq!(split("\"Stop!\" she cried. Wait..."), ["\"Stop!\"", "she cried.", "Wait..."]);
    }

    #[test]
    fn keeps_abbreviations_initials_and_decimals() {
        assert_eq!(
            split("Dr. Smith met J. R. Tolkien at 3.5 p.m. on Main St. today."),
            ["Dr. Smith met J. R. Tolkien at 3.5 p.m. on Main St. today."]
        );
        assert_eq!(split("See e.g. the U.S. list. Then go."), ["See e.g. the U.S. list.", "Then go."]);
    }

    #[test]
    fn blank_lines_end_sentences() {
        assert_eq!(split("A title\n\nThe body text\nwraps here."), ["A title", "The body text\nwraps here."]);
        assert_eq!(split("  \n "), Vec::<&str>::new());
        assert_eq!(split("no end"), ["no end"]);
    }
}
