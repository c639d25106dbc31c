// `cargo test` compiles the examples too: the deps step's first build must
// build them, or the test step compiles them itself.
fn main() {
    let mut buf = itoa::Buffer::new();
    println!("{}", buf.format(42));
}
