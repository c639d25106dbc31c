// Generates the greeting at build time, so the workspace exercises a build script.
use std::{env, fs, path::Path};

fn main() {
    let out = Path::new(&env::var("OUT_DIR").unwrap()).join("greeting.rs");
    // itoa (a build-dependency) numbers the generated file's format.
    let format = itoa::Buffer::new().format(1).to_owned();
    let code = format!("// format {format}\npub const GREETING: &str = \"hello from build.rs\";\n");
    fs::write(out, code).unwrap();
    println!("cargo:rerun-if-changed=build.rs");
}
