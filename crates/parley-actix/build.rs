//! Rebuilds the crate when anything under `web/` changes. `include_dir!` tracks the files it
//! embeds, but on stable Rust not the folder: without this a file added to (or removed from)
//! `web/` would not be picked up until something else changed.

fn main() {
    println!("cargo::rerun-if-changed=../../web");
}
