//! The conformance suite every channel layer runs (being written; see `conformance_tests!`).
