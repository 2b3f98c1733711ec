//! Compile tests of the handler attributes (trybuild): every misuse gets a clear message
//! pointing at the right place, and every supported argument and return type compiles. The
//! `.stderr` files beside the cases in `tests/ui/` are the contract; regenerate them with
//! `TRYBUILD=overwrite cargo test -p stompede-tests --test ui` and read the diff before
//! committing. `tests/ui/pass/` holds the programs that must compile.

#[test]
fn misuse_is_a_clear_compile_error_and_every_supported_kind_compiles() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/*.rs");
    cases.pass("ui/pass/*.rs");
}
