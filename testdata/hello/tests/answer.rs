#[test]
fn answer_is_positive() {
    assert!(hello::answer() > 0);
}
