use anyhow::Result;

fn main() -> Result<()> {
    println!("answer: {}", hello::render(hello::answer()));
    Ok(())
}
