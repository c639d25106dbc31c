fn main() {
    println!("answer {}", checks::render(checks::add_one(41)));
}
