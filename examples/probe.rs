use bnn_transfer::arch::Arch;
use bnn_transfer::bench::extractor::random_file;
use bnn_transfer::extractor::{Extractor, Output};
use bnn_transfer::gpu::Gpu;
use std::time::Instant;
fn main() {
    let gpu = Gpu::new().unwrap();
    let file = random_file(&Arch::small(200), 3).unwrap();
    let ex = Extractor::new(&gpu, file).unwrap();
    for batch in [1usize, 64] {
        let images = vec![0.5f32; batch * ex.image_len()];
        for _ in 0..3 {
            ex.run(&images, Output::Bits).unwrap();
        }
        let mut t = vec![];
        for _ in 0..9 {
            let s = Instant::now();
            ex.run(&images, Output::Bits).unwrap();
            t.push(s.elapsed().as_secs_f64() * 1e3);
        }
        t.sort_by(f64::total_cmp);
        let prof = ex.profile(batch).unwrap();
        let sum: f64 = prof.iter().map(|p| p.2.elapsed.as_secs_f64() * 1e3).sum();
        for p in &prof {
            println!("  {} {} {:.3}", p.0, p.1, p.2.elapsed.as_secs_f64() * 1e3);
        }
        println!(
            "batch {batch}: wall median {:.2} ms, min {:.2}; sum of dispatches alone {:.2} ms",
            t[4], t[0], sum
        );
    }
}
#[allow(dead_code)]
fn x() {}
