//! Home of the macro ui-tests (`tests/pass`, `tests/fail`), filled by the DSL issue.
