// Rust: Vec::push growth, built `rustc -O -g` (the Makefile's vecpush; no
// frame pointers, as cargo's release profile). push is inlined into fill(); growth goes
// through RawVec and the allocator shims to libc's malloc (first push) and
// realloc (every doubling after). 64 vectors of 1024 u64 each grow 4, 8,
// ..., 1024 elements: each ends in one live 8192-byte block whose last
// realloc came from the push line. The vectors are leaked: blocks stay live.
use std::hint::black_box;

#[inline(never)]
fn fill(v: &mut Vec<u64>, n: u64) {
    for i in 0..n {
        v.push(black_box(i)); // SITE:rust_push
    }
}

fn main() {
    let mut all: Vec<Vec<u64>> = Vec::with_capacity(64); // SITE:rust_outer
    for _ in 0..64 {
        let mut v = Vec::new();
        fill(&mut v, 1024); // SITE:rust_fill
        all.push(v);
    }
    println!("{}", all.iter().map(|v| v.len()).sum::<usize>());
    std::mem::forget(all);
}
