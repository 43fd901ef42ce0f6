//! Word agreement with Python misaki 0.9.4 (reference Kokoro's G2P) on the committed corpus:
//! 2,400 sentences of prose and a hand-written tricky set, references made by
//! `scripts/make_g2p_fixtures.py`.
//!
//! Words the reference leaves unknown (`❓`, which Kokoro drops) are not counted: there the front
//! end reads them on purpose (normalization, letter-to-sound). Everything else must agree.

use kokoro_text::{Dialect, FrontEnd};

struct Row {
    text: String,
    us: String,
    gb: String,
}

fn load(name: &str) -> Vec<Row> {
    let path = format!("{}/tests/fixtures/{name}.jsonl", std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().unwrap().to_string();
            Row { text: s("text"), us: s("us"), gb: s("gb") }
        })
        .collect()
}

/// Length of the longest common subsequence of two word lists.
fn lcs(a: &[&str], b: &[&str]) -> usize {
    let mut prev = vec![0; b.len() + 1];
    for x in a {
        let mut cur = vec![0; b.len() + 1];
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y { prev[j] + 1 } else { prev[j + 1].max(cur[j]) };
        }
        prev = cur;
    }
    prev[b.len()]
}

struct Score {
    words: usize,
    agreed: usize,
    sentences: usize,
    exact: usize,
    unknown_in_reference: usize,
}

fn score(front: &FrontEnd, rows: &[Row], dialect: Dialect, full: bool, show: usize) -> Score {
    let mut s = Score { words: 0, agreed: 0, sentences: 0, exact: 0, unknown_in_reference: 0 };
    let mut shown = 0;
    for row in rows {
        let reference = if dialect == Dialect::EnUs { &row.us } else { &row.gb };
        let ours = if full { front.phonemize(&row.text).unwrap().phonemes } else { front.raw(&row.text).unwrap() };
        let ref_words: Vec<&str> = reference.split_whitespace().filter(|w| !w.contains('❓')).collect();
        let our_words: Vec<&str> = ours.split_whitespace().collect();
        s.unknown_in_reference += reference.split_whitespace().count() - ref_words.len();
        let agreed = lcs(&ref_words, &our_words);
        s.words += ref_words.len();
        s.agreed += agreed;
        if !reference.contains('❓') {
            s.sentences += 1;
            let exact = ref_words == our_words;
            s.exact += usize::from(exact);
        }
        if agreed < ref_words.len() && shown < show {
            shown += 1;
            println!("  {:?}\n    misaki: {reference}\n    ours:   {ours}", row.text);
        }
    }
    s
}

fn report(name: &str, s: &Score) -> f64 {
    let rate = s.agreed as f64 / s.words as f64;
    println!(
        "{name}: word agreement {:.3} % ({} of {} words; {} reference-unknown words not counted), sentence-exact {:.2} % ({} of {})",
        100.0 * rate,
        s.agreed,
        s.words,
        s.unknown_in_reference,
        100.0 * s.exact as f64 / s.sentences.max(1) as f64,
        s.exact,
        s.sentences
    );
    rate
}

fn agreement(dialect: Dialect) {
    let prose = load("prose");
    let tricky = load("tricky");
    assert!(prose.len() >= 2000, "the corpus needs at least 2,000 sentences");
    let reference = FrontEnd::reference(dialect).unwrap();
    let full = FrontEnd::new(dialect).unwrap();
    let d = dialect.as_str();
    report(&format!("{d} misaki-rs alone, prose"), &score(&reference, &prose, dialect, false, 0));
    report(&format!("{d} misaki-rs alone, tricky"), &score(&reference, &tricky, dialect, false, 0));
    let p = score(&full, &prose, dialect, true, 12);
    let t = score(&full, &tricky, dialect, true, 12);
    let prose_rate = report(&format!("{d} front end, prose"), &p);
    let tricky_rate = report(&format!("{d} front end, tricky"), &t);
    let rate = (p.agreed + t.agreed) as f64 / (p.words + t.words) as f64;
    println!("{d} front end, whole corpus: word agreement {:.3} %", 100.0 * rate);
    assert!(rate >= 0.999, "{d}: word agreement {rate} < 99.9 % (prose {prose_rate}, tricky {tricky_rate})");
}

#[test]
fn agreement_en_us() {
    agreement(Dialect::EnUs);
}

#[test]
fn agreement_en_gb() {
    agreement(Dialect::EnGb);
}
