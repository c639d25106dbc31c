// Generates the greeting at build time, so the workspace exercises a build script.
use std::{env, fs, path::Path};

fn main() {
    let out = Path::new(&env::var("OUT_DIR").unwrap()).join("greeting.rs");
    fs::write(out, "pub const GREETING: &str = \"hello from build.rs\";\n").unwrap();
    println!("cargo:rerun-if-changed=build.rs");
}
