//! Rewrites what misaki 0.9.4 leaves unknown or misreads into words it reads well, keeping a map
//! from the rewritten text back to the source bytes.
//!
//! misaki already reads cardinals, ordinals, years, decimals, negatives, money ($ £ €),
//! percentages and `& + @`; those are left to it so that the output stays identical to reference
//! Kokoro. Rewritten here (misaki emits `❓` or reads them digit soup): clock times (`10:30`,
//! `9:30am`, `5 p.m.`), URLs, e-mail addresses, phone numbers, numeric dates (`2024-03-15`,
//! `3/15/2024`), numeric ranges (`2-3`), units after numbers (`5 km`, `100 km/h`, `20°C`), street
//! and title abbreviations misaki does not know (`St.`, `Ave.`, `Mt.`, `Jr.`), month
//! abbreviations before a day (`Jan 17`), and `#1`. Numbers
//! stay digits in the rewrite so that misaki reads them as it reads any number. Also mended: two
//! places where misaki-rs strays from misaki 0.9.4 (decades, "$2 million").

use std::ops::Range;
use std::sync::LazyLock;

use regex::{Captures, Regex};

use crate::Dialect;

/// Text after normalization, with the source span of every rewritten piece.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized {
    pub text: String,
    /// Rewritten pieces: (range in `text`, range in the source). Bytes outside them map one to one.
    pub rewrites: Vec<(Range<usize>, Range<usize>)>,
}

impl Normalized {
    /// The source byte range of a byte range of the normalized text. A range that touches a
    /// rewritten piece widens to that piece's whole source.
    pub fn source_range(&self, range: Range<usize>) -> Range<usize> {
        let start = self.source_pos(range.start, false);
        start..self.source_pos(range.end, true).max(start)
    }

    fn source_pos(&self, pos: usize, is_end: bool) -> usize {
        let mut shift = 0isize;
        for (norm, src) in &self.rewrites {
            if pos <= norm.start {
                break;
            }
            if pos < norm.end {
                return if is_end { src.end } else { src.start };
            }
            shift = src.end as isize - norm.end as isize;
        }
        pos.saturating_add_signed(shift)
    }
}

type Rule = (&'static LazyLock<Regex>, fn(&Captures, Dialect, &str) -> Option<String>);

static URL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?i)\b(?:https?://|www\.)[^\s<>"]*[^\s<>".,;:!?)\]'"]"#).unwrap());
static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b").unwrap());
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:\+1[ .-]?)?(?:\(\d{3}\) ?|\b\d{3}[ .-])\d{3}[.-]\d{4}\b|\b\d{3}-\d{4}\b").unwrap()
});
static ISO_DATE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b(\d{4})-(\d{2})-(\d{2})\b").unwrap());
static SLASH_DATE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b").unwrap());
static TIME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s?([ap])\.?m\b\.?)?").unwrap());
static HOUR_AMPM: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)\b(\d{1,2})\s?([ap])(?:m\b|\.m\.)").unwrap());
static RANGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(\d+(?:\.\d+)?)\s?[-–]\s?(\d+(?:\.\d+)?)\b(?:\s?(km/h|mph|km|kg|cm|mm|mg|ml|kWh|kW|GHz|MHz|kHz|Hz|GB|MB|KB|TB|lbs|lb|oz|ft|mi|°C|°F)\b)?")
        .unwrap()
});
static UNIT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(\d+(?:,\d{3})*(?:\.\d+)?)(?:\s?(km/h|mph|km|kg|cm|mm|mg|ml|kWh|kW|GHz|MHz|kHz|Hz|GB|MB|KB|TB|lbs|lb|oz|ft|mi|°C|°F)|(m|g|l|°))\b")
        .unwrap()
});
static ABBREVIATION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(St|Ave|Rd|Blvd|Mt|Jr|Sr|Ft|Hwy|Apt|approx|Dept|Prof)\.").unwrap());
static DECADE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?:\b(\d{2})|'|\b)(\d)0s\b").unwrap());
static SCALED_MONEY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"([$£€])(\d+(?:\.\d+)?) ?(thousand|million|billion|trillion)\b").unwrap());
static MONTH_DAY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.? (\d{1,2})\b").unwrap());
static NUMBER_SIGN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"#(\d+)\b").unwrap());

/// In priority order: an earlier rule wins where two matches start at the same byte.
static RULES: &[Rule] = &[
    (&URL, url),
    (&EMAIL, email),
    (&PHONE, phone),
    (&ISO_DATE, iso_date),
    (&SLASH_DATE, slash_date),
    (&TIME, time),
    (&HOUR_AMPM, hour_ampm),
    (&DECADE, decade),
    (&SCALED_MONEY, scaled_money),
    (&MONTH_DAY, month_day),
    (&UNIT, unit),
    (&RANGE, range),
    (&ABBREVIATION, abbreviation),
    (&NUMBER_SIGN, number_sign),
];

/// Normalizes one piece of text (a sentence, usually).
pub fn normalize(text: &str, dialect: Dialect) -> Normalized {
    // Collect every rule's matches, then keep the earliest-starting, non-overlapping ones.
    let mut found: Vec<(usize, usize, usize, String)> = Vec::new();
    for (priority, (re, rewrite)) in RULES.iter().enumerate() {
        for caps in re.captures_iter(text) {
            let m = caps.get(0).unwrap();
            if let Some(words) = rewrite(&caps, dialect, text) {
                found.push((m.start(), priority, m.end(), words));
            }
        }
    }
    found.sort_by_key(|&(start, priority, _, _)| (start, priority));
    let mut out = String::with_capacity(text.len() + 16);
    let mut rewrites = Vec::new();
    let mut cursor = 0;
    for (start, _, end, words) in found {
        if start < cursor {
            continue;
        }
        out.push_str(&text[cursor..start]);
        let norm_start = out.len();
        out.push_str(&words);
        rewrites.push((norm_start..out.len(), start..end));
        cursor = end;
    }
    out.push_str(&text[cursor..]);
    Normalized { text: out, rewrites }
}

fn spell_digits(digits: &str) -> String {
    digits.chars().filter(char::is_ascii_digit).map(String::from).collect::<Vec<_>>().join(" ")
}

/// "example.com/docs?q=1" -> "example dot com slash docs ..."; the scheme is not read.
fn speak_address(address: &str) -> String {
    let mut out = String::new();
    for c in address.chars() {
        match c {
            '.' => out.push_str(" dot "),
            '/' => out.push_str(" slash "),
            '-' => out.push_str(" dash "),
            '_' => out.push_str(" underscore "),
            '@' => out.push_str(" at "),
            ':' => out.push_str(" colon "),
            '?' => out.push_str(" question mark "),
            '=' => out.push_str(" equals "),
            '&' => out.push_str(" and "),
            '#' => out.push_str(" hash "),
            '%' => out.push_str(" percent "),
            '+' => out.push_str(" plus "),
            '~' => out.push_str(" tilde "),
            c if c.is_ascii_digit() => {
                out.push(' ');
                out.push(c);
                out.push(' ');
            }
            c if c.is_alphanumeric() => out.push(c),
            _ => out.push(' '),
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn url(caps: &Captures, _: Dialect, _: &str) -> Option<String> {
    let m = caps.get(0)?.as_str();
    let lower = m.to_ascii_lowercase();
    let rest = ["https://", "http://"].iter().find_map(|s| lower.strip_prefix(s).map(|_| &m[s.len()..])).unwrap_or(m);
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    Some(speak_address(rest))
}

fn email(caps: &Captures, _: Dialect, _: &str) -> Option<String> {
    Some(speak_address(caps.get(0)?.as_str()))
}

fn phone(caps: &Captures, _: Dialect, _: &str) -> Option<String> {
    let m = caps.get(0)?.as_str();
    let groups: Vec<String> =
        m.split(|c: char| !c.is_ascii_digit()).filter(|g| !g.is_empty()).map(spell_digits).collect();
    Some(groups.join(", "))
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

fn date_words(year: &str, month: u32, day: u32, dialect: Dialect) -> Option<String> {
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let month = MONTHS[month as usize - 1];
    Some(match dialect {
        Dialect::EnUs => format!("{month} {}, {year}", ordinal(day)),
        Dialect::EnGb => format!("the {} of {month}, {year}", ordinal(day)),
    })
}

fn iso_date(caps: &Captures, dialect: Dialect, _: &str) -> Option<String> {
    date_words(&caps[1], caps[2].parse().ok()?, caps[3].parse().ok()?, dialect)
}

fn slash_date(caps: &Captures, dialect: Dialect, _: &str) -> Option<String> {
    let (a, b): (u32, u32) = (caps[1].parse().ok()?, caps[2].parse().ok()?);
    // en-US writes month/day, en-GB day/month; a first field over 12 can only be a day.
    let (month, day) = match dialect {
        Dialect::EnUs if a <= 12 => (a, b),
        _ if b <= 12 => (b, a),
        _ => (a, b),
    };
    date_words(&caps[3], month, day, dialect)
}

fn meridiem(letter: Option<&str>) -> Option<&'static str> {
    letter.map(|l| if l.eq_ignore_ascii_case("a") { "AM" } else { "PM" })
}

fn time(caps: &Captures, _: Dialect, text: &str) -> Option<String> {
    let m = caps.get(0)?;
    // "1:2:3:4" or "10:30:45.5" are not clock times; neither is a ratio inside a longer run.
    if text[m.end()..].starts_with(|c: char| c == ':' || c.is_ascii_digit()) {
        return None;
    }
    let hour: u32 = caps[1].parse().ok()?;
    let minute: u32 = caps[2].parse().ok()?;
    let ampm = meridiem(caps.get(4).map(|m| m.as_str()));
    if hour > 24 || minute > 59 || (ampm.is_some() && !(1..=12).contains(&hour)) {
        return None;
    }
    let mut words = match (minute, ampm) {
        (0, None) if hour <= 12 => format!("{hour} o'clock"),
        (0, None) => format!("{hour} hundred"),
        (0, Some(_)) => format!("{hour}"),
        (1..=9, _) => format!("{hour} oh {minute}"),
        _ => format!("{hour} {minute}"),
    };
    if let Some(seconds) = caps.get(3) {
        let s: u32 = seconds.as_str().parse().ok()?;
        if s > 59 {
            return None;
        }
        words.push_str(&format!(" and {s} {}", if s == 1 { "second" } else { "seconds" }));
    }
    if let Some(ampm) = ampm {
        words.push(' ');
        words.push_str(ampm);
    }
    Some(words)
}

fn hour_ampm(caps: &Captures, _: Dialect, _: &str) -> Option<String> {
    let hour: u32 = caps[1].parse().ok()?;
    (1..=12).contains(&hour).then(|| format!("{hour} {}", meridiem(Some(&caps[2])).unwrap()))
}

fn range(caps: &Captures, _: Dialect, text: &str) -> Option<String> {
    let m = caps.get(0)?;
    // "-2-3" or "1-2-3" (codes, scores of three) are not ranges.
    let before = text[..m.start()].chars().next_back();
    let after = text[m.end()..].chars().next();
    if before.is_some_and(|c| c == '-' || c == '–' || c.is_alphanumeric())
        || after.is_some_and(|c| c == '-' || c == '–' || c.is_alphanumeric())
    {
        return None;
    }
    let unit = match caps.get(3) {
        Some(symbol) => format!(" {}", unit_name(symbol.as_str())?.1),
        None => String::new(),
    };
    Some(format!("{} to {}{unit}", &caps[1], &caps[2]))
}

fn unit(caps: &Captures, _: Dialect, text: &str) -> Option<String> {
    let number = &caps[1];
    let (symbol, attached_only) = match (caps.get(2), caps.get(3)) {
        (Some(u), _) => (u.as_str(), false),
        (None, Some(u)) => (u.as_str(), true),
        _ => return None,
    };
    let m = caps.get(0)?;
    // A bare "m", "g", "s" or "h" is a unit only written against the number ("5m", "10s").
    if attached_only && (m.as_str().contains(' ') || text[m.end()..].starts_with('.') && symbol != "°") {
        return None;
    }
    let (one, many) = unit_name(symbol)?;
    Some(format!("{number} {}", if number == "1" { one } else { many }))
}

/// A unit symbol's name, singular and plural.
fn unit_name(symbol: &str) -> Option<(&'static str, &'static str)> {
    Some(match symbol {
        "km/h" => ("kilometer per hour", "kilometers per hour"),
        "mph" => ("mile per hour", "miles per hour"),
        "km" => ("kilometer", "kilometers"),
        "kg" => ("kilogram", "kilograms"),
        "cm" => ("centimeter", "centimeters"),
        "mm" => ("millimeter", "millimeters"),
        "mg" => ("milligram", "milligrams"),
        "ml" => ("milliliter", "milliliters"),
        "kWh" => ("kilowatt hour", "kilowatt hours"),
        "kW" => ("kilowatt", "kilowatts"),
        "GHz" => ("gigahertz", "gigahertz"),
        "MHz" => ("megahertz", "megahertz"),
        "kHz" => ("kilohertz", "kilohertz"),
        "Hz" => ("hertz", "hertz"),
        "GB" => ("gigabyte", "gigabytes"),
        "MB" => ("megabyte", "megabytes"),
        "KB" => ("kilobyte", "kilobytes"),
        "TB" => ("terabyte", "terabytes"),
        "lb" | "lbs" => ("pound", "pounds"),
        "oz" => ("ounce", "ounces"),
        "ft" => ("foot", "feet"),
        "mi" => ("mile", "miles"),
        "°C" => ("degree Celsius", "degrees Celsius"),
        "°F" => ("degree Fahrenheit", "degrees Fahrenheit"),
        "°" => ("degree", "degrees"),
        "m" => ("meter", "meters"),
        "g" => ("gram", "grams"),
        "l" => ("liter", "liters"),
        "s" => ("second", "seconds"),
        "h" => ("hour", "hours"),
        _ => return None,
    })
}

fn abbreviation(caps: &Captures, _: Dialect, text: &str) -> Option<String> {
    let m = caps.get(0)?;
    let word = match &caps[1] {
        // "St." after a capitalized word is a street ("Main St."); before a name, a saint.
        "St" => {
            let before = text[..m.start()].trim_end();
            let prev = before.rsplit(char::is_whitespace).next().unwrap_or("");
            if prev.starts_with(char::is_uppercase) && !before.ends_with('.') { "Street" } else { "Saint" }
        }
        "Ave" => "Avenue",
        "Rd" => "Road",
        "Blvd" => "Boulevard",
        "Mt" => "Mount",
        "Jr" => "Junior",
        "Sr" => "Senior",
        "Ft" => "Fort",
        "Hwy" => "Highway",
        "Apt" => "Apartment",
        "approx" => "approximately",
        "Dept" => "Department",
        "Prof" => "Professor",
        _ => return None,
    };
    // Keep the period when it also ends the sentence.
    let ends_sentence = text[m.end()..].trim().is_empty();
    Some(if ends_sentence { format!("{word}.") } else { word.to_string() })
}

/// "1990s" -> "19 nineties" (misaki then says "nineteen nineties", as misaki 0.9.4 does; misaki-rs
/// reads "nineteen ninety S"), "'80s" -> "eighties", "1900s" -> "19 hundreds".
fn decade(caps: &Captures, _: Dialect, _: &str) -> Option<String> {
    let m = caps.get(0)?;
    if m.as_str().starts_with('\'') && caps.get(1).is_some() {
        return None;
    }
    // A bare "80s" could be a quantity ("80s and 90s" as speeds); only with a century or an apostrophe.
    let century = caps.get(1).map(|c| c.as_str());
    if century.is_none() && !m.as_str().starts_with('\'') {
        return None;
    }
    let tens =
        ["", "tens", "twenties", "thirties", "forties", "fifties", "sixties", "seventies", "eighties", "nineties"];
    let digit: usize = caps[2].parse().ok()?;
    Some(match (century, digit) {
        (Some(c), 0) if c.ends_with('0') => format!("{} thousands", &c[..1]),
        (Some(c), 0) => format!("{c} hundreds"),
        (Some(c), d) => format!("{c} {}", tens[d]),
        (None, 0) => return None,
        (None, d) => tens[d].to_string(),
    })
}

/// "$2 million" -> "2 million dollars" (misaki-rs says "two dollars million").
fn scaled_money(caps: &Captures, _: Dialect, _: &str) -> Option<String> {
    let currency = match &caps[1] {
        "$" => "dollars",
        "£" => "pounds",
        _ => "euros",
    };
    Some(format!("{} {} {currency}", &caps[2], &caps[3]))
}

/// "Jan 17" -> "January 17".
fn month_day(caps: &Captures, _: Dialect, _: &str) -> Option<String> {
    let month = match &caps[1] {
        "Jan" => "January",
        "Feb" => "February",
        "Mar" => "March",
        "Apr" => "April",
        "Jun" => "June",
        "Jul" => "July",
        "Aug" => "August",
        "Sep" | "Sept" => "September",
        "Oct" => "October",
        "Nov" => "November",
        _ => "December",
    };
    Some(format!("{month} {}", &caps[2]))
}

fn number_sign(caps: &Captures, _: Dialect, _: &str) -> Option<String> {
    Some(format!("number {}", &caps[1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(text: &str) -> String {
        normalize(text, Dialect::EnUs).text
    }

    #[test]
    fn rewrites_what_misaki_cannot_read() {
        assert_eq!(norm("at 10:30, 9:05am or 12:00"), "at 10 30, 9 oh 5 AM or 12 o'clock");
        assert_eq!(norm("from 5pm to 6 p.m."), "from 5 PM to 6 PM");
        assert_eq!(norm("see https://example.com/docs."), "see example dot com slash docs.");
        assert_eq!(norm("mail bob.smith@example.org now"), "mail bob dot smith at example dot org now");
        assert_eq!(norm("call 555-123-4567"), "call 5 5 5, 1 2 3, 4 5 6 7");
        assert_eq!(norm("on 2024-03-15"), "on March 15th, 2024");
        assert_eq!(normalize("on 15/03/2024", Dialect::EnGb).text, "on the 15th of March, 2024");
        assert_eq!(
            norm("2-3 km and 1 kg at 100 km/h, 20°C"),
            "2 to 3 kilometers and 1 kilogram at 100 kilometers per hour, 20 degrees Celsius"
        );
        assert_eq!(norm("Main St. and St. Louis on Mt. Hood"), "Main Street and Saint Louis on Mount Hood");
        assert_eq!(norm("We're #1"), "We're number 1");
        assert_eq!(norm("the 1990s, the '80s and the 1900s"), "the 19 nineties, the eighties and the 19 hundreds");
        assert_eq!(norm("lost $2 million on Jan 17"), "lost 2 million dollars on January 17");
    }

    #[test]
    fn leaves_what_misaki_reads() {
        for text in ["It costs $5.50 or 50%.", "In 1984, 3.14 and -5.", "He came 2nd.", "a 1-2-3 code", "ratio 1:2:3"] {
            assert_eq!(norm(text), text);
        }
    }

    #[test]
    fn maps_back_to_source() {
        let src = "Go at 10:30 to www.a.com now";
        let n = normalize(src, Dialect::EnUs);
        let at = n.text.find("30").unwrap();
        assert_eq!(&src[n.source_range(at..at + 2)], "10:30");
        let now = n.text.find("now").unwrap();
        assert_eq!(&src[n.source_range(now..now + 3)], "now");
        let go = n.text.find("Go").unwrap();
        assert_eq!(&src[n.source_range(go..go + 2)], "Go");
    }
}
