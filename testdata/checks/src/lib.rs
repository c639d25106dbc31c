//! A library with known coverage: `add_one` and `render` are tested,
//! `uncovered` is called by no test.

/// Adds one.
///
/// ```
/// assert_eq!(checks::add_one(1), 2);
/// ```
pub fn add_one(x: u32) -> u32 {
    x + 1
}

/// Renders a number in decimal.
pub fn render(x: u32) -> String {
    let mut buf = itoa::Buffer::new();
    buf.format(x).to_owned()
}

/// No test calls this function.
pub fn uncovered(x: u32) -> u32 {
    let tripled = x * 3;
    tripled + 7
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one() {
        assert_eq!(add_one(0), 1);
    }

    #[test]
    fn two() {
        assert_eq!(add_one(1), 2);
    }

    #[test]
    fn renders_seven() {
        assert_eq!(render(7), "7");
    }

    #[test]
    fn renders_zero() {
        assert_eq!(render(0), "0");
    }
}
