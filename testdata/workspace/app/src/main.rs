fn main() -> anyhow::Result<()> {
    println!("{}", greet::greet(1, "workspace"));
    Ok(())
}
