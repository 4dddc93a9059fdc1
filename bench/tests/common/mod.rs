//! Helpers shared by the harness's integration tests.

/// True when the test may run (root); otherwise skips loudly, or fails when
/// `VXDECAP_REQUIRE_PRIVILEGED=1` forbids skipping.
pub(crate) fn privileged(test: &str) -> bool {
    if vxdecap::lab::netns::is_root() {
        return true;
    }
    assert!(
        !std::env::var("VXDECAP_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1"),
        "{test}: needs root and VXDECAP_REQUIRE_PRIVILEGED=1 forbids skipping"
    );
    eprintln!("SKIPPED {test}: needs root (netns, XDP, AF_XDP); run the suite as root");
    false
}

/// The first integer of the line containing `needle`.
pub(crate) fn first_number(text: &str, needle: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in:\n{text}"));
    line.split(|c: char| !c.is_ascii_digit())
        .find(|w| !w.is_empty())
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no number in {line:?}"))
}

/// The integer right after `label ` on the line containing `needle`.
pub(crate) fn number_after(text: &str, needle: &str, label: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in:\n{text}"));
    line.split(label)
        .nth(1)
        .and_then(|rest| {
            rest.trim_start()
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}
