fn main() {
    let out = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    let t = std::time::Instant::now();
    let s = medgrain_synth::write_corpus(&out, &Default::default()).unwrap();
    eprintln!("{s:?} {:?}", t.elapsed());
}
