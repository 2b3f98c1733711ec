//! Compile-fail tests of the handler attributes (trybuild): every misuse gets a clear message
//! pointing at the right place. The `.stderr` files beside the cases in `tests/ui/` are the
//! contract; regenerate them with `TRYBUILD=overwrite cargo test -p stompede-tests --test ui`
//! and read the diff before committing.

#[test]
fn misuse_is_a_clear_compile_error() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/*.rs");
}
