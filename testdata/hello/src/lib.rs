//! The library half of `hello`: what the binary prints.

/// The number the binary prints.
pub fn answer() -> u32 {
    42
}

/// Formats `n` in decimal with `itoa`.
pub fn render(n: u32) -> String {
    let mut buf = itoa::Buffer::new();
    buf.format(n).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders() {
        assert_eq!(render(7), "7");
    }
}
