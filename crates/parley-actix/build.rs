//! Rebuilds the crate when anything under `web/` or `clients/js/src` changes. `include_dir!`
//! tracks the files it embeds, but on stable Rust not the folder: without this a file added to
//! (or removed from) those folders would not be picked up until something else changed.

fn main() {
    println!("cargo::rerun-if-changed=../../web");
    println!("cargo::rerun-if-changed=../../clients/js/src");
}
