//! The seed's sequential chain: deps -> clippy -> test -> package.

fn double(n: u64) -> String {
    let mut buf = itoa::Buffer::new();
    buf.format(n * 2).to_owned()
}

fn main() {
    println!("double: {}", double(21));
}

#[cfg(test)]
mod tests {
    #[test]
    fn doubles() {
        assert_eq!(super::double(4), "8");
    }
}
