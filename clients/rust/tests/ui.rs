//! Compile-fail cases of the native client: what a caller sees when its code no longer fits the
//! agent's definition. (The macros' own misuse cases, built for Lunatic, are in `ui-tests/`.)

#[test]
fn native_client_misuse() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
