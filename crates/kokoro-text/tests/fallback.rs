//! The letter-to-sound fallback on held-out lexicon words: trained on 95 % of the en-US lexicon,
//! measured on the other 5 % (every 20th word in sorted order).

use kokoro_text::Dialect;
use kokoro_text::fallback::{LetterToSound, lexicon_pairs};

fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[test]
fn held_out_lexicon_words() {
    for dialect in [Dialect::EnUs, Dialect::EnGb] {
        let pairs = lexicon_pairs(dialect);
        let (held, train): (Vec<_>, Vec<_>) = pairs.iter().cloned().enumerate().partition(|(i, _)| i % 20 == 0);
        let train: Vec<_> = train.into_iter().map(|(_, p)| p).collect();
        let t = std::time::Instant::now();
        let lts = LetterToSound::train(&train, dialect);
        let trained_in = t.elapsed();
        let (mut exact, mut errors, mut total, mut unstressed) = (0, 0, 0, 0);
        let strip = |s: &str| s.chars().filter(|c| !"ˈˌ".contains(*c)).collect::<Vec<char>>();
        let fix =
            |s: &str| if dialect == Dialect::EnUs { s.replace('ɾ', "T").replace('ʔ', "t") } else { s.to_string() };
        for (_, (word, truth)) in &held {
            let truth = fix(truth);
            let guess = lts.phonemize(word);
            exact += usize::from(guess == truth);
            unstressed += usize::from(strip(&guess) == strip(&truth));
            let t: Vec<char> = truth.chars().collect();
            errors += edit_distance(&guess.chars().collect::<Vec<_>>(), &t);
            total += t.len();
        }
        let n = held.len() as f64;
        let per = errors as f64 / total as f64;
        println!(
            "{}: {} held-out words, {} rules, trained in {:.1?}: word exact {:.1} %, ignoring stress {:.1} %, phoneme error rate {:.1} %",
            dialect.as_str(),
            held.len(),
            lts.rule_count(),
            trained_in,
            100.0 * exact as f64 / n,
            100.0 * unstressed as f64 / n,
            100.0 * per
        );
        for (_, (word, truth)) in held.iter().take(12) {
            println!("  {word:>16} {:>18} {}", fix(truth), lts.phonemize(word));
        }
        // A model that had learned nothing (one symbol per letter) sits near 80 % here.
        assert!(per < 0.25, "phoneme error rate {per}");
    }
}
