use kokoro_text::{Dialect, FrontEnd};
fn main() {
    let dialect: Dialect = std::env::args().nth(1).unwrap_or("en-us".into()).parse().unwrap();
    let t = std::time::Instant::now();
    let front = FrontEnd::new(dialect).unwrap();
    eprintln!("load {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let _ = front.phonemize("Qzxwv.");
    eprintln!("first OOV (trains letter-to-sound) {:?}", t.elapsed());
    for line in std::io::stdin().lines() {
        let line = line.unwrap();
        let t = std::time::Instant::now();
        let ph = front.phonemize(&line).unwrap();
        println!(
            "{line}\n  => {}   ({:?}) guessed {:?} unknown {:?}",
            ph.phonemes,
            t.elapsed(),
            ph.guessed,
            ph.unknown
        );
    }
}
