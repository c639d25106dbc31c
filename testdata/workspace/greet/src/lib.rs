//! A library with a build script, used by the `app` member through a path dependency.

include!(concat!(env!("OUT_DIR"), "/greeting.rs"));

/// Greets `name`, numbering the greeting.
pub fn greet(n: u32, name: &str) -> String {
    let mut buf = itoa::Buffer::new();
    format!("{} {}: {}", buf.format(n), GREETING, name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn greets() {
        assert_eq!(super::greet(1, "x"), "1 hello from build.rs: x");
    }
}
